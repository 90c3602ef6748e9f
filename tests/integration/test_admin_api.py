"""The admin API of a running daemon (a subprocess), against OpenBao and the Mistral stand-in.

One daemon serves the module; every test acts on keys of its own, so their order does not
matter. The last test scans every answer received and everything the daemon printed for
the key values.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rotator.admin.routes import create_app
from rotator.admin.state import AdminState
from rotator.app.bootstrap import admin_deps, build_app
from rotator.config import parse_settings
from rotator.demo.standin import MistralStandIn
from tests.dates import expiry_in
from tests.fixtures.daemon import (
    DaemonProcess,
    KeyKit,
    Stack,
    assert_no_key_in,
    daemon_config,
    seeded,
    seeded_stack,
    sink_file,
)
from tests.fixtures.openbao import OpenBaoServer

EXPIRES_AT = expiry_in(200)
EXPIRES = EXPIRES_AT[:10]
NAMES = (
    "alpha",
    "rot",
    "rej",
    "lost",
    "slow",
    "back",
    "back-bad",
    "solo",
    "ver",
    "ver-busy",
)
FIELDS = {
    "name",
    "status",
    "active_version",
    "latest_version",
    "expires_at",
    "expiry_assumed",
    "days_left",
    "last_check_at",
    "last_rotation_at",
    "fingerprint",
}


@pytest.fixture(scope="module")
def stack(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("admin-api")
    with seeded_stack(openbao, workdir, "admin-api", NAMES, EXPIRES_AT) as stack:
        yield stack
        assert stack.daemon.stop() == 0, stack.daemon.tail()


def sink(stack: Stack, name: str) -> str:
    return sink_file(stack.daemon, name).read_text().strip()


def rotate(stack: Stack, name: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return stack.daemon.api("POST", f"/api/v1/keys/{name}/rotate", json=body, **kwargs)


def audit(stack: Stack, action: str, name: str) -> list[dict[str, Any]]:
    return [e for e in stack.daemon.events(f"admin.{action}") if e.get("key") == name]


# --- probes and the document ---------------------------------------------------------------


def test_probes_and_openapi_need_no_token(stack: Stack) -> None:
    d = stack.daemon
    assert d.api("GET", "/healthz", token=None).json() == {"status": "ok"}
    ready = d.api("GET", "/readyz", token=None)
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "reason": "ok"}
    document = d.api("GET", "/openapi.json", token=None).json()
    assert set(document["paths"]) >= {
        "/api/v1/keys",
        "/api/v1/keys/{name}",
        "/api/v1/keys/{name}/rotate",
        "/api/v1/keys/{name}/verify",
        "/api/v1/keys/{name}/rollback",
    }


# --- reading -------------------------------------------------------------------------------


def test_list_keys_shows_contract_fields_and_fingerprints(stack: Stack) -> None:
    answer = stack.daemon.api("GET", "/api/v1/keys")
    assert answer.status_code == 200
    listing = answer.json()
    assert (listing["warn_days"], listing["critical_days"]) == (30, 7)
    by_name = {k["name"]: k for k in listing["keys"]}
    assert set(by_name) == set(NAMES)
    alpha = by_name["alpha"]
    assert set(alpha) >= FIELDS
    assert alpha["status"] == "valid"
    assert alpha["fingerprint"] == stack.first["alpha"][-4:]
    assert alpha["expires_at"].startswith(EXPIRES)
    assert alpha["expiry_assumed"] is False
    assert 200 < alpha["days_left"] <= 200.25
    assert alpha["active_version"] == alpha["latest_version"] == 1


def test_get_one_key_and_404_for_unknown(stack: Stack) -> None:
    one = stack.daemon.api("GET", "/api/v1/keys/alpha")
    assert one.status_code == 200
    assert one.json()["name"] == "alpha"
    assert one.json()["fingerprint"] == stack.first["alpha"][-4:]
    missing = stack.daemon.api("GET", "/api/v1/keys/no-such-key")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "unknown key: no-such-key"}


# --- auth ----------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/v1/keys"),
    ("GET", "/api/v1/keys/alpha"),
    ("POST", "/api/v1/keys/alpha/rotate"),
    ("POST", "/api/v1/keys/alpha/verify"),
    ("POST", "/api/v1/keys/alpha/rollback"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_401_without_token_403_with_wrong_one(stack: Stack, method: str, path: str) -> None:
    d = stack.daemon
    without = d.api(method, path, token=None)
    assert without.status_code == 401
    assert without.headers["www-authenticate"] == "Bearer"
    basic = d.api(method, path, token=None, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert basic.status_code == 401
    wrong = d.api(method, path, token=d.token + "x")
    assert wrong.status_code == 403
    assert wrong.json() == {"detail": "the admin token was refused"}


def test_refused_calls_do_nothing_and_are_logged(stack: Stack) -> None:
    d = stack.daemon
    before = len(audit(stack, "rotate", "alpha"))
    assert rotate(stack, "alpha", token="not-the-token-at-all").status_code == 403
    assert len(audit(stack, "rotate", "alpha")) == before
    refused = d.events("admin.auth_refused")
    assert refused and refused[-1]["caller"] == "127.0.0.1"
    assert "not-the-token" not in d.output()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"version": "2"},
        {"version": 0},
        {"version": -1},
        {"version": 1.5},
        {"version": 2**40},
        {"version": True},
        {"force": "yes"},
        {"force": 1},
        {"extra": 1},
        [1, 2],
        "text",
    ],
)
def test_malformed_rotate_bodies_get_422(stack: Stack, body: Any) -> None:
    answer = rotate(stack, "alpha", body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][0] == "body"
    assert stack.daemon.key("alpha")["active_version"] == 1


@pytest.mark.parametrize("content", [b"{not json", b"e\xff\x04\x00u\xfe"])
def test_not_json_gets_422(stack: Stack, content: bytes) -> None:
    answer = stack.daemon.api(
        "POST",
        "/api/v1/keys/alpha/rotate",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text


def test_a_whole_float_is_an_integer_version(stack: Stack) -> None:
    answer = rotate(stack, "alpha", {"version": 1.0})
    assert answer.status_code == 200
    assert answer.json()["result"] == "noop"


def test_body_over_4_kib_gets_413(stack: Stack) -> None:
    big = b'{"version": 1, "pad": "' + b"x" * 5000 + b'"}'
    answer = stack.daemon.api(
        "POST",
        "/api/v1/keys/alpha/rotate",
        content=big,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield from (b"x" * 1024 for _ in range(6))

    chunked = stack.daemon.api("POST", "/api/v1/keys/alpha/verify", content=chunks())
    assert chunked.status_code == 413
    assert stack.daemon.ready()


def test_unknown_key_operations_get_404_and_are_audited(stack: Stack) -> None:
    for action in ("rotate", "verify", "rollback"):
        answer = stack.daemon.api("POST", f"/api/v1/keys/ghost/{action}")
        assert answer.status_code == 404
        assert audit(stack, action, "ghost")[-1]["outcome"] == "unknown_key"


# --- rotate --------------------------------------------------------------------------------


def test_rotate_moves_the_file_and_the_metrics(stack: Stack) -> None:
    d = stack.daemon
    assert sink(stack, "rot") == stack.first["rot"]
    assert d.metric("mistral_key_active_version", key="rot") == 1
    version, value = stack.kit.put("rot", expires_at=EXPIRES_AT)
    answer = rotate(stack, "rot")
    assert answer.status_code == 200
    assert answer.json() == {
        "result": "rotated",
        "active_version": version,
        "reason": "",
        "version": version,
        "status": "valid",
        "fingerprint": value[-4:],
    }
    assert sink(stack, "rot") == value
    assert d.metric("mistral_key_active_version", key="rot") == version
    assert d.metric("mistral_key_rotations_total", key="rot", result="rotated") == 2
    assert d.key("rot")["fingerprint"] == value[-4:]
    event = audit(stack, "rotate", "rot")[-1]
    assert event["outcome"] == "rotated"
    assert event["caller"].startswith("127.0.0.1:")
    assert event["active_version"] == version

    again = rotate(stack, "rot", {"force": False})
    assert again.json()["result"] == "noop"
    assert again.json()["reason"] == f"version {version} is already active"


def test_rotate_rejects_a_key_mistral_refuses(stack: Stack) -> None:
    version, _ = stack.kit.put("rej", "invalid")
    answer = rotate(stack, "rej").json()
    assert answer["result"] == "rejected"
    assert answer["active_version"] == 1
    assert answer["version"] == version
    assert answer["status"] == "invalid"
    assert sink(stack, "rej") == stack.first["rej"]
    assert stack.daemon.metric("mistral_key_rotations_total", key="rej", result="rejected") == 1
    assert audit(stack, "rotate", "rej")[-1]["outcome"] == "rejected"


def test_force_redelivers_to_a_sink_that_lost_the_key(stack: Stack) -> None:
    sink_file(stack.daemon, "lost").unlink()
    answer = rotate(stack, "lost", {"force": True}).json()
    assert answer["result"] == "noop"
    assert answer["reason"] == "re-delivered version 1 to 1 sink(s)"
    assert sink(stack, "lost") == stack.first["lost"]


def test_second_operation_on_a_busy_key_gets_409(stack: Stack) -> None:
    _, slow_value = stack.kit.put("slow", "slow:2", expires_at=EXPIRES_AT)
    first: dict[str, httpx.Response] = {}
    worker = threading.Thread(target=lambda: first.update(answer=rotate(stack, "slow")))
    worker.start()
    try:
        stack.daemon.wait_until(lambda: stack.standin.count(slow_value) > 0, 10, "verification")
        for action in ("rotate", "verify", "rollback"):
            clash = stack.daemon.api("POST", f"/api/v1/keys/slow/{action}")
            assert clash.status_code == 409, clash.text
            assert "under way" in clash.json()["detail"]
            assert audit(stack, action, "slow")[-1]["outcome"] == "busy"
    finally:
        worker.join(30)
    assert first["answer"].json()["result"] == "rotated"
    assert sink(stack, "slow") == slow_value


# --- verify --------------------------------------------------------------------------------


def test_verify_answers_the_keys_fields_and_sees_a_change(stack: Stack) -> None:
    d = stack.daemon
    before = d.key("ver")["last_check_at"]
    answer = d.api("POST", "/api/v1/keys/ver/verify")
    assert answer.status_code == 200
    key = answer.json()
    assert set(key) >= FIELDS
    assert key["status"] == "valid"
    assert key["last_check_at"] > before
    stack.standin.set_key(stack.first["ver"], "billing")
    blocked = d.api("POST", "/api/v1/keys/ver/verify").json()
    assert blocked["status"] == "billing_blocked"
    assert d.metric("mistral_key_status", key="ver", status="billing_blocked") == 1
    assert d.metric("mistral_key_valid", key="ver") == 0
    assert audit(stack, "verify", "ver")[-1]["outcome"] == "billing_blocked"


# --- rollback ------------------------------------------------------------------------------


def test_rollback_to_a_previous_version_that_still_verifies(stack: Stack) -> None:
    d = stack.daemon
    stack.kit.put("back", expires_at=EXPIRES_AT)
    assert rotate(stack, "back").json()["active_version"] == 2
    answer = d.api("POST", "/api/v1/keys/back/rollback")
    assert answer.status_code == 200
    assert answer.json()["result"] == "rolled_back"
    assert answer.json()["active_version"] == 1
    assert answer.json()["fingerprint"] == stack.first["back"][-4:]
    assert sink(stack, "back") == stack.first["back"]
    assert d.metric("mistral_key_active_version", key="back") == 1
    assert d.metric("mistral_key_rotations_total", key="back", result="rolled_back") == 1
    # The version rolled back from does not come straight back.
    assert rotate(stack, "back").json()["result"] == "noop"
    assert sink(stack, "back") == stack.first["back"]
    assert audit(stack, "rollback", "back")[-1]["outcome"] == "rolled_back"


def test_rollback_refused_when_the_previous_key_fails(stack: Stack) -> None:
    _, value = stack.kit.put("back-bad", expires_at=EXPIRES_AT)
    assert rotate(stack, "back-bad").json()["result"] == "rotated"
    stack.standin.set_key(stack.first["back-bad"], "invalid")
    answer = stack.daemon.api("POST", "/api/v1/keys/back-bad/rollback").json()
    assert answer["result"] == "rejected"
    assert answer["active_version"] == 2
    assert sink(stack, "back-bad") == value


def test_rollback_without_a_previous_version(stack: Stack) -> None:
    before = stack.daemon.key("solo")["last_result"]
    answer = stack.daemon.api("POST", "/api/v1/keys/solo/rollback")
    # An operator's mistake: a sentence and 409, and the healthy key's last result untouched.
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"] == "nothing to roll back to: solo has no previous version"
    assert sink(stack, "solo") == stack.first["solo"]
    assert stack.daemon.key("solo")["last_result"] == before


# --- an operation that outlives the wait (in-process, with a short wait) --------------------


async def test_operation_outliving_the_wait_answers_202_and_carries_on(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
    captured_log: Callable[[], list[dict[str, Any]]],
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("k")
    config = daemon_config(tmp_path, openbao, mistral, kit, ["k"], admin_token_file=None)
    app = build_app(parse_settings(config))
    try:
        await app.service.poll("k")
        _, value = kit.put("k", "slow:1.5")
        state = AdminState(admin_deps(app, token=None), wait_s=0.3)
        transport = httpx.ASGITransport(create_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            assert (await client.get("/readyz")).json() == {
                "ready": False,
                "reason": "scheduler not running",
            }
            answer = await client.post("/api/v1/keys/k/rotate")
            assert answer.status_code == 202
            assert answer.headers["location"] == "/api/v1/keys/k"
            assert answer.json()["location"] == "/api/v1/keys/k"
            assert (await client.post("/api/v1/keys/k/verify")).status_code == 409
            await asyncio.wait(set(state.operations), timeout=15)
            key = (await client.get("/api/v1/keys/k")).json()
    finally:
        await app.aclose()
    assert key["active_version"] == 2
    assert (tmp_path / "sinks" / "k.key").read_text().strip() == value
    outcomes = [(e["event"], e["outcome"]) for e in captured_log() if "outcome" in e]
    assert outcomes == [("admin.verify", "busy"), ("admin.rotate", "rotated")]


# --- never the key -------------------------------------------------------------------------


def test_no_key_value_in_any_answer_or_in_the_daemons_output(stack: Stack) -> None:
    d = stack.daemon
    d.api("GET", "/api/v1/keys")
    for name in NAMES:
        d.api("GET", f"/api/v1/keys/{name}")
    d.api("POST", "/api/v1/keys/alpha/verify")
    rotate(stack, "alpha", {"force": True})
    assert len(d.answers) > 20
    assert len(stack.kit.values) > len(NAMES)
    assert_no_key_in(d.answers, stack.kit.values)
    assert_no_key_in([d.output()], stack.kit.values)
    assert_no_key_in([d.output()], [d.token or ""])
    assert "Traceback" not in d.output()


# --- starting with and without a token (daemons of their own) ------------------------------


def run_briefly(
    workdir: Path, config: dict[str, Any], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``rotator run`` that is expected to refuse to start."""
    path = workdir / "rotator.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "rotator", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_daemon_refuses_to_start_without_a_token(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    config = daemon_config(tmp_path, openbao, mistral, kit, ["a"], admin_token_file=None)
    env = DaemonProcess(tmp_path, config, token=None).base_env()
    refused = run_briefly(tmp_path, config, env)
    assert refused.returncode == 2
    assert "no admin token" in refused.stderr
    config["server"].update(admin_listen="0.0.0.0:0", admin_insecure_loopback=True)
    off_loopback = run_briefly(tmp_path, config, env)
    assert off_loopback.returncode == 2
    assert "only allowed when admin_listen is a loopback" in off_loopback.stderr


