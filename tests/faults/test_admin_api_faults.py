"""Mistral's Admin API failing while the daemon mints: 401, 403, 422, 429, 500 and a hang.

Each answer is given to the daemon's create request (the key is due for replacement at
start). What must hold: nothing half-done is left (no key in Mistral that Vault does not
hold, no mint intent left over, the sink still on the old, working key), the failure is
counted (``mistral_key_mints_total{result="failed"}``) and logged (``key.mint_failed``),
401/403 set ``mistral_admin_up`` to 0 (alert MistralAdminApiFailing), and once the Admin API
answers again the key is minted, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import assert_no_key_in
from tests.fixtures.openbao import OpenBaoServer
from tests.integration.mint_rig import NAME, MintRig, mint_rig


@pytest.fixture
def rig(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> Iterator[MintRig]:
    rig = mint_rig(openbao, mistral, kv_prefix, tmp_path)
    yield rig
    rig.daemon.stop()


def nothing_half_done(rig: MintRig) -> None:
    assert rig.minted() == [], "no key created, or the one created was deleted"
    assert rig.state().get("mint_intent") is None
    assert rig.vault()["_version"] == 1
    assert rig.sink() == rig.old_value


@pytest.mark.parametrize("kind", ["401", "403"])
def test_admin_key_refused_sets_admin_down_then_recovers(rig: MintRig, kind: str) -> None:
    rig.standin.admin.fail(kind)
    daemon = rig.daemon.start()
    daemon.wait_until(
        lambda: daemon.metric("mistral_key_mints_total", key=NAME, result="failed"),
        30,
        "a failed mint",
    )
    assert daemon.metric("mistral_admin_up") == 0
    failed = daemon.events("key.mint_failed")
    assert failed and f"HTTP {kind}" in failed[0]["reason"]
    nothing_half_done(rig)

    rig.standin.admin.heal()
    daemon.wait_until(lambda: rig.minted() and rig.sink() != rig.old_value, 40, "the mint")
    assert daemon.metric("mistral_admin_up") == 1
    assert len(rig.minted()) == 1
    daemon.stop()
    assert_no_key_in([daemon.output(), *daemon.answers], rig.secrets_seen())


@pytest.mark.parametrize("kind", ["422", "429", "500", "hang"])
def test_one_failed_create_leaves_nothing_and_the_retry_mints_once(rig: MintRig, kind: str) -> None:
    rig.standin.admin.fail(kind, op="create", times=1)
    daemon = rig.daemon.start()
    daemon.wait_until(
        lambda: daemon.metric("mistral_key_mints_total", key=NAME, result="failed"),
        30,
        "a failed mint",
    )
    failed = daemon.events("key.mint_failed")[0]
    assert failed["step"] == "create"
    assert ("no answer" if kind == "hang" else f"HTTP {kind}") in failed["reason"]
    assert daemon.metric("mistral_admin_up") == 1, "the admin key itself was fine"
    daemon.wait_until(lambda: rig.sink() != rig.old_value, 40, "the retried mint")
    assert len(rig.minted()) == 1
    assert rig.vault()["mistral_key_id"] == rig.minted()[0].key_id
    assert daemon.metric("mistral_key_mints_total", key=NAME, result="minted") == 1
    # The intent is cleared in its own write right after the rotation the mint asked for.
    daemon.wait_until(lambda: rig.state().get("mint_intent") is None, 15, "the intent cleared")
    daemon.stop()
    assert_no_key_in([daemon.output(), *daemon.answers], rig.secrets_seen())


def test_a_new_key_that_never_verifies_is_deleted(rig: MintRig) -> None:
    """The stand-in's warm-up outlasts verify_warmup: the key is deleted, not stored."""
    rig.standin.admin.warmup_s = 300
    rig.daemon.config["keys"][0]["mint"]["verify_warmup"] = "2s"
    daemon = rig.daemon.start()
    daemon.wait_until(lambda: daemon.events("key.mint_failed"), 30, "the mint given up")
    assert daemon.events("key.mint_orphan_deleted")
    assert daemon.events("key.mint_failed")[0]["step"] == "verify"
    nothing_half_done(rig)
    daemon.stop()
