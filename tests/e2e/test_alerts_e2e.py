"""The alert path for real: daemon → Prometheus (shipped rules) → Alertmanager → webhook.

The rules are the shipped ``deploy/prometheus/alerts.yml`` with one change in a test copy:
every ``for:`` is set to 0s. The expressions, labels and annotations are the ones operators
get; only the waiting that keeps a single bad check from paging is taken out, so the test
runs in seconds instead of the 5 to 15 minutes those durations ask for.

The ``tls`` variant runs the same story with ``server.web_config_file``: the daemon's
listeners on TLS with a certificate the test makes and ``/metrics`` behind basic auth, and
Prometheus scraping with ``tls_config.ca_file`` and ``basic_auth``; a second Prometheus with a
wrong password sees the target down.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, configured_daemon
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.prometheus import Alert, AlertWebhook, PrometheusFactory, Server
from tests.waiting import wait_for
from tests.web.certs import CA

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


class Tls:
    """A web config file with TLS (a certificate for 127.0.0.1 from a CA of the test's own)
    and one basic-auth user; what Prometheus and the test's clients need to get in."""

    def __init__(self, directory: Path) -> None:
        self.ca = CA(directory / "pki")
        served = self.ca.issue("rotator")
        self.password = secrets.token_urlsafe(12)
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        self.web_config = directory / "web.yml"
        tls = {"cert_file": str(served.cert), "key_file": str(served.key)}
        self.web_config.write_text(
            yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": {"prometheus": hashed}})
        )

    def scrape(self, password: str) -> dict[str, Any]:
        return {
            "scheme": "https",
            "tls_config": {"ca_file": str(self.ca.cert)},
            "basic_auth": {"username": "prometheus", "password": password},
        }


def _target(prometheus: Server) -> dict[str, Any]:
    """The one scrape target once discovered (Prometheus hands targets over every 5 s)."""
    targets = prometheus.get_json("/api/v1/targets")["data"]["activeTargets"]
    return dict(targets[0]) if targets else {"health": "not discovered yet"}


@pytest.mark.parametrize("variant", ["plain", "tls"])
def test_expiring_and_revoked_keys_page_then_resolve_after_staging(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
    prometheus_factory: PrometheusFactory,
    alert_webhook: AlertWebhook,
    variant: str,
) -> None:
    began = time.monotonic()
    kit = KeyKit(openbao, mistral, kv_prefix)
    in_five_days = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    kit.put("expiring", "valid", expires_at=in_five_days)
    kit.put("revoked", "invalid", expires_at="2099-01-01")
    tls = Tls(tmp_path) if variant == "tls" else None
    daemon = configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        ["expiring", "revoked"],
        schedule={"poll_interval": "1s", "verify_interval": "2s"},
        server={"web_config_file": str(tls.web_config)} if tls else None,
    )
    if tls is not None:
        daemon.verify = ssl.create_default_context(cafile=str(tls.ca.cert))
        daemon.metrics_auth = ("prometheus", tls.password)
    daemon.start()
    try:
        target = daemon.metrics_url.split("://", 1)[1]
        assert daemon.metrics_url.startswith("https://" if tls else "http://")
        prometheus = prometheus_factory.start(
            rule_files=[_rules_without_for(tmp_path / "alerts.yml")],
            targets=[target],
            scrape=tls.scrape(tls.password) if tls else None,
        )
        soon = alert_webhook.wait_for(_is("MistralKeyExpiringSoon", "expiring", "firing"), 60)
        invalid = alert_webhook.wait_for(_is("MistralKeyInvalid", "revoked", "firing"), 60)
        assert soon["labels"]["severity"] == "warning"
        assert invalid["labels"]["severity"] == "critical"
        assert "expires in" in soon["annotations"]["summary"]
        assert soon["annotations"]["runbook_url"].endswith("#mistralkeyexpiringsoon")
        fired_s = time.monotonic() - began
        assert _target(prometheus)["health"] == "up"
        if tls is not None:
            wrong = prometheus_factory.start(
                rule_files=[], targets=[target], scrape=tls.scrape("not-the-password")
            )
            down = wait_for(
                lambda: _target(wrong)["health"] == "down" and _target(wrong), 30, "target down"
            )
            assert "401" in down["lastError"]

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
    print(f"\nalert e2e ({variant}): firing after {fired_s:.1f}s, resolved after {resolved_s:.1f}s")
    for name, value in fresh.items():
        assert (tmp_path / "sinks" / f"{name}.key").read_text().strip() == value
    texts = [daemon.output(), *map(str, alert_webhook.notifications())]
    assert_no_key_in(texts, kit.values)
    if tls is not None:
        assert tls.password not in daemon.output()
