"""``rotator check`` against the real OpenBao and the Mistral stand-in, as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from rotator.demo.standin import MistralStandIn
from tests.fixtures.openbao import OpenBaoServer, write_private

BEHAVIOURS = {
    "healthy": "valid",
    "revoked": "invalid",
    "billing": "billing",
    "limited": "rate-limited:1",
    "outage": "unavailable",
    "no-model": "no-model",
}


def _config(
    tmp_path: Path, openbao: OpenBaoServer, mistral_url: str, prefix: str, names: list[str]
) -> Path:
    token = write_private(tmp_path / "token", openbao.root_token)
    config: dict[str, Any] = {
        "vault": {
            "address": openbao.url,
            "auth": {"method": "token", "token_file": str(token)},
            "state_path": f"mistral-rotator/state/{prefix}",
        },
        "mistral": {
            "base_url": mistral_url,
            "retries": 0,
            "timeout_seconds": 2,
            "max_requests_per_second": 50,
        },
        "keys": [{"name": n, "vault_path": f"{prefix}/{n}"} for n in names],
    }
    path = tmp_path / "rotator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _check(config: Path, *names: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "rotator", "check", "--json", "--config", str(config), *names],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stdout + proc.stderr


def test_check_tells_each_answer_apart_and_never_calls_transient_invalid(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    put_key: Any,
    kv_prefix: str,
    tmp_path: Path,
) -> None:
    keys = {}
    expires = (datetime.now(UTC) + timedelta(days=100)).date().isoformat()
    for name, behaviour in BEHAVIOURS.items():
        value = f"sk{name.replace('-', '')}0123456789abcdefghij"
        keys[name] = value
        mistral.set_key(value, behaviour)
        put_key(f"{kv_prefix}/{name}", value, expires_at=expires)
    config = _config(tmp_path, openbao, mistral.url, kv_prefix, list(BEHAVIOURS))

    code, report, output = _check(config)

    statuses = {row["name"]: row["status"] for row in report["keys"]}
    assert statuses == {
        "healthy": "valid",
        "revoked": "invalid",
        "billing": "billing_blocked",
        "limited": "rate_limited",
        "outage": "unreachable",
        "no-model": "model_unavailable",
    }
    assert code == 1
    for value in keys.values():
        assert value not in output
    assert {row["fingerprint"] for row in report["keys"]} == {v[-4:] for v in keys.values()}


def test_check_exit_status_for_healthy_and_critical_keys(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    put_key: Any,
    kv_prefix: str,
    tmp_path: Path,
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    for name, expires in (("later", later), ("soon", soon)):
        value = f"sk{name}0123456789abcdefghijkl"
        mistral.set_key(value, "valid")
        put_key(f"{kv_prefix}/{name}", value, expires_at=expires)
    put_key(f"{kv_prefix}/assumed", "skassumed0123456789abcdefghij")
    mistral.set_key("skassumed0123456789abcdefghij", "valid")
    config = _config(tmp_path, openbao, mistral.url, kv_prefix, ["later", "soon", "assumed"])

    code, report, _ = _check(config, "later", "assumed")
    assert code == 0
    rows = {r["name"]: r for r in report["keys"]}
    assert rows["assumed"]["expiry_assumed"] is True and 364 < rows["assumed"]["days_left"] <= 365
    assert rows["later"]["expiry_assumed"] is False

    code, report, _ = _check(config, "soon")
    assert code == 1 and report["keys"][0]["status"] == "valid"
    assert 4 < report["keys"][0]["days_left"] < 5.1


def test_check_reports_a_broken_secret_and_keeps_going(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    put_key: Any,
    kv_prefix: str,
    tmp_path: Path,
) -> None:
    mistral.set_key("skgood0123456789abcdefghijkl", "valid")
    put_key(f"{kv_prefix}/good", "skgood0123456789abcdefghijkl")
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path=f"{kv_prefix}/broken", secret={"key": "misnamed-field-0123456789"}
    )
    config = _config(tmp_path, openbao, mistral.url, kv_prefix, ["good", "broken", "missing"])
    code, report, output = _check(config)
    rows = {r["name"]: r for r in report["keys"]}
    assert code == 1
    assert rows["good"]["status"] == "valid"
    assert "api_key" in rows["broken"]["problem"]
    assert rows["missing"]["problem"]
    assert "misnamed-field-0123456789" not in output


def test_check_unknown_name_is_a_usage_error(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, openbao, mistral.url, kv_prefix, ["a"])
    proc = subprocess.run(
        [sys.executable, "-m", "rotator", "check", "--config", str(config), "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "nope" in proc.stderr