def test_insecure_loopback_serves_without_a_token(daemon_factory: Any) -> None:
    daemon, _ = daemon_factory(
        seeded("open"),
        token=None,
        server={"admin_insecure_loopback": True},
    )
    answer = daemon.api("GET", "/api/v1/keys", token=None)
    assert answer.status_code == 200
    assert [k["name"] for k in answer.json()["keys"]] == ["open"]
    assert daemon.events("admin.no_auth")
    assert daemon.events("admin.listening")[-1]["auth"] == "none"


def test_token_from_the_environment(daemon_factory: Any) -> None:
    token = "env-token-" + uuid.uuid4().hex
    daemon, _ = daemon_factory(
        seeded("envkey"),
        token=None,
        env={"ROTATOR_ADMIN_TOKEN": token},
    )
    assert daemon.api("GET", "/api/v1/keys", token=None).status_code == 401
    assert daemon.api("GET", "/api/v1/keys", token=token).status_code == 200
    assert token not in daemon.output()


def test_readyz_503_with_the_reason_when_vault_refuses(
    daemon_factory: Any, openbao: OpenBaoServer
) -> None:
    token = openbao.client().auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
    daemon, _ = daemon_factory(seeded("k"), vault_token=token)
    assert daemon.api("GET", "/readyz").status_code == 200
    openbao.client().auth.token.revoke(token)
    answer = daemon.api("GET", "/readyz", token=None)
    assert answer.status_code == 503
    assert answer.json()["ready"] is False
    assert "vault authentication failed" in answer.json()["reason"]
    assert daemon.api("GET", "/healthz").status_code == 200
