"""Vault, the state secret and discovery at their edges (issue 17): namespaces, a Vault that
trickles its answers, a state shared or tampered with, leases from a skewed clock, deleted
state versions, re-created tenants, misconfigurations.

Real ``rotator run`` subprocesses against the session OpenBao (namespaces, quotas and
metadata settings are real OpenBao features) and the Mistral stand-in; a FaultProxy or a
small HTTP server stands in for a Vault that answers badly.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import hvac
import pytest
import yaml

from tests.faults.proxy import FaultProxy
from tests.faults.tools import Stack, read_key
from tests.fixtures.daemon import ROOT, DaemonProcess, new_key_value
from tests.fixtures.openbao import create_approle
from tests.waiting import wait_for


def readiness(daemon: DaemonProcess) -> tuple[int, str]:
    answer = httpx.get(f"{daemon.admin_url}/readyz", timeout=15)
    reason = answer.json().get("reason", "") if answer.status_code in (200, 503) else answer.text
    return answer.status_code, reason


def state_path(config: dict[str, Any], name: str) -> str:
    return f"{config['vault']['state_path']}/{name}"


def write_state(stack: Stack, config: dict[str, Any], name: str, data: dict[str, Any]) -> None:
    stack.openbao.client().secrets.kv.v2.create_or_update_secret(
        path=state_path(config, name), secret=data
    )


# --- 1. /readyz never 500, and works in a namespace -----------------------------------------


def test_readyz_and_rotation_work_in_a_vault_namespace(stack: Stack) -> None:
    namespace = f"team-{secrets.token_hex(3)}"
    root = stack.openbao.client()
    root.sys.create_namespace(path=namespace)
    inside = hvac.Client(url=stack.openbao.url, token=stack.openbao.root_token, namespace=namespace)
    inside.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    value = new_key_value()
    stack.kit.values.append(value)
    stack.standin.set_key(value, "valid")
    inside.secrets.kv.v2.create_or_update_secret(
        path=stack.kit.path("portal"), secret={"api_key": value}
    )
    config = stack.config(["portal"], vault={"namespace": namespace})
    daemon = stack.start(config)  # waits for /readyz 200 and a first check
    assert readiness(daemon) == (200, "ok")
    wait_for(lambda: read_key(stack.sink_path(config, "portal")) == value, 15, "v1 delivered")
    assert "Exception in ASGI application" not in daemon.output()
    stack.assert_no_key_leaked()


class _FixedAnswer:
    """An HTTP server that answers every request with ``status`` and a JSON body."""

    def __init__(self) -> None:
        self.status = 200
        self.body: dict[str, Any] | str = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.body
                payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_LIST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fixed_answer() -> Iterator[_FixedAnswer]:
    server = _FixedAnswer()
    yield server
    server.close()


def test_readyz_is_503_with_a_reason_for_every_unhealthy_health_answer(
    stack: Stack, fixed_answer: _FixedAnswer
) -> None:
    stack.kit.put("portal")
    config = stack.config(["portal"], vault={"address": fixed_answer.url})
    daemon = stack.start(config, wait_ready=False)
    for status in (429, 472, 500, 503, 400):
        fixed_answer.status = status
        fixed_answer.body = {"errors": ["something is wrong"]}
        code, reason = readiness(daemon)
        assert code == 503, f"health {status}: /readyz answered {code}: {reason}"
        assert str(status) in reason
    # A 200 that is not Vault's JSON (a proxy's page): a reason too, and no crash anywhere.
    fixed_answer.status, fixed_answer.body = 200, "<html>proxy login</html>"
    code, reason = readiness(daemon)
    assert code == 503 and "200" in reason
    daemon.wait_until(
        lambda: "unexpected answer" in (daemon.key("portal")["problem"] or ""), 10, "problem"
    )
    fixed_answer.body = {"errors": ["not vault"]}  # JSON, but not Vault's
    seen = len(daemon.events("vault.unavailable"))
    daemon.wait_until(lambda: len(daemon.events("vault.unavailable")) >= seen + 2, 10, "more polls")
    assert "unexpected answer" in (daemon.key("portal")["problem"] or "")
    assert "Exception in ASGI application" not in daemon.output()
    assert not daemon.events("key.unexpected_error")


# --- 3. a Vault that trickles its answers --------------------------------------------------


@pytest.fixture
def vault_proxy(stack: Stack) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", stack.openbao.port)) as proxy:
        yield proxy


def test_vault_trickling_its_answers_is_an_outage_not_a_wedge(
    stack: Stack, vault_proxy: FaultProxy
) -> None:
    _, v1 = stack.kit.put("portal")
    config = stack.config(["portal"], vault={"address": vault_proxy.url, "timeout_seconds": 1})
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    assert read_key(sink) == v1

    vault_proxy.trickle(0.3)  # a byte every 0.3 s: no single read ever waits 1 s
    daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 0, 15, "rotator_vault_up 0")
    # (The connections the proxy dropped to start the trickle may fail first as unreachable.)
    daemon.wait_until(
        lambda: any(e["reason"] == "timed out" for e in daemon.events("vault.unavailable")),
        15,
        "vault.unavailable: timed out",
    )
    daemon.wait_until(
        lambda: (r := readiness(daemon))[0] == 503 and "timed out" in r[1],
        15,
        "/readyz 503: timed out",
    )

    _, v2 = stack.kit.put("portal")
    vault_proxy.passthrough()
    daemon.wait_until(lambda: read_key(sink) == v2, 30, "v2 delivered once Vault is quick")
    daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 1, 15, "rotator_vault_up 1")
    assert readiness(daemon)[0] == 200
    answer = daemon.api("POST", "/api/v1/keys/portal/rotate", json={"force": True})
    assert answer.status_code == 200, answer.text
    stack.assert_no_key_leaked()


# --- 2. two deployments sharing one state path ---------------------------------------------


def test_a_state_of_another_secret_is_refused_loudly(stack: Stack, tmp_path: Path) -> None:
    stack.kit.put("jtel-live-agent")
    prod = stack.config(["jtel-live-agent"])
    shared_state = prod["vault"]["state_path"]
    prod_daemon = stack.start(prod)
    wait_for(lambda: stack.state(prod, "jtel-live-agent").get("active_version") == 1, 10, "v1")

    # Staging: the same key name, its own secret, the same (default-like) state path.
    staging_kit_prefix = stack.kit.prefix + "-staging"
    client = stack.openbao.client()
    value = new_key_value()
    stack.kit.values.append(value)
    stack.standin.set_key(value, "valid")
    client.secrets.kv.v2.create_or_update_secret(
        path=f"{staging_kit_prefix}/jtel-live-agent", secret={"api_key": value}
    )
    staging = stack.config(["jtel-live-agent"])
    staging["keys"][0]["vault_path"] = f"{staging_kit_prefix}/jtel-live-agent"
    staging["keys"][0]["sinks"][0]["path"] = str(tmp_path / "staging.key")
    staging["vault"]["state_path"] = shared_state
    staging_daemon = stack.start(staging, checked=False)

    def refused() -> list[dict[str, Any]]:
        return [
            e
            for e in staging_daemon.events("key.state_foreign")
            if e.get("key") == "jtel-live-agent"
        ]

    event = staging_daemon.wait_until(refused, 15, "key.state_foreign")[0]
    assert event["level"] == "error"
    assert event["recorded_vault_path"] == f"{stack.kit.prefix}/jtel-live-agent"
    assert "state_path" in event["action"]
    key = staging_daemon.key("jtel-live-agent")
    assert "state_path" in (key["problem"] or "")
    answer = staging_daemon.api("POST", "/api/v1/keys/jtel-live-agent/rotate", json={})
    assert answer.status_code == 503 and "state_path" in answer.json()["detail"]
    assert read_key(tmp_path / "staging.key") is None  # nothing delivered on a foreign state
    # Prod is untouched: its state still names its own secret.
    assert (
        stack.state(prod, "jtel-live-agent")["vault_path"] == f"{stack.kit.prefix}/jtel-live-agent"
    )
    assert prod_daemon.key("jtel-live-agent")["problem"] is None
    stack.assert_no_key_leaked()


# --- 4. a tenant named like a configured key -----------------------------------------------


def test_a_tenant_named_like_a_configured_key_does_not_stop_the_start(
    stack: Stack, tmp_path: Path
) -> None:
    stack.kit.put("portal")
    (tmp_path / "tenants").mkdir()
    tenants = stack.kit.prefix + "-tenants"
    client = stack.openbao.client()
    for name in ("portal", "acme"):
        value = new_key_value()
        stack.kit.values.append(value)
        stack.standin.set_key(value, "valid")
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{tenants}/{name}", secret={"api_key": value}
        )
    config = stack.config(["portal"])
    config["discover"] = {
        "prefix": tenants,
        "sinks": [{"type": "file", "path": str(tmp_path / "tenants" / "{name}.key")}],
    }
    daemon = stack.start(config)
    daemon.wait_until(lambda: daemon.metric("rotator_keys_managed") == 2, 15, "portal and acme")
    conflict = daemon.wait_until(lambda: daemon.events("discover.conflict"), 10, "conflict logged")
    assert conflict[0]["name"] == "portal"
    assert daemon.metric("rotator_discover_skipped", reason="conflict") == 1
    # The configured key is the one served; the tenant of the same name gets nothing.
    assert read_key(stack.sink_path(config, "portal")) == stack.kit.values[0]
    daemon.wait_until(lambda: read_key(tmp_path / "tenants" / "acme.key"), 15, "acme delivered")
    assert read_key(tmp_path / "tenants" / "portal.key") is None
    stack.assert_no_key_leaked()


# --- 5. a lease from a skewed clock --------------------------------------------------------


def test_a_lease_far_in_the_future_is_taken_over_and_logged(stack: Stack) -> None:
    _, v1 = stack.kit.put("portal")
    config = stack.config(["portal"])
    far = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    write_state(
        stack,
        config,
        "portal",
        {"pending_version": 1, "pending_owner": "skewed-host:1", "pending_until": far},
    )
    daemon = stack.start(config, checked=False)
    sink = stack.sink_path(config, "portal")
    daemon.wait_until(lambda: read_key(sink) == v1, 20, "v1 delivered despite the stale lease")
    taken = daemon.wait_until(lambda: daemon.events("key.lease_taken_over"), 5, "takeover logged")
    assert taken[0]["owner"] == "skewed-host:1"
    assert daemon.metric("rotator_lease_takeovers_total") == 1
    state = stack.state(config, "portal")
    assert state["active_version"] == 1 and "pending_until" not in state
    stack.assert_no_key_leaked()


# --- 6. a deleted state version -------------------------------------------------------------


def test_a_deleted_state_version_is_reported_not_read_as_no_state(stack: Stack) -> None:
    _, v1 = stack.kit.put("portal")
    config = stack.config(["portal"])
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    _, v2 = stack.kit.put("portal")
    daemon.wait_until(lambda: read_key(sink) == v2, 15, "v2 delivered")
    answer = daemon.api("POST", "/api/v1/keys/portal/rollback")
    assert answer.status_code == 200, answer.text
    assert read_key(sink) == v1
    daemon.stop()

    client = stack.openbao.client()
    client.secrets.kv.v2.delete_latest_version_of_secret(path=state_path(config, "portal"))
    daemon = stack.start(config, checked=False)
    lost = daemon.wait_until(lambda: daemon.events("key.state_deleted"), 15, "key.state_deleted")
    assert lost[0]["level"] == "error" and lost[0]["key"] == "portal"
    assert "undelete" in lost[0]["action"]
    assert "deleted" in (daemon.key("portal")["problem"] or "")
    assert read_key(sink) == v1  # the rolled-back key stays rolled back
    stack.assert_no_key_leaked()


# --- 7. a tenant removed and created again ---------------------------------------------------


def test_a_re_created_tenant_gets_its_new_key(stack: Stack, tmp_path: Path) -> None:
    tenants = stack.kit.prefix
    client = stack.openbao.client()

    def put(name: str) -> str:
        value = new_key_value()
        stack.kit.values.append(value)
        stack.standin.set_key(value, "valid")
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{tenants}/{name}", secret={"api_key": value}
        )
        return value

    (tmp_path / "tenants").mkdir()
    put("acme")
    second = put("acme")
    config = stack.config([])
    config["discover"] = {
        "prefix": tenants,
        "sinks": [{"type": "file", "path": str(tmp_path / "tenants" / "{name}.key")}],
    }
    daemon = stack.start(config, checked=False)
    sink = tmp_path / "tenants" / "acme.key"
    daemon.wait_until(lambda: read_key(sink) == second, 20, "acme v2 delivered")

    client.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{tenants}/acme")
    daemon.wait_until(lambda: daemon.events("discover.removed"), 15, "acme removed")
    cleared = daemon.wait_until(lambda: daemon.events("key.state_cleared"), 10, "state cleared")
    assert cleared[0]["previous_active_version"] == 2
    assert "active_version" not in stack.state(config, "acme")  # the old one is in history
    again = put("acme")  # version 1 again, a new secret
    daemon.wait_until(lambda: read_key(sink) == again, 20, "the re-created tenant's key")
    # Missing between the deletion and the next listing, maybe; never once it is back.
    delivered = daemon.events("key.rotated")[-1]["timestamp"]
    deadline = time.monotonic() + 3  # three more polls (poll_interval 1s)
    while time.monotonic() < deadline:
        assert daemon.metric("mistral_key_secret_error", key="acme") == 0
        time.sleep(0.2)
    assert all(e["timestamp"] < delivered for e in daemon.events("key.secret_missing"))
    assert stack.state(config, "acme")["active_version"] == 1
    stack.assert_no_key_leaked()


# --- 9. Vault misconfigurations --------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this tree's rotator, as the daemon
    )


def test_a_missing_vault_ca_cert_is_a_config_error(stack: Stack, tmp_path: Path) -> None:
    config = stack.config(["portal"])
    path = tmp_path / "rotator.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _cli("config", "validate", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    config["vault"]["ca_cert"] = str(tmp_path / "no-such-ca.pem")
    path.write_text(yaml.safe_dump(config))
    result = _cli("config", "validate", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "vault.ca_cert" in result.stderr + result.stdout
    assert "no-such-ca.pem" in result.stderr + result.stdout


def test_a_namespace_typo_is_reported_as_such(stack: Stack) -> None:
    stack.kit.put("portal")
    config = stack.config(["portal"], vault={"namespace": "no-such-namespace"})
    daemon = stack.start(config, wait_ready=False)
    _, reason = daemon.wait_until(
        lambda: (r := readiness(daemon))[0] == 503 and "namespace" in r[1] and r,
        15,
        "/readyz names the namespace",
    )
    assert "no-such-namespace" in reason
    problem = daemon.wait_until(lambda: daemon.key("portal")["problem"], 15, "a key problem")
    assert "namespace" in problem and "no live version" not in problem


def test_a_vault_sink_on_a_cas_required_path_is_written(stack: Stack) -> None:
    _, v1 = stack.kit.put("portal")
    sink_path = f"portal/{stack.kit.prefix.replace('/', '-')}"
    client = stack.openbao.client()
    client.secrets.kv.v2.create_or_update_secret(path=sink_path, secret={"api_key": "old"})
    client.secrets.kv.v2.update_metadata(path=sink_path, cas_required=True)
    config = stack.config(["portal"])
    config["keys"][0]["sinks"] = [{"type": "vault", "path": sink_path}]
    daemon = stack.start(config)

    def held() -> str | None:
        answer = client.secrets.kv.v2.read_secret_version(
            path=sink_path, raise_on_deleted_version=True
        )
        value: str | None = answer["data"]["data"].get("api_key")
        return value

    daemon.wait_until(lambda: held() == v1, 15, "v1 in the cas_required vault sink")
    _, v2 = stack.kit.put("portal")
    daemon.wait_until(lambda: held() == v2, 15, "v2 in the cas_required vault sink")
    assert not daemon.events("key.rotation_failed")
    stack.assert_no_key_leaked()


# --- 10. readiness does not hide KV outages -------------------------------------------------


def test_vault_up_reflects_kv_calls_not_only_health(stack: Stack) -> None:
    client = stack.openbao.client()
    mount = f"kv-{secrets.token_hex(3)}"  # a mount of the test's own, for a mount-wide quota
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    value = new_key_value()
    stack.kit.values.append(value)
    stack.standin.set_key(value, "valid")
    client.secrets.kv.v2.create_or_update_secret(
        path=stack.kit.path("portal"), secret={"api_key": value}, mount_point=mount
    )
    config = stack.config(["portal"], vault={"kv_mount": mount})
    daemon = stack.start(config)
    # Every KV call is refused with 429 from now on; health and the token still answer.
    client.adapter.post(
        f"/v1/sys/quotas/rate-limit/{mount}",
        json={"path": f"{mount}/", "rate": 1, "interval": "1h"},
    )
    try:
        daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 0, 15, "vault_up 0")
        for _ in range(5):  # a readiness probe every so often must not flip it back to 1
            readiness(daemon)
            assert daemon.metric("rotator_vault_up") == 0
    finally:
        client.adapter.delete(f"/v1/sys/quotas/rate-limit/{mount}")
    daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 1, 15, "vault_up 1 again")


# --- 12. tampered state values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("active_version", "²"), ("pending_until", "9999-12-31T23:59:59-14:00")],
)
def test_a_tampered_state_value_is_reported_not_a_crash(
    stack: Stack, field: str, value: str
) -> None:
    stack.kit.put("portal")
    config = stack.config(["portal"])
    write_state(stack, config, "portal", {"active_version": 1, field: value})
    daemon = stack.start(config, checked=False)
    bad = daemon.wait_until(
        lambda: [e for e in daemon.events("key.bad_secret") if e.get("field") == field],
        15,
        f"key.bad_secret on {field}",
    )
    assert bad[0]["path"].endswith(state_path(config, "portal"))
    assert field in (daemon.key("portal")["problem"] or "")
    answer = daemon.api("POST", "/api/v1/keys/portal/rotate", json={})
    assert answer.status_code == 503 and field in answer.json()["detail"]
    assert "Traceback" not in daemon.output()


# --- 11. Vault's reason for a refused login ---------------------------------------------------


def test_a_refused_login_keeps_vaults_reason(stack: Stack, tmp_path: Path) -> None:
    stack.kit.put("portal")
    auth = create_approle(stack.openbao, tmp_path)
    auth.secret_id_file.write_text("not-the-secret-id\n")
    config = stack.config(["portal"])
    config["vault"]["auth"] = {
        "method": "approle",
        "role_id_file": str(auth.role_id_file),
        "secret_id_file": str(auth.secret_id_file),
    }
    daemon = stack.start(config, wait_ready=False)
    denied = daemon.wait_until(
        lambda: daemon.events("vault.permission_denied"), 15, "vault.permission_denied"
    )
    assert denied[0]["path"] == "auth/approle/login"
    assert denied[0]["reason"] == "invalid role or secret ID"
    code, reason = readiness(daemon)
    assert code == 503 and "invalid role or secret ID" in reason
    assert "not-the-secret-id" not in daemon.output()


# --- 13. key.expiry_threshold once per crossing and key generation ----------------------------


def test_expiry_threshold_is_logged_once_per_crossing_and_per_key(stack: Stack) -> None:
    def days(n: int) -> str:
        return (datetime.now(UTC) + timedelta(days=n)).isoformat()

    stack.kit.put("portal", expires_at=days(3))  # critical (default: 7 days)
    config = stack.config(["portal"])
    daemon = stack.start(config)
    crossed = daemon.wait_until(lambda: daemon.events("key.expiry_threshold"), 10, "critical")
    assert [(e["threshold"], e["version"]) for e in crossed] == [("critical", 1)]
    daemon.wait_until(
        lambda: stack.state(config, "portal").get("expiry_band") == "critical", 10, "recorded"
    )

    _, v2 = stack.kit.put("portal", expires_at=days(20))  # a new key, already in warn
    sink = stack.sink_path(config, "portal")
    daemon.wait_until(lambda: read_key(sink) == v2, 15, "v2 delivered")
    daemon.wait_until(
        lambda: len(daemon.events("key.expiry_threshold")) == 2, 10, "the new key's warn"
    )
    assert daemon.events("key.expiry_threshold")[1]["threshold"] == "warn"
    assert daemon.events("key.expiry_threshold")[1]["version"] == 2
    daemon.wait_until(
        lambda: stack.state(config, "portal").get("expiry_band_version") == 2, 10, "recorded"
    )
    daemon.stop()

    again = stack.start(config)  # the same crossing, after a restart: not again
    again.wait_until(lambda: again.key("portal")["active_version"] == 2, 10, "v2 active")
    again.api("POST", "/api/v1/keys/portal/verify")
    assert again.events("key.verified")
    assert not again.events("key.expiry_threshold")


# --- 8. a tenant removed while its rotation is under way --------------------------------------


def test_a_tenant_removed_mid_rotation_leaves_no_series(stack: Stack, tmp_path: Path) -> None:
    tenants = stack.kit.prefix
    client = stack.openbao.client()

    def put(behaviour: str) -> str:
        value = new_key_value()
        stack.kit.values.append(value)
        stack.standin.set_key(value, behaviour)
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{tenants}/acme", secret={"api_key": value}
        )
        return value

    (tmp_path / "tenants").mkdir()
    first = put("valid")
    config = stack.config([])
    config["discover"] = {
        "prefix": tenants,
        "sinks": [{"type": "file", "path": str(tmp_path / "tenants" / "{name}.key")}],
    }
    daemon = stack.start(config, checked=False)
    daemon.wait_until(lambda: read_key(tmp_path / "tenants" / "acme.key") == first, 20, "v1")

    second = put("slow:4")  # v2's verification takes 4 s: the rotation is under way
    daemon.wait_until(lambda: stack.standin.count(second) >= 1, 10, "v2 being verified")
    client.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{tenants}/acme")
    daemon.wait_until(lambda: daemon.events("discover.removed"), 10, "acme removed")
    daemon.wait_until(
        lambda: [
            e
            for e in daemon.events()
            if e.get("key") == "acme"
            and e.get("version") == 2
            and e.get("event") in ("key.rotated", "key.rotation_failed", "key.state_conflict")
        ],
        15,
        "the rotation under way ends",
    )
    series = ("mistral_key_status", "mistral_key_rotations_total", "mistral_key_active_version")
    daemon.wait_until(
        lambda: all(daemon.metric(name, key="acme") is None for name in series), 10, "no series"
    )
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert all(daemon.metric(name, key="acme") is None for name in series)
        time.sleep(0.2)


def test_ops_can_break_a_live_lease_of_a_dead_instance(stack: Stack) -> None:
    _, v1 = stack.kit.put("portal")
    config = stack.config(["portal"], rotation={"lease": "60s"})
    until = (datetime.now(UTC) + timedelta(seconds=100)).isoformat()  # plausible: < 2 x 60 s
    write_state(
        stack,
        config,
        "portal",
        {"pending_version": 1, "pending_owner": "dead-host:7", "pending_until": until},
    )
    daemon = stack.start(config, checked=False)
    sink = stack.sink_path(config, "portal")

    asked = daemon.cli("rotate", "portal", "--json")
    assert json.loads(asked.stdout)["result"] == "noop", asked.stdout + asked.stderr
    held = daemon.wait_until(lambda: daemon.events("key.lease_held"), 5, "key.lease_held")
    assert held[0]["owner"] == "dead-host:7" and "--break-lease" in held[0]["action"]
    assert read_key(sink) is None

    broken = daemon.cli("rotate", "portal", "--break-lease", "--json")
    assert broken.returncode == 0, broken.stdout + broken.stderr
    assert json.loads(broken.stdout)["result"] == "rotated"
    assert read_key(sink) == v1
    assert daemon.events("key.lease_broken")[0]["owner"] == "dead-host:7"
    assert daemon.metric("rotator_lease_takeovers_total") == 1
    audit = daemon.events("admin.rotate")[-1]
    assert audit["break_lease"] is True and audit["outcome"] == "rotated"


def test_a_configured_secret_deleted_and_created_again_starts_afresh(stack: Stack) -> None:
    stack.kit.put("portal")
    _, v2 = stack.kit.put("portal")
    config = stack.config(["portal"])
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    assert read_key(sink) == v2
    daemon.stop()

    stack.openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(
        path=stack.kit.path("portal")
    )
    _, again = stack.kit.put("portal")  # version 1 of a new secret; the state says 2
    daemon = stack.start(config)
    daemon.wait_until(lambda: read_key(sink) == again, 15, "the new secret's key")
    reset = daemon.events("key.state_reset")
    assert reset[0]["previous_active_version"] == 2
    assert not daemon.events("key.secret_missing")
    assert stack.state(config, "portal")["active_version"] == 1
