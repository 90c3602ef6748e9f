"""Minting over in-memory ports: create, verify, store, rotate, clean up, retire."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.config import parse_settings
from rotator.config.admin import MintSettings
from rotator.core.minting import (
    Minter,
    MintTarget,
    match_record,
    mint_due,
    revoke_due,
    tag,
)
from rotator.core.rotation import ManagedKey, Rotator
from rotator.domain.model import KeyState, SecretVersion, Status
from rotator.domain.orgkeys import AdminAuthError, AdminUnavailable, MintedKey, OrgKey
from tests.unit.fakes import CREATED, FakeSink, FakeStore, FakeVerifier

PATH = "mistral/k"
OLD = "OLDkey00000000000000000000000aaaa"
NOW = CREATED + timedelta(days=355)
WORKSPACE = "ws-1"


@dataclass
class FakeAdmin:
    """Mistral's Admin API in memory; ``policy_days`` clamps like an expiration policy."""

    records: dict[str, OrgKey] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    policy_days: int = 90
    create_fails: Exception | None = None
    lose_answer: bool = False
    list_fails: int = 0
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def live(self) -> list[OrgKey]:
        return list(self.records.values())

    async def list_keys(self, name: str | None = None) -> list[OrgKey]:
        if self.list_fails:
            self.list_fails -= 1
            raise AdminUnavailable("list", "HTTP 500")
        return self.live()

    async def create_key(
        self, *, name: str, workspace_uuid: str, expiration: date | None, user_id: str | None
    ) -> MintedKey:
        await asyncio.sleep(0)  # let another task run, as a network round trip would
        if self.create_fails is not None:
            raise self.create_fails
        n = next(self.ids)
        value = f"NEWkey{n:026d}zz{n:02d}"
        latest = NOW.date() + timedelta(days=self.policy_days)
        expiry = min(expiration, latest) if expiration else latest
        record = OrgKey(
            key_id=f"id-{n}",
            name=name,
            hidden_key=f"{value[:4]}...{value[-4:]}",
            expiration_date=expiry,
            workspace_id=workspace_uuid,
            workspace_name="Main",
        )
        self.records[record.key_id] = record
        self.values[record.key_id] = value
        if self.lose_answer:
            raise AdminUnavailable("create", "no answer within 15s")
        return MintedKey(record, value)

    async def delete_key(self, key_id: str) -> bool:
        self.deleted.append(key_id)
        return self.records.pop(key_id, None) is not None


async def no_sleep(_: float) -> None:
    return None


class Crash(Exception):
    """A SIGKILL, as far as the code under test can tell."""


@dataclass
class World:
    store: FakeStore
    verifier: FakeVerifier
    admin: FakeAdmin
    sink: FakeSink
    minter: Minter
    target: MintTarget
    counts: dict[str, int]
    crash_in_rotate: bool = False

    def minter_for(self, owner: str) -> Minter:
        return replace_owner(self.minter, owner)


def replace_owner(minter: Minter, owner: str) -> Minter:
    return Minter(
        store=minter.store,
        verifier=minter.verifier,
        admin=minter.admin,
        rotate=minter.rotate,
        owner=owner,
        metrics=minter.metrics,
        clock=minter.clock,
        sleep=minter.sleep,
    )


@pytest.fixture
def world() -> World:
    store, verifier, admin, sink = FakeStore(), FakeVerifier(), FakeAdmin(), FakeSink("file")
    settings = parse_settings({"keys": [{"name": "k", "vault_path": PATH}]})
    rotator = Rotator(
        store=store,
        verifier=verifier,
        settings=settings,
        metrics=Metrics(),
        owner="me",
        clock=lambda: NOW,
        sleep=no_sleep,
    )
    managed = ManagedKey("k", PATH, [sink])
    counts: dict[str, int] = {}

    class Counts:
        def mint(self, key: str, result: str) -> None:
            counts[result] = counts.get(result, 0) + 1

        def previous_revoked(self, key: str) -> None:
            counts["revoked"] = counts.get("revoked", 0) + 1

    w: World

    async def rotate(name: str, version: int) -> object:
        if w.crash_in_rotate:
            raise Crash
        return await rotator.rotate(managed, version=version)

    mint = MintSettings(workspace_uuid=WORKSPACE, name="jtel {date}", lifetime_days=365)
    minter = Minter(
        store=store,
        verifier=verifier,
        admin=admin,
        rotate=rotate,  # type: ignore[arg-type]
        owner="me",
        metrics=Counts(),
        clock=lambda: NOW,
        sleep=no_sleep,
    )
    w = World(store, verifier, admin, sink, minter, MintTarget("k", PATH, mint), counts)
    # The key in use today: stored by a person, active, delivered.
    store.put(PATH, OLD, expires_at="2027-01-01T00:00:00Z")
    verifier.set(OLD, Status.VALID)
    asyncio.run(rotator.rotate(managed))
    assert sink.held == OLD
    return w


