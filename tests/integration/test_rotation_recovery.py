"""Rotation when things go wrong: a sink down, a daemon killed mid-delivery, two daemons.

Real ``rotator run`` subprocesses against the session OpenBao, the Mistral stand-in, real
files, a process that counts its SIGHUP reloads and a real HTTP receiver (``rotation_rig``).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.receiver import Receiver
from tests.integration.rotation_rig import POLL_S, Rig, open_rig
from tests.waiting import wait_for


@pytest.fixture
def rig(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    receiver: Receiver,
    kv_prefix: str,
    tmp_path: Path,
) -> Iterator[Rig]:
    yield from open_rig(openbao, mistral, receiver, kv_prefix, tmp_path, {"portal": "valid"})


def sigkill(daemon: DaemonProcess) -> None:
    """As the kernel's OOM killer would: no clean-up, no last log line."""
    process = daemon._process
    assert process is not None and process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(5)


def test_second_sink_down_puts_the_first_back_then_completes_later(rig: Rig) -> None:
    rig.configure(reload_key="portal", rotation={"sink_attempts": 2, "retry_backoff": "0.2s"})
    daemon = rig.start()
    app = rig.app
    assert app is not None
    v1 = rig.kit.values[0]
    wait_for(lambda: app.reloads() == [v1[-4:]], 5, "the first reload")

    rig.receiver.respond(500, b"portal is down")
    _, v2 = rig.kit.put("portal")
    wait_for(lambda: rig.rotations(daemon, "portal", "failed") >= 1, 10, "a failed rotation")
    # The file sink took v2, the receiver refused it twice (sink_attempts), the file was put
    # back to v1 (its own reload each time), and the receiver was offered v1 back too.
    assert app.reloads()[:3] == [v1[-4:], v2[-4:], v1[-4:]]
    assert rig.received("portal")[:5] == [(1, v1), (2, v2), (2, v2), (1, v1), (1, v1)]
    wait_for(lambda: rig.file_key("portal") == v1 + "\n", 2, "v1 back in the file")
    state = rig.state("portal")
    assert state["active_version"] == 1 and state["last_result"].startswith("failed:")
    assert "HTTP 500" in state["last_result"] and "pending_version" not in state
    assert daemon.metric("mistral_key_active_version", key="portal") == 1
    assert rig.rotations(daemon, "portal", "rotated") == 1
    [failed, *_] = daemon.events("key.rotation_failed")
    assert (failed["version"], failed["active_version"]) == (2, 1)

    # It keeps trying, with backoff, while the portal is down; every try is undone.
    wait_for(lambda: rig.rotations(daemon, "portal", "failed") >= 2, 10, "a second try")
    rig.receiver.respond(200)
    wait_for(lambda: rig.state("portal").get("active_version") == 2, 10, "v2 recorded")
    assert rig.file_key("portal") == v2 + "\n"
    assert rig.received("portal")[-1] == (2, v2)
    assert app.reloads()[-1] == v2[-4:]
    assert rig.rotations(daemon, "portal", "rotated") == 2
    wait_for(lambda: daemon.metric("mistral_key_active_version", key="portal") == 2, 5, "metric")
    # Nothing lost: every reload found one of the two keys in the file, never anything else.
    assert set(app.reloads()) == {v1[-4:], v2[-4:]}
    rig.assert_no_key_leaked()


def test_sigkill_between_sinks_then_restart_converges(rig: Rig) -> None:
    # A lease shorter than the default, so that the restart comes while it still holds and
    # the test still ends soon after it runs out.
    rig.configure(reload_key="portal", http_timeout_s=60, rotation={"lease": "4s"})
    first = rig.start()
    app = rig.app
    assert app is not None
    v1 = rig.kit.values[0]
    wait_for(lambda: app.reloads() == [v1[-4:]], 5, "the first reload")

    rig.receiver.hang()  # the second sink takes the request and never answers
    _, v2 = rig.kit.put("portal")
    wait_for(lambda: rig.received("portal")[-1:] == [(2, v2)], 10, "v2 sent to the receiver")
    assert rig.file_key("portal") == v2 + "\n"  # the first sink already took it
    sigkill(first)
    state = rig.state("portal")
    assert (state["active_version"], state["pending_version"]) == (1, 2)  # killed mid-rotation

    rig.receiver.respond(200)
    sent_before = len(rig.received("portal"))
    second = rig.start()
    wait_for(
        lambda: rig.state("portal").get("active_version") == 2, 15, "v2 recorded after restart"
    )
    state = rig.state("portal")
    assert "pending_version" not in state and state["previous_version"] == 1
    assert rig.file_key("portal") == v2 + "\n"
    assert rig.received("portal")[-1] == (2, v2)
    # The restarted daemon never sent the receiver anything but the newest version.
    assert rig.received("portal")[sent_before:] == [(2, v2)]
    assert app.reloads()[-1] == v2[-4:]
    wait_for(lambda: second.metric("mistral_key_active_version", key="portal") == 2, 5, "metric")
    time.sleep(2 * POLL_S)  # and stays there
    assert rig.received("portal")[sent_before:] == [(2, v2)]
    assert rig.file_key("portal") == v2 + "\n"
    rig.assert_no_key_leaked()


def test_two_daemons_deliver_a_new_version_once(rig: Rig) -> None:
    rig.configure(reload_key="portal")
    one = rig.start()
    app = rig.app
    assert app is not None
    v1 = rig.kit.values[0]
    wait_for(lambda: app.reloads() == [v1[-4:]], 5, "the first reload")
    # A second instance (a rolling update) finds every sink holding the active key: it
    # delivers nothing.
    two = rig.start()
    time.sleep(POLL_S)
    assert app.reloads() == [v1[-4:]]
    assert rig.received("portal") == [(1, v1)]
    history_before = len(rig.state_history("portal"))

    # Mistral answers slowly: both daemons, polling less than a second apart, are verifying
    # v2 at once, and both go for the lease; check-and-set lets exactly one through.
    _, v2 = rig.kit.put("portal", "slow:1.5")

    def both_see_v2() -> bool:
        return all(d.metric("mistral_key_active_version", key="portal") == 2 for d in (one, two))

    wait_for(both_see_v2, 10, "both daemons see v2 active")
    time.sleep(2 * POLL_S)
    assert app.reloads() == [v1[-4:], v2[-4:]]  # one reload
    assert rig.received("portal") == [(1, v1), (2, v2)]  # one call
    assert rig.file_key("portal") == v2 + "\n"
    rotated = [rig.rotations(d, "portal", "rotated") for d in (one, two)]
    assert sum(rotated) == 2  # v1 by the first, v2 by whichever came first
    activations = [
        s for s in rig.state_history("portal")[history_before:] if s.get("active_version") == 2
    ]
    # Written once as active (and kept by later records), never activated twice.
    assert [s.get("last_result") for s in activations].count("rotated") == len(activations)
    assert len({s["activated_at"] for s in activations}) == 1
    assert sum(len(d.events("key.rotated")) for d in (one, two)) == 2
    assert rig.standin.count(v2) == 2  # each verified it ...
    yielded = [e for d in (one, two) for e in d.events("key.rotation_yielded")]
    assert [e["version"] for e in yielded] == [2]  # ... and one gave way
    rig.assert_no_key_leaked()
