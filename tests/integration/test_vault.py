"""VaultStore against a real OpenBao: key secrets, versions, state with check-and-set."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.vault.gateway import VaultStore
from rotator.config.vault import VaultSettings
from rotator.domain.model import KeyState
from rotator.errors import BadSecret, CasConflict, SecretNotFound, StateProblem, VaultError
from rotator.logs import REDACTOR
from tests.fixtures.openbao import OpenBaoServer, settings_for

KEY = "mk-test-0123456789abcdefWXYZ"


def metric(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_reads_latest_with_version_and_creation_time(
    vault_store: VaultStore, put_key: Callable[..., int], kv_prefix: str
) -> None:
    path = f"{kv_prefix}/live-agent"
    put_key(path, "mk-old-key-0000000000aaaa")
    before = datetime.now(UTC)
    version = put_key(
        path, KEY, expires_at="2026-03-01", key_name="jtel Live Agent", workspace="w1"
    )

    secret = await vault_store.read_secret(path)

    assert version == 2
    assert (secret.version, secret.api_key, secret.fingerprint) == (2, KEY, "WXYZ")
    assert (secret.expires_at, secret.key_name, secret.workspace) == (
        "2026-03-01",
        "jtel Live Agent",
        "w1",
    )
    assert secret.created_at.tzinfo is not None
    assert abs(secret.created_at - before) < timedelta(seconds=5)
    assert KEY not in repr(secret)
    assert await vault_store.latest_version(path) == 2
    assert (await vault_store.read_secret(path, version=1)).api_key == "mk-old-key-0000000000aaaa"


async def test_key_read_is_registered_with_the_log_scrubber(
    vault_store: VaultStore, put_key: Callable[..., int], kv_prefix: str
) -> None:
    key = "mk-never-logged-" + kv_prefix[-8:] + "0000QRST"
    put_key(f"{kv_prefix}/k", key)
    await vault_store.read_secret(f"{kv_prefix}/k")
    assert REDACTOR.scrub(f"oops {key} leaked") == "oops [REDACTED] leaked"


async def test_deleted_and_destroyed_versions_are_skipped(
    openbao: OpenBaoServer, vault_store: VaultStore, put_key: Callable[..., int], kv_prefix: str
) -> None:
    path = f"{kv_prefix}/k"
    for n in range(1, 5):
        put_key(path, f"mk-version-{n}-000000000000")
    kv = openbao.client().secrets.kv.v2
    kv.delete_secret_versions(path, versions=[2, 4])
    kv.destroy_secret_versions(path, versions=[3])

    assert await vault_store.live_versions(path) == [1]
    assert await vault_store.latest_version(path) == 1
    # "Latest" means the newest one still live, not Vault's deleted current version.
    assert (await vault_store.read_secret(path)).version == 1
    for gone in (2, 3, 4, 9):
        with pytest.raises(SecretNotFound, match=f"version {gone}"):
            await vault_store.read_secret(path, version=gone)

    kv.undelete_secret_versions(path, versions=[4])
    assert await vault_store.live_versions(path) == [1, 4]


async def test_scheduled_deletion_in_the_future_is_still_live(
    openbao: OpenBaoServer, vault_store: VaultStore, put_key: Callable[..., int], kv_prefix: str
) -> None:
    path = f"{kv_prefix}/k"
    openbao.client().secrets.kv.v2.update_metadata(path, delete_version_after="1h")
    put_key(path, KEY)
    assert await vault_store.latest_version(path) == 1


async def test_missing_secret(vault_store: VaultStore, kv_prefix: str) -> None:
    assert await vault_store.latest_version(f"{kv_prefix}/nothing") is None
    assert await vault_store.live_versions(f"{kv_prefix}/nothing") == []
    with pytest.raises(SecretNotFound, match=f"{kv_prefix}/nothing"):
        await vault_store.read_secret(f"{kv_prefix}/nothing")


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"key_name": "no key here"}, "api_key", "is missing"),
        ({"api_key": ""}, "api_key", "is empty"),
        ({"api_key": " \n"}, "api_key", "is empty"),
        ({"api_key": 1234567890123}, "api_key", "must be a string"),
        ({"api_key": "mk-abcd efgh-12345678"}, "api_key", "contains whitespace"),
        ({"api_key": "mk-abcd\nefgh-12345678"}, "api_key", "contains whitespace"),
        ({"api_key": KEY, "expires_at": 20260301}, "expires_at", "must be a string"),
        ({"api_key": KEY, "key_name": ["a"]}, "key_name", "must be a string"),
        ({"api_key": KEY, "workspace": {"id": 1}}, "workspace", "must be a string"),
    ],
)
async def test_bad_secrets_name_the_field_never_the_value(
    openbao: OpenBaoServer,
    vault_store: VaultStore,
    kv_prefix: str,
    data: dict[str, object],
    field: str,
    reason: str,
) -> None:
    path = f"{kv_prefix}/bad"
    openbao.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data)

    with pytest.raises(BadSecret) as caught:
        await vault_store.read_secret(path)

    assert (caught.value.field, caught.value.reason) == (field, reason)
    assert path in str(caught.value)
    assert "abcd" not in str(caught.value) and "1234567890123" not in str(caught.value)


async def test_surrounding_whitespace_of_a_pasted_key_is_stripped(
    vault_store: VaultStore, put_key: Callable[..., int], kv_prefix: str
) -> None:
    put_key(f"{kv_prefix}/k", f"  {KEY}\n", expires_at="2026-03-01\n", key_name="")
    secret = await vault_store.read_secret(f"{kv_prefix}/k")
    assert secret.api_key == KEY
    assert secret.expires_at == "2026-03-01"
    assert secret.key_name is None


async def test_write_secret_with_stale_cas_conflicts(
    vault_store: VaultStore, kv_prefix: str
) -> None:
    path = f"{kv_prefix}/k"
    assert await vault_store.write_secret(path, {"api_key": KEY}, cas=0) == 1
    assert await vault_store.write_secret(path, {"api_key": KEY + "2"}, cas=1) == 2
    with pytest.raises(CasConflict):
        await vault_store.write_secret(path, {"api_key": KEY + "3"}, cas=1)
    with pytest.raises(CasConflict):
        await vault_store.write_secret(path, {"api_key": KEY + "3"}, cas=0)
    assert await vault_store.latest_version(path) == 2


async def test_state_round_trip_and_check_and_set(vault_store: VaultStore) -> None:
    assert await vault_store.read_state("live-agent") == (KeyState(), 0)
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    state = KeyState(
        active_version=3,
        previous_version=2,
        activated_at=now,
        last_result="rotated",
        pending_owner="pod-a",
        pending_until=now + timedelta(seconds=60),
    )

    first = await vault_store.write_state("live-agent", state, cas=0)
    with pytest.raises(CasConflict):
        await vault_store.write_state("live-agent", state, cas=0)
    second = await vault_store.write_state("live-agent", KeyState(active_version=4), cas=first)
    with pytest.raises(CasConflict):
        await vault_store.write_state("live-agent", KeyState(active_version=5), cas=first)

    assert (first, second) == (1, 2)
    # The store records which mount and namespace ("" for the root) the state belongs to.
    stamped = KeyState(active_version=4, mount="secret", namespace="")
    assert await vault_store.read_state("live-agent") == (stamped, 2)
    assert await vault_store.read_state("other-key") == (KeyState(), 0)


async def test_state_datetimes_are_stored_as_utc_iso(
    openbao: OpenBaoServer, vault_store: VaultStore, vault_settings: VaultSettings
) -> None:
    local = datetime(2026, 1, 2, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    await vault_store.write_state("k", KeyState(active_version=1, activated_at=local), cas=0)
    raw = openbao.client().secrets.kv.v2.read_secret_version(
        path=f"{vault_settings.state_path}/k",
        raise_on_deleted_version=True,
    )["data"]["data"]
    assert raw == {
        "active_version": 1,
        "activated_at": "2026-01-02T12:00:00+00:00",
        "mount": "secret",
        "namespace": "",
    }
    state, _ = await vault_store.read_state("k")
    assert state.activated_at == datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"active_version": "three"}, "active_version"),
        ({"active_version": True}, "active_version"),
        ({"activated_at": "yesterday"}, "activated_at"),
        ({"last_result": 7}, "last_result"),
        ({"active_version": "²"}, "active_version"),  # str.isdigit() says yes, int() no
        ({"active_version": -1}, "active_version"),
        ({"pending_until": "9999-12-31T23:59:59-14:00"}, "pending_until"),  # overflows UTC
        ({"pending_until": 5}, "pending_until"),
    ],
)
async def test_unreadable_state_names_the_field(
    openbao: OpenBaoServer,
    vault_store: VaultStore,
    vault_settings: VaultSettings,
    data: dict[str, object],
    field: str,
) -> None:
    path = f"{vault_settings.state_path}/k"
    openbao.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data)
    with pytest.raises(BadSecret) as caught:
        await vault_store.read_state("k")
    assert caught.value.field == field


async def test_a_deleted_state_version_is_a_problem_not_an_empty_state(
    openbao: OpenBaoServer, vault_store: VaultStore, vault_settings: VaultSettings
) -> None:
    # Read as "no state", a deleted version would undo a rollback after the next restart.
    path = f"{vault_settings.state_path}/k"
    await vault_store.write_state("k", KeyState(active_version=1), cas=0)
    openbao.client().secrets.kv.v2.delete_latest_version_of_secret(path)
    with pytest.raises(StateProblem, match="version 1 was deleted") as caught:
        await vault_store.read_state("k")
    assert caught.value.event == "key.state_deleted"
    assert "undelete" in caught.value.action
    # Deleting the metadata is how ops start afresh on purpose.
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(path)
    assert await vault_store.read_state("k") == (KeyState(), 0)


async def test_list_names_skips_folders(
    vault_store: VaultStore, put_key: Callable[..., int], kv_prefix: str
) -> None:
    for name in ("tenant-b", "tenant-a", "nested/tenant-c"):
        put_key(f"{kv_prefix}/tenants/{name}", KEY)
    assert await vault_store.list_names(f"{kv_prefix}/tenants/") == ["tenant-a", "tenant-b"]
    assert await vault_store.list_names(f"{kv_prefix}/tenants") == ["tenant-a", "tenant-b"]
    assert await vault_store.list_names(f"{kv_prefix}/nobody/") == []


async def test_ready_and_vault_up_follow_a_stop_a_restart_and_a_seal(
    openbao_raft: OpenBaoServer, tmp_path: Path
) -> None:
    metrics = Metrics()
    store = VaultStore(settings_for(openbao_raft, tmp_path), metrics)
    try:
        await store.write_secret("mistral/k", {"api_key": KEY}, cas=0)
        assert await store.ready() == (True, "ok")
        assert metric(metrics, "rotator_vault_up") == 1

        openbao_raft.stop()
        with pytest.raises(
            VaultError, match=r"vault unreachable \(cannot connect\) on secret/metadata/mistral/k"
        ):
            await store.latest_version("mistral/k")
        assert metric(metrics, "rotator_vault_up") == 0
        assert metric(metrics, "rotator_errors_total", component="vault") == 1
        ready, reason = await store.ready()
        assert not ready and "cannot connect" in reason

        openbao_raft.restart()
        assert await store.latest_version("mistral/k") == 1
        assert metric(metrics, "rotator_vault_up") == 1

        openbao_raft.seal()
        assert await store.ready() == (False, "vault is sealed")
        assert metric(metrics, "rotator_vault_up") == 0
        with pytest.raises(VaultError, match="sealed"):
            await store.read_secret("mistral/k")
        assert metric(metrics, "rotator_vault_up") == 0

        openbao_raft.unseal()
        assert (await store.read_secret("mistral/k")).api_key == KEY
        assert metric(metrics, "rotator_vault_up") == 1
    finally:
        store.close()