def minted_values(w: World) -> list[str]:
    return [w.admin.values[r.key_id] for r in w.admin.live() if r.name.startswith("jtel")]


def make_valid(w: World) -> None:
    """Every key the fake Admin API makes answers 200 at once."""
    original = w.admin.create_key

    async def create(**kwargs: object) -> MintedKey:
        made = await original(**kwargs)  # type: ignore[arg-type]
        w.verifier.set(made.api_key, Status.VALID)
        return made

    w.admin.create_key = create  # type: ignore[method-assign]


def test_mint_creates_verifies_stores_and_rotates(world: World) -> None:
    w = world
    make_valid(w)
    result = asyncio.run(w.minter.mint(w.target))
    assert result.result == "rotated"
    [record] = w.admin.live()
    assert record.name.startswith(f"jtel {NOW.date().isoformat()} #")
    secret = asyncio.run(w.store.read_secret(PATH))
    assert secret.version == 2 and secret.mistral_key_id == record.key_id
    # The policy clamped the 365 days asked for to 90: the answer's date is stored.
    assert secret.expires_at == f"{(NOW.date() + timedelta(days=90)).isoformat()}T00:00:00Z"
    assert w.sink.held == w.admin.values[record.key_id]
    state, _ = asyncio.run(w.store.read_state("k"))
    assert state.active_version == 2 and state.mint_intent is None
    assert w.counts == {"minted": 1}


def test_a_new_key_is_retried_while_it_warms_up(world: World) -> None:
    w = world
    original = w.admin.create_key

    async def create(**kwargs: object) -> MintedKey:
        made = await original(**kwargs)  # type: ignore[arg-type]
        w.verifier.set(made.api_key, Status.INVALID, Status.INVALID, Status.VALID)
        return made

    w.admin.create_key = create  # type: ignore[method-assign]
    assert asyncio.run(w.minter.mint(w.target)).result == "rotated"


def test_a_key_that_never_works_is_deleted_and_nothing_stored(world: World) -> None:
    w = world
    ticks = iter(range(1000))
    w.minter.clock = lambda: NOW + timedelta(seconds=10 * next(ticks))
    result = asyncio.run(w.minter.mint(w.target))
    assert result.result == "failed" and "invalid" in result.reason
    assert w.admin.live() == [] and len(w.admin.deleted) == 1
    assert asyncio.run(w.store.latest_version(PATH)) == 1
    assert w.sink.held == OLD
    assert asyncio.run(w.store.read_state("k"))[0].mint_intent is None
    assert w.counts == {"failed": 1, "orphan_deleted": 1}


@pytest.mark.parametrize("error", [AdminAuthError("create", "HTTP 401", 401)])
def test_a_refused_create_leaves_nothing(world: World, error: Exception) -> None:
    w = world
    w.admin.create_fails = error
    assert asyncio.run(w.minter.mint(w.target)).result == "failed"
    assert w.admin.live() == [] and w.admin.deleted == []
    assert asyncio.run(w.store.read_state("k"))[0].mint_intent is None


def test_a_lost_answer_to_create_deletes_the_tagged_key(world: World) -> None:
    w = world
    w.admin.lose_answer = True
    assert asyncio.run(w.minter.mint(w.target)).result == "failed"
    assert w.admin.live() == [] and len(w.admin.deleted) == 1
    assert asyncio.run(w.store.read_state("k"))[0].mint_intent is None
    assert w.counts["orphan_deleted"] == 1


def test_an_orphan_that_cannot_be_deleted_now_is_deleted_by_the_next_mint(world: World) -> None:
    w = world
    w.admin.lose_answer = True
    w.admin.list_fails = 1
    assert asyncio.run(w.minter.mint(w.target)).result == "failed"
    assert len(w.admin.live()) == 1, "the Admin API is down: the orphan waits"
    assert asyncio.run(w.store.read_state("k"))[0].mint_intent is not None
    w.admin.lose_answer = False
    make_valid(w)
    # A fresh process (another owner) after the intent's lease ran out.
    later = w.minter_for("next-process")
    later.clock = lambda: NOW + timedelta(minutes=5)
    assert asyncio.run(later.mint(w.target)).result == "rotated"
    assert len(minted_values(w)) == 1, "exactly one live minted key"
    assert w.sink.held == minted_values(w)[0]


def test_a_crash_after_the_vault_write_is_finished_not_undone(world: World) -> None:
    w = world
    make_valid(w)
    w.crash_in_rotate = True
    with pytest.raises(Crash):
        asyncio.run(w.minter.mint(w.target))
    assert asyncio.run(w.store.latest_version(PATH)) == 2
    w.crash_in_rotate = False
    later = w.minter_for("next-process")
    later.clock = lambda: NOW + timedelta(minutes=5)
    result = asyncio.run(later.mint(w.target))
    assert result.result == "rotated" and result.version == 2
    assert w.admin.deleted == [], "Vault holds it: a sink may too"
    assert len(minted_values(w)) == 1
    assert w.sink.held == minted_values(w)[0]
    assert asyncio.run(w.store.read_state("k"))[0].mint_intent is None


