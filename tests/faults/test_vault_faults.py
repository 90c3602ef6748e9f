"""Vault misbehaving under a running daemon: sealed, crashed and restarted, a policy tightened
under it, its token revoked, answers slower than the client timeout.

Real ``rotator run`` subprocesses against a real OpenBao: a persistent (raft) server of the
test's own where it is sealed or killed, the session dev server otherwise. The daemon logs in
with an AppRole holding exactly the shipped policy (``deploy/vault/rotator-policy.hcl``)
except where a root token is the point. A plain stop and restart of Vault is in
``tests/integration/test_daemon_core.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rotator.config.vault import AppRoleAuth
from tests.faults.proxy import FaultProxy
from tests.faults.tools import Stack, read_key, vault_errors
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.openbao import ROTATOR_POLICY, OpenBaoServer, create_approle
from tests.waiting import wait_for


def approle(auth: AppRoleAuth) -> dict[str, Any]:
    return {
        "method": "approle",
        "role_id_file": str(auth.role_id_file),
        "secret_id_file": str(auth.secret_id_file),
    }


def readiness(daemon: DaemonProcess) -> tuple[int, str]:
    answer = httpx.get(f"{daemon.admin_url}/readyz", timeout=10)
    return answer.status_code, answer.json().get("reason", "")


def hold(seconds: float, check: Any, what: str) -> None:
    """``check()`` stays true for ``seconds`` (sampled every 0.2 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.2)


def accessor_of_role(openbao: OpenBaoServer, role: str) -> list[str]:
    root = openbao.client()
    found = []
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        meta = root.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
        if meta.get("role_name") == role:
            found.append(str(accessor))
    return found


def test_sealed_vault_delivers_nothing_until_unsealed(sealable_stack: Stack) -> None:
    stack = sealable_stack
    _, v1 = stack.kit.put("portal")
    config = stack.config(["portal"], vault={"timeout_seconds": 2})
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    assert read_key(sink) == v1

    # Staged before the seal; Mistral happens to be unavailable, so it is still pending.
    _, v2 = stack.kit.put("portal", "unavailable")
    daemon.wait_until(
        lambda: any(e["version"] == 2 for e in daemon.events("key.rotation_postponed")),
        10,
        "v2 postponed",
    )
    stack.openbao.seal()
    stack.standin.set_key(v2, "valid")

    daemon.wait_until(lambda: readiness(daemon) == (503, "vault is sealed"), 10, "readyz 503")
    daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 0, 10, "rotator_vault_up 0")
    # Longer than a poll's backoff and the token upkeep (every 5 s): still down, nothing sent.
    hold(6, lambda: daemon.metric("rotator_vault_up") == 0, "rotator_vault_up went back to 1")
    assert read_key(sink) == v1
    assert readiness(daemon)[0] == 503
    assert daemon.events("vault.unavailable")[-1]["reason"] == "sealed or unavailable (503)"

    stack.openbao.unseal()
    daemon.wait_until(lambda: read_key(sink) == v2, 20, "v2 delivered after the unseal")
    daemon.wait_until(lambda: readiness(daemon)[0] == 200, 10, "ready again")
    assert daemon.metric("rotator_vault_up") == 1
    # The sinks get the key before the state records it (the commit point comes last).
    daemon.wait_until(
        lambda: (
            stack.state(config, "portal").get("active_version") == 2
            and daemon.metric("mistral_key_active_version", key="portal") == 2
        ),
        10,
        "v2 recorded and exported",
    )
    stack.assert_no_key_leaked()


def test_vault_crash_and_restart_keeps_the_data_and_the_daemon_logs_in_again(
    raft_stack: Stack, tmp_path: Any
) -> None:
    stack = raft_stack
    _, v1 = stack.kit.put("portal")
    # Tokens live 4 s unless renewed: they run out while Vault is down.
    auth = create_approle(stack.openbao, tmp_path, token_ttl="4s", token_max_ttl="1h")
    config = stack.config(["portal"], vault={"auth": approle(auth), "timeout_seconds": 2})
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    assert read_key(sink) == v1
    logins = len(daemon.events("vault.login"))

    stack.openbao.kill()  # no clean shutdown
    daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 0, 10, "rotator_vault_up 0")
    assert readiness(daemon)[0] == 503
    time.sleep(4.5)  # the token expires meanwhile
    assert len(daemon.events("vault.login")) == logins
    stack.openbao.start()

    daemon.wait_until(lambda: readiness(daemon)[0] == 200, 20, "ready after the restart")
    assert stack.state(config, "portal")["active_version"] == 1  # the state survived
    _, v2 = stack.kit.put("portal")
    daemon.wait_until(lambda: read_key(sink) == v2, 15, "v2 delivered after the restart")
    assert len(daemon.events("vault.login")) > logins  # it logged in again by itself
    assert daemon.metric("rotator_vault_up") == 1
    assert not daemon.events("vault.permission_denied")
    # Nothing older was delivered again on the way.
    assert [e["version"] for e in daemon.events("sink.delivered")] == [1, 2]
    stack.assert_no_key_leaked()


