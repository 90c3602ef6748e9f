"""The shipped Alertmanager inhibit rules hold back the milder expiry alerts of a key.

A real Prometheus scrapes the daemon's own metric definitions
(rotator.adapters.metrics.registry.Metrics, served by prometheus_client; no daemon) and
evaluates the shipped expiry rules, with `for:` set to 0s in a test copy; a real
Alertmanager runs the shipped route and inhibit rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import start_http_server

from rotator.adapters.metrics.registry import Metrics
from tests.deploy.files import ALERTMANAGER, ALERTS, load_yaml
from tests.fixtures.prometheus import (
    Alert,
    AlertWebhook,
    PrometheusFactory,
    Server,
    alertmanager_config,
    require_binaries,
    start_alertmanager,
)

pytestmark = pytest.mark.e2e
DAY = 86400
EXPIRY_ALERTS = {"MistralKeyExpiringSoon", "MistralKeyExpiringCritical", "MistralKeyExpired"}


@pytest.fixture
def metrics_target() -> Iterator[tuple[str, Metrics]]:
    metrics = Metrics()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    yield f"127.0.0.1:{server.server_port}", metrics
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def alertmanager(tmp_path: Path, alert_webhook: AlertWebhook) -> Iterator[Server]:
    """Overrides tests.fixtures.prometheus's: the shipped grouping and inhibit rules."""
    require_binaries()
    shipped = load_yaml(ALERTMANAGER)
    config = alertmanager_config(alert_webhook.url, inhibit_rules=shipped["inhibit_rules"])
    config["route"]["group_by"] = shipped["route"]["group_by"]
    # Long enough for one evaluation's alerts to arrive together, as 30s is in production.
    config["route"]["group_wait"] = "2s"
    server = start_alertmanager(tmp_path / "alertmanager", config)
    yield server
    server.stop()


def _expiry_rules_without_for(path: Path) -> Path:
    groups = load_yaml(ALERTS)["groups"]
    (expiry,) = [g for g in groups if {r["alert"] for r in g["rules"]} == EXPIRY_ALERTS]
    for rule in expiry["rules"]:
        rule["for"] = "0s"
    path.write_text(yaml.safe_dump({"groups": [expiry]}))
    return path


def _firing(name: str, key: str) -> Callable[[Alert], bool]:
    def match(alert: Alert) -> bool:
        labels = alert["labels"]
        return bool(
            labels["alertname"] == name and labels["key"] == key and alert["status"] == "firing"
        )

    return match


def _suppressed(alertmanager: Server) -> set[tuple[str, str]]:
    alerts: list[dict[str, Any]] = alertmanager.get_json("/api/v2/alerts")
    return {
        (a["labels"]["alertname"], a["labels"]["key"])
        for a in alerts
        if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
    }


def test_only_the_strongest_expiry_alert_of_a_key_is_sent(
    tmp_path: Path,
    metrics_target: tuple[str, Metrics],
    prometheus_factory: PrometheusFactory,
    alertmanager: Server,
    alert_webhook: AlertWebhook,
) -> None:
    target, metrics = metrics_target
    now = time.time()
    for key, days in (("soon", 20), ("week", 5), ("gone", -2)):
        metrics.add_key(key)
        metrics.expiry.labels(key=key).set(now + days * DAY)
    prometheus_factory.start(
        rule_files=[_expiry_rules_without_for(tmp_path / "expiry.yml")], targets=[target]
    )

    sent = {
        ("MistralKeyExpiringSoon", "soon"),
        ("MistralKeyExpiringCritical", "week"),
        ("MistralKeyExpired", "gone"),
    }
    for name, key in sent:
        alert_webhook.wait_for(_firing(name, key))
    held_back = {
        ("MistralKeyExpiringSoon", "week"),
        ("MistralKeyExpiringSoon", "gone"),
        ("MistralKeyExpiringCritical", "gone"),
    }
    deadline = time.monotonic() + 15
    while _suppressed(alertmanager) != held_back and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _suppressed(alertmanager) == held_back
    notified = {(a["labels"]["alertname"], a["labels"]["key"]) for a in alert_webhook.alerts()}
    assert notified == sent
