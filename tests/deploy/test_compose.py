"""deploy/docker-compose.yml: every file it mounts exists and is valid for the program reading it,
and the services point at each other. Docker cannot run here, so the configurations are checked
with the real tools (promtool, amtool, the daemon's own config loader) where they will be read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from rotator.config import Settings, parse_settings
from rotator.config.sinks import FileSinkSettings
from tests.deploy.files import (
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    JOB,
    ROOT,
    alert_rules,
    load_yaml,
    promtool,
    run,
)

SERVICES: dict[str, Any] = load_yaml(COMPOSE)["services"]


def _bind_mounts(service: str) -> dict[PurePosixPath, Path]:
    """Container path -> file on this machine, for the service's bind mounts."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[PurePosixPath(target)] = (DEPLOY / source).resolve()
    return mounts


def _named_volumes(service: str) -> dict[str, PurePosixPath]:
    named = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith("."):
            named[source] = PurePosixPath(target)
    return named


def _rotator_config() -> Settings:
    path = _bind_mounts("rotator")[PurePosixPath("/etc/rotator/rotator.yaml")]
    return parse_settings(load_yaml(path))


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_bind_mount_exists(service: str) -> None:
    for target, source in _bind_mounts(service).items():
        assert source.exists(), f"{service}: {source} (for {target}) does not exist"


def test_rotator_is_built_from_the_dockerfile_with_its_config_where_cmd_expects_it() -> None:
    rotator = SERVICES["rotator"]
    assert (DEPLOY / rotator["build"]["context"] / rotator["build"]["dockerfile"]).resolve() == (
        ROOT / "Dockerfile"
    )
    assert PurePosixPath("/etc/rotator/rotator.yaml") in _bind_mounts("rotator")
    assert rotator["read_only"] is True
    assert rotator["cap_drop"] == ["ALL"]


def test_rotator_config_is_valid_and_listens_where_prometheus_scrapes() -> None:
    config = _rotator_config()
    prometheus = load_yaml(
        _bind_mounts("prometheus")[PurePosixPath("/etc/prometheus/prometheus.yml")]
    )
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == JOB
    port = config.server.metrics_listen.rpartition(":")[2]
    assert job["static_configs"][0]["targets"] == [f"rotator:{port}"]
    assert config.vault.address == "http://openbao:8200"


def test_file_sink_writes_into_the_volume_the_app_reads() -> None:
    sinks = [s for k in _rotator_config().keys for s in k.sinks if isinstance(s, FileSinkSettings)]
    assert sinks
    volume, mount = next(iter(_named_volumes("rotator").items()))
    assert all(PurePosixPath(s.path).parent == mount for s in sinks)
    app_mounts = [v for v in SERVICES["app"]["volumes"] if v.startswith(f"{volume}:")]
    assert app_mounts == [f"{volume}:{mount}:ro"]
    assert all(str(s.path) in " ".join(SERVICES["app"]["command"]) for s in sinks)


def test_prometheus_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    """promtool reads the config with the rule file at its container path, mapped here."""
    mounts = _bind_mounts("prometheus")
    config_file = mounts[PurePosixPath("/etc/prometheus/prometheus.yml")]
    text = config_file.read_text(encoding="utf-8")
    for target, source in mounts.items():
        text = text.replace(str(target), str(source))
    local = tmp_path / "prometheus.yml"
    local.write_text(text)
    result = run([promtool(), "check", "config", str(local)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_prometheus_loads_the_shipped_rules_and_alerts_the_compose_alertmanager() -> None:
    mounts = _bind_mounts("prometheus")
    config = load_yaml(mounts[PurePosixPath("/etc/prometheus/prometheus.yml")])
    assert [mounts[PurePosixPath(p)] for p in config["rule_files"]] == [
        DEPLOY / "prometheus" / "alerts.yml"
    ]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "127.0.0.1:9093:9093" in SERVICES["alertmanager"]["ports"]


def test_alertmanager_config_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (`make system-deps` installs prometheus-alertmanager)")
    config = _bind_mounts("alertmanager")[PurePosixPath("/etc/alertmanager/alertmanager.yml")]
    result = run([amtool, "check-config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_the_prometheus_and_the_dashboard() -> None:
    mounts = _bind_mounts("grafana")
    provisioning = mounts[PurePosixPath("/etc/grafana/provisioning")]
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards" / "mistral-key-rotator.yaml")["providers"]
    dashboards = [t for t, s in mounts.items() if s == DASHBOARD]
    assert [d.parent for d in dashboards] == [PurePosixPath(provider["options"]["path"])]
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert PurePosixPath(home) in dashboards
    json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_every_published_port_is_on_loopback_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_file_is_plain_yaml_with_known_top_level_keys() -> None:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    extensions = {k for k in document if k.startswith("x-")}
    assert set(document) - extensions == {"name", "services", "volumes"}
    used = {v for s in SERVICES.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert {v.split(":")[0] for v in used} == set(document["volumes"])