def test_policy_tightened_mid_run_stops_only_that_key(stack: Stack, tmp_path: Any) -> None:
    first = {name: stack.kit.put(name)[1] for name in ("open", "closed")}
    auth = create_approle(stack.openbao, tmp_path)
    config = stack.config(["open", "closed"], vault={"auth": approle(auth)})
    daemon = stack.start(config)
    for name, value in first.items():
        assert read_key(stack.sink_path(config, name)) == value
    errors = vault_errors(daemon)

    closed = stack.kit.path("closed")
    tightened = ROTATOR_POLICY + "".join(
        f'\npath "secret/{kind}/{closed}" {{\n  capabilities = ["deny"]\n}}\n'
        for kind in ("data", "metadata")
    )
    stack.openbao.client().sys.create_or_update_policy(
        name=auth.role_id_file.stem, policy=tightened
    )
    # The folder's detailed-metadata list (still granted) tells the daemon about new versions;
    # it meets the denial when it must read the key itself: give it a version to read.
    stack.kit.put("closed")

    def denied() -> list[dict[str, Any]]:
        return daemon.events("vault.permission_denied")

    daemon.wait_until(denied, 10, "vault.permission_denied")
    assert denied()[0]["path"] == f"secret/metadata/{closed}"
    assert denied()[0]["level"] == "warning"
    daemon.wait_until(lambda: vault_errors(daemon) >= errors + 3, 10, "vault errors counted")
    # Refused at every poll, but its token works: no new login (and token) per refusal.
    assert len(daemon.events("vault.login")) == 1
    problem = daemon.key("closed")["problem"] or ""
    assert f"permission denied on secret/metadata/{closed}" in problem

    # The other key keeps rotating; the closed one keeps the key it had.
    _, open_v2 = stack.kit.put("open")
    stack.kit.put("closed")
    daemon.wait_until(
        lambda: read_key(stack.sink_path(config, "open")) == open_v2, 10, "open v2 delivered"
    )
    assert read_key(stack.sink_path(config, "closed")) == first["closed"]
    assert daemon.metric("rotator_vault_up") == 1  # Vault answers: it is the policy
    assert readiness(daemon)[0] == 200
    assert daemon.metric("mistral_key_valid", key="closed") == 1
    stack.assert_no_key_leaked()


def test_revoked_token_is_replaced_by_a_new_login(stack: Stack, tmp_path: Any) -> None:
    _, v1 = stack.kit.put("portal")
    auth = create_approle(stack.openbao, tmp_path)
    config = stack.config(["portal"], vault={"auth": approle(auth)})
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    assert read_key(sink) == v1
    logins = len(daemon.events("vault.login"))

    [accessor] = accessor_of_role(stack.openbao, auth.role_id_file.stem)
    stack.openbao.client().auth.token.revoke_accessor(accessor)
    _, v2 = stack.kit.put("portal")

    daemon.wait_until(lambda: read_key(sink) == v2, 10, "v2 delivered with a new token")
    assert len(daemon.events("vault.login")) == logins + 1
    assert not daemon.events("vault.permission_denied")
    assert readiness(daemon)[0] == 200
    assert daemon.metric("rotator_vault_up") == 1
    stack.assert_no_key_leaked()


@pytest.fixture
def vault_proxy(stack: Stack) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", stack.openbao.port)) as proxy:
        yield proxy


def test_vault_slower_than_the_client_timeout(stack: Stack, vault_proxy: FaultProxy) -> None:
    _, v1 = stack.kit.put("portal")
    config = stack.config(["portal"], vault={"address": vault_proxy.url, "timeout_seconds": 1})
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    assert read_key(sink) == v1

    vault_proxy.delay(3)  # every answer from Vault held back 3 s: past the 1 s timeout
    _, v2 = stack.kit.put("portal")  # (straight to Vault, not through the proxy)

    def timed_out() -> bool:
        return any(e["reason"] == "timed out" for e in daemon.events("vault.unavailable"))

    daemon.wait_until(timed_out, 10, "vault.unavailable: timed out")
    daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 0, 10, "rotator_vault_up 0")
    status, reason = readiness(daemon)
    assert status == 503 and "timed out" in reason
    # The daemon itself stays responsive: its loop never waits on Vault.
    started = time.monotonic()
    assert daemon.api("GET", "/healthz").status_code == 200
    assert daemon.key("portal")["active_version"] == 1
    assert time.monotonic() - started < 1
    hold(3, lambda: read_key(sink) == v1, "a version was delivered through a timed-out Vault")

    vault_proxy.passthrough()
    daemon.wait_until(lambda: read_key(sink) == v2, 20, "v2 delivered once Vault is quick")
    daemon.wait_until(lambda: daemon.metric("rotator_vault_up") == 1, 10, "rotator_vault_up 1")
    assert readiness(daemon)[0] == 200
    wait_for(lambda: stack.state(config, "portal")["active_version"] == 2, 5, "v2 recorded")
    stack.assert_no_key_leaked()
