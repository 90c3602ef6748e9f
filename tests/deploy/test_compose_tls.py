"""deploy/docker-compose.tls.yml: the TLS variant of the compose stack. Its files exist, the
rotator's config differs from the plain one by the web config file only, the certificates
that make-certs.sh makes are taken by the rotator's web config, and promtool accepts the
Prometheus config that scrapes with them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import bcrypt
import pytest
import yaml

from rotator.web.watch import WebConfigWatcher
from tests.deploy.files import DEPLOY, JOB, load_yaml, promtool, run

OVERRIDE = load_yaml(DEPLOY / "docker-compose.tls.yml")["services"]
BASE = load_yaml(DEPLOY / "docker-compose.yml")["services"]


def _mounts(service: str) -> dict[PurePosixPath, Path]:
    mounts = {}
    for volume in OVERRIDE[service]["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[PurePosixPath(target)] = (DEPLOY / source).resolve()
    return mounts


def _certificates(directory: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: make-certs.sh needs it")
    script = DEPLOY / "compose" / "tls" / "make-certs.sh"
    subprocess.run(["sh", str(script), str(directory)], check=True, capture_output=True)
    return directory


def test_the_override_only_adds_to_services_of_the_base() -> None:
    assert set(OVERRIDE) <= set(BASE)
    for service in OVERRIDE:
        for target, source in _mounts(service).items():
            generated = source.parent == DEPLOY / "compose" / "tls" or source.name == "tls"
            assert source.exists() or generated, f"{service}: {source} for {target}"


def test_rotator_config_differs_by_the_web_config_file_only() -> None:
    rotator = _mounts("rotator")
    tls = load_yaml(rotator[PurePosixPath("/etc/rotator/rotator.yaml")])
    plain = load_yaml(DEPLOY / "compose" / "rotator.yaml")
    web_file = tls["server"].pop("web_config_file")
    assert tls == plain
    assert rotator[PurePosixPath(web_file)] == DEPLOY / "compose" / "web.yml"


def test_the_web_config_takes_the_generated_certificate(tmp_path: Path) -> None:
    """In the container /etc/rotator/tls is compose/tls; here, a copy with fresh files."""
    etc = tmp_path / "etc"
    _certificates(etc / "tls")
    shutil.copy(DEPLOY / "compose" / "web.yml", etc / "web.yml")
    web = WebConfigWatcher(etc / "web.yml")
    assert web.scheme == "https"
    password = (DEPLOY / "compose" / "metrics-password").read_text().strip()
    hashed = yaml.safe_load((DEPLOY / "compose" / "web.yml").read_text())["basic_auth_users"]
    assert bcrypt.checkpw(password.encode(), hashed["prometheus"].encode())


def test_prometheus_scrapes_the_rotator_with_tls_and_basic_auth(tmp_path: Path) -> None:
    mounts = _mounts("prometheus")
    certs = _certificates(tmp_path / "tls")
    container = PurePosixPath("/etc/prometheus/prometheus.yml")
    text = mounts[container].read_text(encoding="utf-8")
    local = {
        "/etc/prometheus/rotator-ca.crt": certs / "ca.crt",
        "/etc/prometheus/rotator-metrics-password": mounts[
            PurePosixPath("/etc/prometheus/rotator-metrics-password")
        ],
        "/etc/prometheus/rules/mistral-key-rotator.yml": DEPLOY / "prometheus" / "alerts.yml",
    }
    for target, source in local.items():
        text = text.replace(target, str(source))
    (tmp_path / "prometheus.yml").write_text(text)
    result = run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = yaml.safe_load(text)["scrape_configs"]
    assert job["job_name"] == JOB and job["scheme"] == "https"
    assert job["tls_config"]["server_name"] == "rotator"
    assert job["static_configs"][0]["targets"] == ["rotator:9102"]
