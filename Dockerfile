# syntax=docker/dockerfile:1
# The mistral-key-rotator daemon.
#
#   docker build -t mistral-key-rotator .
#   docker run --read-only -v "$PWD/rotator.yaml:/etc/rotator/rotator.yaml:ro" mistral-key-rotator
#
# Reproducible dependencies: the build installs exactly the pins of constraints.txt (written by
# scripts/gen_constraints.py), installs the project without resolving anything else, and
# `pip check` fails the build if the pins are incomplete or inconsistent.
# Pin the base image by digest for byte-for-byte rebuilds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:... .
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/rotator
# Dependencies first: this layer is reused until constraints.txt changes.
COPY constraints.txt ./
RUN /opt/rotator/bin/pip install --no-cache-dir --no-deps --requirement constraints.txt
COPY pyproject.toml README.md ./
COPY rotator ./rotator
# --compile: the runtime image is read-only and never writes .pyc files itself.
RUN /opt/rotator/bin/pip install --no-cache-dir --no-deps --compile . \
    && /opt/rotator/bin/pip check

# The runtime image: the base image (no compilers in python:*-slim), the virtualenv, a user.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mistral-key-rotator" \
      org.opencontainers.image.description="Keeps Mistral AI API keys alive: tracks expiry, verifies, rotates from Vault." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/rotator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ROTATOR_CONFIG=/etc/rotator/rotator.yaml
# /run/mistral: where the example configurations' file sink writes; a volume mounted there
# starts with this owner. Nothing else is written: the root filesystem can be read-only.
RUN groupadd --system --gid 10001 rotator \
    && useradd --system --no-log-init --uid 10001 --gid rotator \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rotator \
    && install -d -o rotator -g rotator -m 0750 /run/mistral \
    && install -d -m 0755 /etc/rotator
COPY --from=build /opt/rotator /opt/rotator
USER 10001:10001
# 9102: Prometheus metrics; 8080: admin API (/healthz, /readyz, /api/v1/...). The admin API
# listens on 127.0.0.1 unless server.admin_listen says otherwise (0.0.0.0:8080 to reach it
# from outside the container; /api/v1 always needs the admin token).
EXPOSE 9102 8080
# No curl in the slim image: ask /healthz with the virtualenv's Python. Assumes the admin
# port 8080; change it here if server.admin_listen uses another port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["rotator"]
CMD ["run", "--config", "/etc/rotator/rotator.yaml"]
