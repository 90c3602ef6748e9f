"""Minting in a running daemon, against OpenBao and the stand-in's Admin API over real HTTP."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, assert_no_key_in
from tests.fixtures.openbao import OpenBaoServer
from tests.integration.mint_rig import NAME, TODAY, MintRig, mint_rig


@pytest.fixture
def rig(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> Iterator[MintRig]:
    rig = mint_rig(openbao, mistral, kv_prefix, tmp_path)
    yield rig
    rig.daemon.stop()


def models(standin: MistralStandIn, value: str) -> int:
    headers = {"Authorization": f"Bearer {value}"}
    return httpx.get(f"{standin.url}/v1/models", headers=headers, timeout=5).status_code


def test_a_key_with_ten_days_left_is_replaced_without_a_person(rig: MintRig) -> None:
    daemon = rig.daemon.start()
    minted = daemon.wait_until(lambda: rig.minted(), 30, "a key minted in the stand-in")
    [record] = minted
    assert record.name.startswith(f"agent {TODAY.isoformat()} #")
    stored = daemon.wait_until(
        lambda: (d := rig.vault()) and d.get("mistral_key_id") == record.key_id and d,
        20,
        "the minted key in Vault",
    )
    # Asked for 365 days; the organization's policy clamps to 90: the answer's date counts.
    assert stored["expires_at"] == f"{(TODAY + timedelta(days=90)).isoformat()}T00:00:00Z"
    assert stored["key_name"] == record.name and stored["workspace"] == "Default Workspace"
    assert stored["_version"] == 2
    daemon.wait_until(lambda: rig.sink() == stored["api_key"], 20, "the sink on the new key")
    assert models(rig.standin, stored["api_key"]) == 200
    # revoke_previous_after (3 s) later, the replaced key is deleted in Mistral.
    daemon.wait_until(lambda: rig.old_record.deleted, 30, "the old key deleted")
    assert models(rig.standin, rig.old_value) == 401
    assert [r.key_id for r in rig.minted()] == [record.key_id], "one live minted key"
    assert daemon.metric("mistral_key_mints_total", key=NAME, result="minted") == 1
    assert daemon.metric("mistral_key_previous_revoked_total", key=NAME) == 1
    assert daemon.metric("mistral_key_previous_still_valid", key=NAME) == 0
    assert daemon.metric("mistral_admin_up") == 1
    assert [e["event"] for e in daemon.events() if e["event"].startswith("key.")].count(
        "key.minted"
    ) == 1
    assert daemon.events("key.previous_revoked")
    assert rig.state().get("mint_intent") is None
    metrics = httpx.get(f"{daemon.metrics_url}/metrics", timeout=5).text
    daemon.stop()
    assert_no_key_in([daemon.output(), *daemon.answers, metrics], rig.secrets_seen())


def test_mint_on_demand_through_the_api_and_inventory(rig: MintRig) -> None:
    rig.daemon.config["keys"][0]["mint"]["before_expiry"] = "1d"  # not due by itself
    daemon = rig.daemon.start()
    daemon.wait_checked([NAME])
    unmanaged = rig.standin.admin.add_key(
        name="someone's laptop", expiration_date=TODAY + timedelta(days=5)
    )
    listed = daemon.api("GET", "/api/v1/inventory")
    assert listed.status_code == 200, listed.text
    rows = {r["key_id"]: r for r in listed.json()["keys"]}
    assert rows[rig.old_record.key_id]["managed_key"] == NAME
    assert rows[unmanaged.key_id]["managed_key"] is None
    assert rows[unmanaged.key_id]["fingerprint"] == unmanaged.hidden_key[-4:]
    assert daemon.metric(
        "mistral_org_key_expiry_timestamp_seconds", key_id=unmanaged.key_id, managed="false"
    )
    assert daemon.metric("mistral_key_expiry_assumed", key=NAME) == 0
    answer = daemon.api("POST", f"/api/v1/keys/{NAME}/mint")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["result"] == "rotated" and body["version"] == 2
    assert body["active_version"] == 2 and body["fingerprint"] == rig.vault()["api_key"][-4:]
    [audit] = daemon.events("admin.mint")
    assert audit["outcome"] == "rotated" and audit["version"] == 2
    assert body["mistral_key_id"] == rig.minted()[0].key_id
    assert rig.sink() == rig.vault()["api_key"]
    out = daemon.cli("inventory", "--json")
    assert out.returncode == 0, out.stderr
    assert unmanaged.key_id in out.stdout
    daemon.stop()
    assert_no_key_in([daemon.output(), *daemon.answers, out.stdout], rig.secrets_seen())


def test_vault_expiry_disagreeing_with_mistral_is_flagged(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    rig = mint_rig(openbao, mistral, kv_prefix, tmp_path, days_left=200)
    # Mistral says the key ends in 20 days; Vault was told 200.
    rig.old_record.expiration_date = TODAY + timedelta(days=20)
    del rig.daemon.config["keys"][0]["mint"]
    daemon = rig.daemon.start()
    try:
        daemon.wait_until(
            lambda: daemon.metric("mistral_key_expiry_mismatch", key=NAME) == 1,
            20,
            "the mismatch flagged",
        )
        # Mistral's date is the expiry now, not Vault's.
        expected = (TODAY + timedelta(days=20)).isoformat()
        assert daemon.key(NAME)["expires_at"].startswith(expected)
        assert len(daemon.events("key.expiry_mismatch")) == 1
    finally:
        daemon.stop()


def test_two_daemons_on_one_key_mint_once(rig: MintRig) -> None:
    """Two instances (one state in Vault) see the same key due: one mint, not two."""
    first = rig.daemon
    second_dir = first.workdir / "second"
    second_dir.mkdir()
    second = DaemonProcess(second_dir, copy.deepcopy(first.config), token=first.token)
    first.start(wait_ready=False)
    second.start(wait_ready=False)
    try:
        first.wait_until(lambda: rig.sink() != rig.old_value and rig.minted(), 40, "a mint")
        # Both have had time to decide: several polls after the mint.
        first.wait_until(lambda: first.key(NAME)["active_version"] == 2, 20, "first on v2")
        second.wait_until(lambda: second.key(NAME)["active_version"] == 2, 20, "second on v2")
        assert len(rig.minted()) == 1
        assert [r.minted for r in rig.standin.admin.org_keys(include_deleted=True)].count(True) == 1
        assert rig.vault()["_version"] == 2
        minted = len(first.events("key.minted")) + len(second.events("key.minted"))
        assert minted == 1
    finally:
        second.stop()