def test_another_instances_live_intent_is_left_alone(world: World) -> None:
    w = world
    state, cas = asyncio.run(w.store.read_state("k"))
    held = replace(state, mint_intent="ab" * 16, mint_owner="other", mint_until=NOW + timedelta(1))
    asyncio.run(w.store.write_state("k", held, cas))
    assert asyncio.run(w.minter.mint(w.target)).result == "contended"
    assert w.admin.live() == []


def test_two_instances_at_once_mint_once(world: World) -> None:
    w = world
    make_valid(w)

    async def both() -> list[str]:
        results = await asyncio.gather(
            w.minter.mint(w.target), w.minter_for("other").mint(w.target)
        )
        return sorted(r.result for r in results)

    assert asyncio.run(both()) == ["contended", "rotated"]
    assert len(minted_values(w)) == 1


def test_mint_due_only_when_close_to_expiry_and_nothing_newer_waits() -> None:
    mint = MintSettings(workspace_uuid=WORKSPACE, before_expiry="30d")
    soon = NOW + timedelta(days=10)
    assert mint_due(mint, expires_at=soon, now=NOW, active_version=1, latest_version=1)
    assert not mint_due(mint, expires_at=soon, now=NOW, active_version=1, latest_version=2)
    assert not mint_due(
        mint, expires_at=NOW + timedelta(days=40), now=NOW, active_version=1, latest_version=1
    )
    assert not mint_due(mint, expires_at=None, now=NOW, active_version=1, latest_version=1)


def test_retire_deletes_the_previous_key_by_id_after_the_wait(world: World) -> None:
    w = world
    old = w.admin.records.setdefault(
        "id-old", OrgKey("id-old", "console", f"{OLD[:4]}...{OLD[-4:]}")
    )
    make_valid(w)
    assert asyncio.run(w.minter.mint(w.target)).result == "rotated"
    assert asyncio.run(w.minter.retire(w.target)) is None, "not yet: revoke_previous_after"
    w.minter.clock = lambda: NOW + timedelta(days=8)
    assert asyncio.run(w.minter.retire(w.target)) == old.key_id, "matched by hidden_key"
    assert "id-old" not in w.admin.records
    assert w.counts["revoked"] == 1
    assert asyncio.run(w.minter.retire(w.target)) is None, "once"
    assert w.sink.held == minted_values(w)[0], "the active key stays"


def test_retire_leaves_alone_what_it_cannot_match_for_sure(world: World) -> None:
    w = world
    hidden = f"{OLD[:4]}...{OLD[-4:]}"
    w.admin.records["a"] = OrgKey("a", "one", hidden)
    w.admin.records["b"] = OrgKey("b", "two", hidden)
    make_valid(w)
    asyncio.run(w.minter.mint(w.target))
    w.minter.clock = lambda: NOW + timedelta(days=8)
    assert asyncio.run(w.minter.retire(w.target)) is None
    assert {"a", "b"} <= set(w.admin.records)


def test_retire_does_nothing_after_a_rollback() -> None:
    state = KeyState(active_version=1, previous_version=2, activated_at=NOW)
    after = NOW + timedelta(days=8)
    assert revoke_due(state, timedelta(days=7), after)
    assert not revoke_due(replace(state, last_result="rolled_back"), timedelta(days=7), after)
    assert not revoke_due(replace(state, revoked_version=2), timedelta(days=7), after)
    assert not revoke_due(state, None, after)


def test_match_record_by_id_else_unique_hidden_key() -> None:
    key = "ABCDxxxxxxxxxxxxxxxxxxxxxxxxWXYZ"
    secret = SecretVersion(PATH, 1, CREATED, key)
    one = OrgKey("1", "a", "ABCD...WXYZ")
    other = OrgKey("2", "b", "ABCD...0000")
    assert match_record(secret, [one, other]) == one
    assert match_record(secret, [one, OrgKey("3", "c", "ABCD...WXYZ")]) is None
    by_id = SecretVersion(PATH, 1, CREATED, key, mistral_key_id="2")
    assert match_record(by_id, [one, other]) == other


def test_a_minted_name_carries_the_intents_tag() -> None:
    assert tag("0123456789abcdef") == " #01234567"
    mint = MintSettings(workspace_uuid=WORKSPACE, name="{name} Live Agent {date}")
    assert mint.key_name("jtel", datetime(2026, 3, 1).date()) == "jtel Live Agent 2026-03-01"
