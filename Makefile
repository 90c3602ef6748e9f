# The two commands a newcomer needs are `make demo` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit faults soak system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rotator demo

# Prometheus, Alertmanager for the end-to-end alert test, Chromium for the intake page's
# browser tests (driven by Playwright with executable_path; never `playwright install`),
# libfaketime for the reminder test that runs the daemon 19 days later;
# skipped quietly when apt is not usable.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus prometheus-alertmanager"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || missing="$$missing libfaketime"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq || true) && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "system-deps: not root or no apt-get: cannot install$$missing"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check rotator tests bench scripts
	$(BIN)/ruff format --check rotator tests bench scripts
	$(BIN)/mypy rotator
	$(BIN)/bandit -q -c pyproject.toml -r rotator
	$(BIN)/python scripts/check_imports.py rotator

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Two workers: most tests wait on a daemon, a Vault or a browser, so two share 2 cores well
# (19 min instead of about 30 at the same machine load; every test runs alone in either).
test: $(STAMP) system-deps lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --durations=15

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Faults only (about 3 minutes), and a long soak: the rotation property test with 5,000 fresh
# random examples (ROTATOR_PROPERTY_EXAMPLES), then random faults (default 10 minutes).
faults: $(STAMP)
	$(BIN)/pytest -q tests/faults

soak: $(STAMP)
	ROTATOR_PROPERTY_EXAMPLES=$${ROTATOR_PROPERTY_EXAMPLES:-5000} $(BIN)/pytest -q -p no:cacheprovider tests/unit/test_rotation_properties.py
	$(BIN)/python bench/soak.py
