"""The alert path for real: daemon → Prometheus (shipped rules) → Alertmanager → webhook.

The rules are the shipped ``deploy/prometheus/alerts.yml`` with one change in a test copy:
every ``for:`` is set to 0s. The expressions, labels and annotations are the ones operators
get; only the waiting that keeps a single bad check from paging is taken out, so the test
runs in seconds instead of the 5 to 15 minutes those durations ask for.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, configured_daemon
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.prometheus import Alert, AlertWebhook, PrometheusFactory

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _rules_without_for(target: Path) -> Path:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def _is(name: str, key: str, status: str) -> Any:
    def match(alert: Alert) -> bool:
        labels = alert["labels"]
        return bool(
            labels.get("alertname") == name
            and labels.get("key") == key
            and alert["status"] == status
        )

    return match


def _stage(daemon: DaemonProcess, name: str, value: str, expires: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rotator",
            "stage",
            name,
            "--config",
            str(daemon.config_path),
            "--expires-at",
            expires,
        ],
        input=value + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon.base_env(),
    )
    assert proc.returncode == 0, proc.stderr


def test_expiring_and_revoked_keys_page_then_resolve_after_staging(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
    prometheus_factory: PrometheusFactory,
    alert_webhook: AlertWebhook,
) -> None:
    began = time.monotonic()
    kit = KeyKit(openbao, mistral, kv_prefix)
    in_five_days = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    kit.put("expiring", "valid", expires_at=in_five_days)
    kit.put("revoked", "invalid", expires_at="2099-01-01")
    daemon = configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        ["expiring", "revoked"],
        schedule={"poll_interval": "1s", "verify_interval": "2s"},
    ).start()
    try:
        target = daemon.metrics_url.removeprefix("http://")
        prometheus_factory.start(
            rule_files=[_rules_without_for(tmp_path / "alerts.yml")], targets=[target]
        )
        soon = alert_webhook.wait_for(_is("MistralKeyExpiringSoon", "expiring", "firing"), 60)
        invalid = alert_webhook.wait_for(_is("MistralKeyInvalid", "revoked", "firing"), 60)
        assert soon["labels"]["severity"] == "warning"
        assert invalid["labels"]["severity"] == "critical"
        assert "expires in" in soon["annotations"]["summary"]
        assert soon["annotations"]["runbook_url"].endswith("#mistralkeyexpiringsoon")
        fired_s = time.monotonic() - began

        # Ops create fresh keys in the console and stage them; the daemon delivers them.
        next_year = (datetime.now(UTC) + timedelta(days=300)).date().isoformat()
        fresh = {}
        for name in ("expiring", "revoked"):
            fresh[name] = secrets.token_hex(16)
            kit.values.append(fresh[name])
            mistral.set_key(fresh[name], "valid")
            _stage(daemon, name, fresh[name], next_year)
        alert_webhook.wait_for(_is("MistralKeyExpiringSoon", "expiring", "resolved"), 60)
        alert_webhook.wait_for(_is("MistralKeyInvalid", "revoked", "resolved"), 60)
        resolved_s = time.monotonic() - began
    finally:
        daemon.stop()
    print(f"\nalert e2e: firing after {fired_s:.1f}s, resolved after {resolved_s:.1f}s")
    for name, value in fresh.items():
        assert (tmp_path / "sinks" / f"{name}.key").read_text().strip() == value
    assert_no_key_in([daemon.output(), *map(str, alert_webhook.notifications())], kit.values)
