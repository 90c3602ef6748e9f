"""Rotation in a running daemon: a new version in Vault reaches every sink, or none.

Each test runs real ``rotator run`` subprocesses (poll every second) against the session
OpenBao, the Mistral stand-in, real files, a process that counts its SIGHUP reloads and a
real HTTP receiver; see ``rotation_rig``. Each ends by scanning all the daemons printed and
answered for the key values.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.dates import expiry_in
from tests.fixtures.daemon import new_key_value
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.receiver import Receiver
from tests.integration.rotation_rig import POLL_S, Rig, open_rig
from tests.waiting import wait_for

EXPIRES_AT = expiry_in(200)
EXPIRES = EXPIRES_AT[:10]
# A poll interval, its jitter, a verification and the deliveries, on a busy 2-core CI box.
WITHIN_S = POLL_S + 2.0


@pytest.fixture
def rig(
    request: pytest.FixtureRequest,
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    receiver: Receiver,
    kv_prefix: str,
    tmp_path: Path,
) -> Iterator[Rig]:
    seed: dict[str, str] = getattr(request, "param", {"portal": "valid"})
    yield from open_rig(openbao, mistral, receiver, kv_prefix, tmp_path, seed)


def test_new_valid_version_reaches_every_sink_within_a_poll(rig: Rig) -> None:
    rig.configure(reload_key="portal", schedule={"verify_interval": "1s"})
    daemon = rig.start()
    app = rig.app
    assert app is not None
    v1 = rig.kit.values[0]
    # The first start delivered version 1 everywhere: one reload, one call.
    wait_for(lambda: app.reloads() == [v1[-4:]], 5, "the first reload")
    assert rig.received("portal") == [(1, v1)]
    assert rig.rotations(daemon, "portal", "rotated") == 1

    version, v2 = rig.kit.put("portal", expires_at=EXPIRES_AT)
    put_at = time.monotonic()
    wait_for(lambda: rig.file_key("portal") == v2 + "\n", WITHIN_S + 1, "v2 in the file")
    wait_for(lambda: rig.received("portal")[-1:] == [(2, v2)], WITHIN_S + 1, "v2 at the receiver")
    took = time.monotonic() - put_at
    assert took < WITHIN_S, f"delivered {took:.2f}s after the Vault write"

    wait_for(lambda: rig.state("portal").get("active_version") == version, 5, "state records v2")
    state = rig.state("portal")
    assert (state["active_version"], state["previous_version"]) == (2, 1)
    assert state["last_result"] == "rotated" and "pending_version" not in state
    assert daemon.metric("mistral_key_active_version", key="portal") == 2
    assert daemon.metric("mistral_key_latest_version", key="portal") == 2
    assert rig.rotations(daemon, "portal", "rotated") == 2
    assert (daemon.metric("mistral_key_last_rotation_timestamp_seconds", key="portal") or 0) > 0
    view = daemon.key("portal")
    assert (view["active_version"], view["fingerprint"]) == (2, v2[-4:])
    assert view["expires_at"].startswith(EXPIRES)

    # The replaced key still works in Mistral: ops are told to delete it.
    wait_for(
        lambda: daemon.metric("mistral_key_previous_still_valid", key="portal") == 1,
        5,
        "previous_still_valid = 1",
    )
    assert len(daemon.events("key.previous_still_valid")) == 1
    rig.standin.set_key(v1, "invalid")  # ops deleted it in the console
    wait_for(
        lambda: daemon.metric("mistral_key_previous_still_valid", key="portal") == 0,
        5,
        "previous_still_valid = 0",
    )

    time.sleep(3 * POLL_S)  # later polls must not deliver again
    assert app.reloads() == [v1[-4:], v2[-4:]]  # one reload, after the write
    assert rig.received("portal") == [(1, v1), (2, v2)]  # one call
    assert rig.rotations(daemon, "portal", "rotated") == 2
    [rotated] = [e for e in daemon.events("key.rotated") if e["version"] == 2]
    assert rotated["fingerprint"] == v2[-4:] and rotated["previous_version"] == 1
    assert len([e for e in daemon.events("sink.delivered") if e["version"] == 2]) == 2
    rig.assert_no_key_leaked()


BAD = {"revoked": "invalid", "billing": "billing", "model-less": "no-model"}


@pytest.mark.parametrize("rig", [dict.fromkeys(BAD, "valid")], indirect=True)
def test_bad_new_versions_are_rejected_once_and_never_delivered(rig: Rig) -> None:
    rig.configure()
    daemon = rig.start()
    first = dict(zip(rig.names, rig.kit.values, strict=True))
    candidates = {name: rig.kit.put(name, behaviour)[1] for name, behaviour in BAD.items()}

    def all_rejected() -> bool:
        return all(rig.rotations(daemon, name, "rejected") == 1 for name in BAD)

    wait_for(all_rejected, WITHIN_S + 1, "every candidate rejected")
    time.sleep(3 * POLL_S)  # three more polls: a rejected version is not tried again
    reasons = {e["key"]: e["reason"] for e in daemon.events("key.rotation_rejected")}
    assert reasons == {
        "revoked": "invalid",
        "billing": "billing_blocked",
        "model-less": "model_unavailable",
    }
    for name, candidate in candidates.items():
        assert rig.rotations(daemon, name, "rejected") == 1, name
        assert rig.rotations(daemon, name, "rotated") == 1, name  # version 1 only
        assert rig.standin.count(candidate) == 1, f"{name}: the candidate was verified again"
        assert rig.file_key(name) == first[name] + "\n", name
        assert rig.received(name) == [(1, first[name])], name
        state = rig.state(name)
        assert (state["active_version"], state["rejected_version"]) == (1, 2), name
        assert daemon.metric("mistral_key_active_version", key=name) == 1
        assert daemon.metric("mistral_key_latest_version", key=name) == 2
        assert daemon.key(name)["fingerprint"] == first[name][-4:]
    rig.assert_no_key_leaked()


def test_mistral_unavailable_postpones_and_the_key_is_delivered_after_the_backoff(
    rig: Rig,
) -> None:
    rig.configure()
    daemon = rig.start()
    _, v2 = rig.kit.put("portal", "seq:unavailable,unavailable,valid")

    wait_for(lambda: rig.file_key("portal") == v2 + "\n", 10, "v2 in the file")
    wait_for(lambda: rig.received("portal")[-1:] == [(2, v2)], 5, "v2 at the receiver")
    assert rig.standin.count(v2) >= 3  # two 503s, then the 200 that let it through
    postponed = [e for e in daemon.events("key.rotation_postponed") if e["version"] == 2]
    assert [e["status"] for e in postponed] == ["unreachable", "unreachable"]
    assert len(daemon.events("key.retry_scheduled")) >= 2
    assert rig.rotations(daemon, "portal", "rejected") == 0
    assert rig.rotations(daemon, "portal", "rotated") == 2
    assert rig.state("portal")["active_version"] == 2
    rig.assert_no_key_leaked()


def test_staged_key_is_picked_up_on_the_next_poll(rig: Rig) -> None:
    rig.configure()
    daemon = rig.start()
    staged = new_key_value()
    rig.kit.values.append(staged)
    rig.standin.set_key(staged, "valid")

    command = [sys.executable, "-m", "rotator", "stage", "portal", "--expires-at", EXPIRES]
    command += ["--config", str(daemon.config_path), "--key-name", "jtel Live Agent"]
    proc = subprocess.run(
        command,
        input=staged + "\n",
        capture_output=True,
        text=True,
        env=daemon.base_env(),
        timeout=60,
        check=False,
    )
    staged_at = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    assert "version 2" in proc.stdout and staged[-4:] in proc.stdout
    assert staged not in " ".join(command)  # the key went through stdin only

    wait_for(lambda: rig.file_key("portal") == staged + "\n", WITHIN_S + 1, "staged key in file")
    assert time.monotonic() - staged_at < WITHIN_S
    wait_for(lambda: rig.received("portal")[-1:] == [(2, staged)], 5, "staged key at receiver")
    wait_for(
        lambda: daemon.metric("mistral_key_active_version", key="portal") == 2, 5, "metric at 2"
    )
    assert daemon.key("portal")["expires_at"].startswith(EXPIRES)
    assert rig.state("portal")["active_version"] == 2
    rig.assert_no_key_leaked()
    assert staged not in proc.stdout + proc.stderr
