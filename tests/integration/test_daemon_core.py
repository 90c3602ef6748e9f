"""``rotator run`` as operators run it: a subprocess against a real OpenBao and the stand-in.

Acceptance of the core: metrics for every key with the right statuses, AppRole tokens renewed
and re-obtained for 40 s, a Vault outage survived with ``rotator_vault_up 0`` and recovered,
a clean SIGTERM stop, and no key value in anything the daemon printed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, daemon_config
from tests.fixtures.openbao import OpenBaoServer, create_approle, write_private

RUN_FOR_S = 40


def _status(daemon: DaemonProcess, key: str) -> str | None:
    for status in ("valid", "invalid", "billing_blocked", "rate_limited", "unreachable"):
        if daemon.metric("mistral_key_status", key=key, status=status) == 1:
            return status
    return None


def test_daemon_renews_relogs_survives_vault_outage_and_leaks_nothing(
    openbao_raft: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    kit = KeyKit(openbao_raft, mistral, "mistral/core")
    soon = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    kit.put("healthy", "valid", expires_at="2099-01-01")
    kit.put("expiring", "valid", expires_at=soon)
    kit.put("revoked", "invalid")
    kit.put("billing", "billing")
    names = ["healthy", "expiring", "revoked", "billing"]
    approle = create_approle(openbao_raft, tmp_path, token_ttl="5s", token_max_ttl="15s")
    admin_token = "admin-core-0123456789abcdef"
    config = daemon_config(
        tmp_path,
        openbao_raft,
        mistral,
        kit,
        names,
        admin_token_file=write_private(tmp_path / "admin-token", admin_token),
        schedule={"poll_interval": "2s", "verify_interval": "3s"},
    )
    config["vault"]["auth"] = {
        "method": "approle",
        "role_id_file": str(approle.role_id_file),
        "secret_id_file": str(approle.secret_id_file),
    }
    daemon = DaemonProcess(tmp_path, config, token=admin_token)
    started = time.monotonic()
    daemon.start()
    try:
        daemon.wait_until(lambda: all(_status(daemon, n) for n in names), 20, "every status")
        assert {n: _status(daemon, n) for n in names} == {
            "healthy": "valid",
            "expiring": "valid",
            "revoked": "invalid",
            "billing": "billing_blocked",
        }
        expiry = daemon.metric("mistral_key_expiry_timestamp_seconds", key="expiring")
        assert expiry is not None and abs(expiry - datetime.fromisoformat(soon).timestamp()) < 2
        assert daemon.metric("mistral_key_expiry_assumed", key="revoked") == 1
        assert daemon.metric("rotator_keys_managed") == 4
        assert daemon.metric("rotator_vault_up") == 1

        # Vault goes away: metrics keep being served with the last known state.
        openbao_raft.stop()
        daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 0, 15, "vault_up 0")
        assert _status(daemon, "healthy") == "valid"
        assert httpx.get(f"{daemon.admin_url}/readyz", timeout=5).status_code == 503
        openbao_raft.start()
        daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 1, 30, "vault_up 1")
        daemon.wait_until(daemon.ready, 30, "ready again")

        # Keep going until tokens have expired by max TTL at least twice.
        remaining = RUN_FOR_S - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
        checked = daemon.metric("mistral_key_last_check_timestamp_seconds", key="healthy")
        assert checked is not None and time.time() - checked < 10
        assert daemon.metric("rotator_vault_up") == 1
        assert len(daemon.events("vault.auth_renewed")) >= 1
        logins = daemon.events("vault.login")
        assert len(logins) >= 2, "no re-login after the max TTL"
        assert daemon.events("key.expiry_threshold")[0]["key"] == "expiring"
        assert len(daemon.events("key.expiry_threshold")) == 1  # once, not every cycle
    finally:
        t0 = time.monotonic()
        code = daemon.stop()
        stop_s = time.monotonic() - t0
    assert code == 0 and stop_s < 10
    assert daemon.events("rotator.stopped")
    assert_no_key_in([daemon.output()], kit.values)
