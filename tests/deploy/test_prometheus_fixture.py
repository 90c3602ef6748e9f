"""The Prometheus/Alertmanager fixture works end to end: a rule that always fires reaches
the webhook through a real Prometheus and a real Alertmanager."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.prometheus import AlertWebhook, PrometheusFactory, free_port

pytestmark = pytest.mark.e2e


def test_an_always_firing_rule_reaches_the_webhook(
    tmp_path: Path, prometheus_factory: PrometheusFactory, alert_webhook: AlertWebhook
) -> None:
    rules = tmp_path / "always.yml"
    rules.write_text(
        "groups:\n"
        "  - name: fixture\n"
        "    rules:\n"
        "      - alert: FixtureAlwaysFiring\n"
        "        expr: vector(1)\n"
        "        labels: {severity: none, key: demo}\n"
        "        annotations: {summary: always}\n"
    )
    # A target nobody listens on: Prometheus runs without one, and `up` is 0 for it.
    prometheus = prometheus_factory.start(rule_files=[rules], targets=[f"127.0.0.1:{free_port()}"])

    alert = alert_webhook.wait_for(lambda a: a["labels"]["alertname"] == "FixtureAlwaysFiring")

    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "FixtureAlwaysFiring",
        "severity": "none",
        "key": "demo",
    }
    assert alert["annotations"] == {"summary": "always"}
    rules_api = prometheus.get_json("/api/v1/rules")
    assert rules_api["data"]["groups"][0]["rules"][0]["state"] == "firing"
