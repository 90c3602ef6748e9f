"""The daemon SIGKILLed at each step of a mint, twenty times: nothing is lost or left over.

One key with ``mint``. Each run stages a key by hand with 10 days left (as a person would);
the daemon rotates to it, finds it due and mints its replacement; the test kills the daemon
at one step of that mint, starts a new one and waits until it has settled:

* ``intent``: the intent is recorded, the create request has not been answered (it hangs);
* ``create``: Mistral created the key but the answer was lost;
* ``warmup``: the daemon has the new key and retries it while it warms up;
* ``vault``: the new key is in Vault, the rotation to it is under way or just done.

After every restart: the sink holds a key that works, Vault's active version is a minted key
that exists in Mistral, the mint's tag is on exactly one live key, and no minted key lives in
Mistral that Vault does not hold (no orphan). The sink's key works at the kill too: nothing a
sink holds was deleted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import hvac.exceptions
import pytest

from rotator.demo.standin import MistralStandIn
from tests.faults.tools import sigkill
from tests.fixtures.daemon import DaemonProcess, assert_no_key_in
from tests.fixtures.openbao import OpenBaoServer
from tests.integration.mint_rig import NAME, TODAY, MintRig, mint_rig

RUNS = 20
STEPS = ("intent", "create", "warmup", "vault")


@pytest.fixture
def rig(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> Iterator[MintRig]:
    rig = mint_rig(
        openbao,
        mistral,
        kv_prefix,
        tmp_path,
        days_left=10,
        mint={"revoke_previous_after": "2s", "verify_warmup": "20s"},
    )
    rig.standin.admin.warmup_s = 0.1
    # A reload that takes a moment widens the window in which a kill lands mid-delivery.
    rig.daemon.config["keys"][0]["sinks"][0]["reload"] = {"command": ["sleep", "0.2"]}
    # Leases short enough that a restart does not wait long for the dead process's.
    rig.daemon.config["rotation"].update({"lease": "1.5s", "retry_backoff": "0.5s"})
    yield rig
    rig.daemon.stop()


def works(standin: MistralStandIn, value: str) -> bool:
    headers = {"Authorization": f"Bearer {value}"}
    answer = httpx.get(f"{standin.url}/v1/models", headers=headers, timeout=5)
    return answer.status_code == 200


def stored_ids(rig: MintRig) -> set[str]:
    """The ``mistral_key_id`` of every version Vault still holds."""
    found = set()
    for version in range(1, rig.vault()["_version"] + 1):
        with contextlib.suppress(hvac.exceptions.InvalidPath):
            found.add(rig.vault(version).get("mistral_key_id"))
    return {key_id for key_id in found if key_id}


def settled(rig: MintRig) -> dict[str, Any] | None:
    state = rig.state()
    if state.get("mint_intent") or state.get("pending_version"):
        return None
    data = rig.vault()
    if data["_version"] != state.get("active_version") or not data.get("mistral_key_id"):
        return None
    record = rig.standin.admin.record(data["mistral_key_id"])
    if record is None or record.deleted or rig.sink() != data["api_key"]:
        return None
    return data


def arm(rig: MintRig, step: str) -> None:
    admin = rig.standin.admin
    if step == "intent":
        admin.fail("hang", op="create", times=1)
    elif step == "create":
        admin.fail("lost", op="create", times=1)
    elif step == "warmup":
        admin.warmup_s = 60


def reached(rig: MintRig, step: str, known: set[str]) -> bool:
    if step == "intent":
        return bool(rig.state().get("mint_intent"))
    fresh = [r for r in rig.minted() if r.key_id not in known]
    if step in ("create", "warmup"):
        return bool(fresh)
    return any(r.key_id == rig.vault().get("mistral_key_id") for r in fresh)


@pytest.mark.slow
def test_sigkill_at_each_step_of_a_mint_twenty_times(rig: MintRig) -> None:
    daemon = rig.daemon.start()
    outputs = [daemon]
    first = daemon.wait_until(lambda: settled(rig) or None, 30, "the first mint")
    assert first is not None
    for run in range(RUNS):
        step = STEPS[run % len(STEPS)]
        where = f"run {run + 1} ({step})"
        known = {r.key_id for r in rig.standin.admin.org_keys(include_deleted=True)}
        arm(rig, step)
        # A person stages a key with 10 days left: the daemon rotates to it and mints.
        expires = TODAY + timedelta(days=10)
        _, value = rig.kit.put(NAME, expires_at=expires.isoformat())
        rig.standin.admin.add_key(name=f"by hand {run}", api_key=value, expiration_date=expires)
        daemon.wait_until(lambda s=step, k=known: reached(rig, s, k), 30, where)
        sigkill(daemon)
        at_kill = rig.sink()
        assert works(rig.standin, at_kill), f"{where}: the sink's key was deleted"

        rig.standin.admin.heal()
        rig.standin.admin.warmup_s = 0.1
        daemon = restart(rig, run, outputs)
        data = daemon.wait_until(lambda: settled(rig), 40, f"{where}: settled after restart")
        assert works(rig.standin, rig.sink()), where
        live_minted = [r for r in rig.minted()]
        active = rig.standin.admin.record(data["mistral_key_id"])
        assert active is not None
        tag = active.name.rsplit(" #", 1)[1]
        assert [r.name.endswith(f" #{tag}") for r in live_minted].count(True) == 1, where
        orphans = [r.name for r in live_minted if r.key_id not in stored_ids(rig)]
        assert not orphans, f"{where}: minted keys nobody holds: {orphans}"
    daemon.stop()
    texts = [t for d in outputs for t in (d.output(), *d.answers)]
    assert_no_key_in(texts, rig.secrets_seen())
    deleted = sum(len(d.events("key.mint_orphan_deleted")) for d in outputs)
    assert deleted >= RUNS // len(STEPS), "each lost create left a key that was deleted"


def restart(rig: MintRig, run: int, outputs: list[DaemonProcess]) -> DaemonProcess:
    """A new process with a log of its own (the old one's last lines must not be read)."""
    workdir = rig.daemon.workdir / f"restart-{run}"
    workdir.mkdir()
    daemon = DaemonProcess(workdir, rig.daemon.config, token=rig.daemon.token)
    outputs.append(daemon)
    rig.daemon = daemon  # stopped by the fixture
    return daemon.start()


def test_a_hung_create_is_abandoned_and_nothing_is_left(rig: MintRig) -> None:
    """A mint whose create never answers: the next pass finds no key, mints again."""
    rig.standin.admin.fail("hang", op="create", times=1)
    expires = TODAY + timedelta(days=10)
    _, value = rig.kit.put(NAME, expires_at=expires.isoformat())
    rig.standin.admin.add_key(name="by hand", api_key=value, expiration_date=expires)
    daemon = rig.daemon.start()
    daemon.wait_until(lambda: settled(rig), 40, "a mint after the hung one")
    assert daemon.events("key.mint_failed")
    assert len(rig.minted()) == 1
