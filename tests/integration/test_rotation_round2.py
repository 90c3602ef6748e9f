"""Issue 11 (reliability round 2), the rotation defects, as a user meets them: a real daemon
(``rotator run``) on the session OpenBao and the Mistral stand-in, file sinks, the CLI.

- a key whose active version was deleted or destroyed still rotates after a restart (2);
- ``rotate --force`` re-delivers the active version, and a rollback never goes forward (3);
- an unexpected exception inside a sink keeps all-or-nothing (4);
- a SIGTERM in the middle of a long delivery is said, and repaired at the next start (7);
- a newest version with unusable data is a broken secret until replaced (13).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.receiver import Receiver
from tests.integration.rotation_rig import Rig, open_rig
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


def _rotated_to_v2(rig: Rig) -> tuple[str, str]:
    """A daemon that delivered v1 and then v2 (file sink only); the two key values."""
    rig.configure(http=False)
    daemon = rig.start()
    v1 = rig.kit.values[0]
    wait_for(lambda: rig.file_key("portal") == v1 + "\n", 10, "v1 in the file")
    _, v2 = rig.kit.put("portal")
    wait_for(lambda: rig.state("portal").get("active_version") == 2, 15, "v2 recorded")
    assert rig.file_key("portal") == v2 + "\n"
    daemon.stop()
    return v1, v2


@pytest.mark.parametrize("how", ["delete", "destroy"])
def test_deleted_active_version_still_rotates_after_a_restart(rig: Rig, how: str) -> None:
    _, v2 = _rotated_to_v2(rig)
    kv = rig.openbao.client().secrets.kv.v2
    if how == "delete":
        kv.delete_latest_version_of_secret(path=rig.kit.path("portal"))  # `bao kv delete`
    else:
        kv.destroy_secret_versions(path=rig.kit.path("portal"), versions=[2])

    daemon = rig.start(wait_checked=False)
    # It starts, says what is wrong, and tells ops what can be done (not "fix the secret").
    daemon.wait_until(daemon.ready, 20, "ready")
    problem = daemon.wait_until(lambda: daemon.key("portal").get("problem"), 20, "a problem")
    assert "version 2" in problem and "rotator stage" in problem, problem
    assert rig.file_key("portal") == v2 + "\n"  # nothing delivered meanwhile
    assert daemon.metric("mistral_key_secret_error", key="portal") == 1
    table = daemon.cli("status")
    assert "rotator stage portal" in table.stdout and "fix the Vault" not in table.stdout

    _, v3 = rig.kit.put("portal")
    wait_for(lambda: rig.state("portal").get("active_version") == 3, 15, "v3 recorded")
    assert rig.file_key("portal") == v3 + "\n"
    wait_for(lambda: daemon.key("portal").get("problem") is None, 10, "the problem cleared")
    assert daemon.metric("mistral_key_secret_error", key="portal") == 0
    rig.assert_no_key_leaked()


def test_force_redelivers_the_active_version_and_rollback_never_goes_forward(rig: Rig) -> None:
    rig.configure(http=False)
    daemon = rig.start()
    v1 = rig.kit.values[0]
    wait_for(lambda: rig.file_key("portal") == v1 + "\n", 10, "v1 in the file")
    rig.kit.put("portal")
    wait_for(lambda: rig.state("portal").get("active_version") == 2, 15, "v2 recorded")

    back = daemon.cli("rollback", "portal")
    assert back.returncode == 0, back.stderr
    assert rig.state("portal")["active_version"] == 1
    assert rig.file_key("portal") == v1 + "\n"

    # The file is lost: --force puts the active version (1) back, not the newest (2).
    Path(rig.config["keys"][0]["sinks"][0]["path"]).write_text("garbage\n")
    forced = daemon.cli("rotate", "portal", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    answer = json.loads(forced.stdout)
    assert (answer["result"], answer["active_version"]) == ("noop", 1), answer
    assert "re-delivered version 1" in answer["reason"]
    assert rig.file_key("portal") == v1 + "\n"
    assert rig.state("portal")["active_version"] == 1

    # A second rollback would go forward to 2: refused, with a sentence, and nothing moves.
    again = daemon.cli("rollback", "portal")
    assert again.returncode in (1, 2), again.stdout
    assert "rollback" in again.stderr and "version 2" in again.stderr, again.stderr
    assert rig.state("portal")["active_version"] == 1
    assert rig.file_key("portal") == v1 + "\n"
    assert rig.state("portal")["last_result"] == "rolled_back"
    rig.assert_no_key_leaked()


def test_unexpected_exception_in_a_sink_keeps_all_or_nothing(rig: Rig) -> None:
    rig.configure(http=False)
    first = rig.start()
    v1 = rig.kit.values[0]
    wait_for(lambda: rig.file_key("portal") == v1 + "\n", 10, "v1 in the file")
    first.stop()
    # A vault sink on a KV version 1 mount: the KV v2 client fails inside with a TypeError
    # (no SinkError), after the file sink took the new key.
    mount = f"kv1-{secrets.token_hex(4)}"
    rig.openbao.client().sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    rig.config["keys"][0]["sinks"].append({"type": "vault", "mount": mount, "path": "portal"})
    daemon = rig.start()

    rig.kit.put("portal")
    wait_for(lambda: rig.rotations(daemon, "portal", "failed") >= 2, 20, "failed rotations to v2")
    state = rig.state("portal")
    assert "pending_version" not in state, state
    assert state["active_version"] == 1
    assert state["last_result"].startswith("failed:"), state
    assert f"vault:{mount}/portal" in state["last_result"]
    # The file sink is given v1 back each time: it never stays on the version that failed.
    wait_for(lambda: rig.file_key("portal") == v1 + "\n", 5, "v1 back in the file")
    assert daemon.events("key.unexpected_error") == []

    done = daemon.cli("rotate", "portal", "--json")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["result"] == "failed"
    assert rig.file_key("portal") == v1 + "\n"
    assert rig.state("portal")["active_version"] == 1
    rig.assert_no_key_leaked()


def test_a_newest_version_without_api_key_is_a_broken_secret_until_replaced(rig: Rig) -> None:
    """Defect 13: ``key.bad_secret`` was logged, yet ``problem`` stayed null and
    ``mistral_key_secret_error`` 0, so MistralKeySecretBroken never fired."""
    rig.configure(http=False)
    daemon = rig.start()
    v1 = rig.kit.values[0]
    wait_for(lambda: rig.file_key("portal") == v1 + "\n", 10, "v1 in the file")
    rig.openbao.client().secrets.kv.v2.create_or_update_secret(
        path=rig.kit.path("portal"), secret={"expires_at": "2099-01-01"}
    )
    daemon.wait_until(lambda: daemon.events("key.bad_secret"), 15, "key.bad_secret")
    problem = daemon.wait_until(lambda: daemon.key("portal").get("problem"), 10, "a problem")
    assert "version 2" in problem and "api_key" in problem, problem
    assert daemon.metric("mistral_key_secret_error", key="portal") == 1
    assert rig.file_key("portal") == v1 + "\n"

    _, v3 = rig.kit.put("portal")
    wait_for(lambda: rig.state("portal").get("active_version") == 3, 15, "v3 recorded")
    assert rig.file_key("portal") == v3 + "\n"
    wait_for(lambda: daemon.key("portal").get("problem") is None, 10, "the problem cleared")
    assert daemon.metric("mistral_key_secret_error", key="portal") == 0
    rig.assert_no_key_leaked()


def test_sigterm_mid_delivery_is_said_and_repaired_at_the_next_start(rig: Rig) -> None:
    """Defect 7: a delivery longer than the stop grace; the sinks are split when it exits."""
    rig.configure(http_timeout_s=120, rotation={"lease": "120s"})
    first = rig.start()
    v1 = rig.kit.values[0]
    wait_for(lambda: rig.file_key("portal") == v1 + "\n", 10, "v1 in the file")
    rig.receiver.hang()  # the second sink takes the request and never answers
    _, v2 = rig.kit.put("portal")
    wait_for(lambda: rig.received("portal")[-1:] == [(2, v2)], 10, "v2 sent to the receiver")
    assert rig.file_key("portal") == v2 + "\n"  # the first sink already took it

    first.stop(timeout=30)
    [said] = first.events("rotator.stopped_mid_rotation")
    assert (said["key"], said["version"], said["level"]) == ("portal", 2, "error"), said
    assert rig.state("portal")["pending_version"] == 2  # the lease is left behind

    rig.receiver.respond(200)
    began = time.monotonic()
    rig.start(wait_checked=False)

    def settled() -> bool:
        state = rig.state("portal")
        return state.get("active_version") == 2 and "pending_version" not in state

    wait_for(settled, 30, "v2 recorded after the restart")
    # Repaired at once: the lease was this host's, and its process is gone (120 s lease).
    assert time.monotonic() - began < 60
    assert rig.file_key("portal") == v2 + "\n"
    assert rig.received("portal")[-1] == (2, v2)
    rig.assert_no_key_leaked()
