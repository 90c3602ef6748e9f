"""The rotation policy and procedure, over in-memory ports."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.config import parse_settings
from rotator.core.rotation import ManagedKey, Rotator
from rotator.domain.choice import choose_target
from rotator.domain.model import KeyState, Status
from rotator.errors import NotPossible
from tests.unit.fakes import CREATED, FakeSink, FakeStore, FakeVerifier

PATH = "mistral/k"
OLD, NEW = "old-key-aaaa1111", "new-key-bbbb2222"


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
def world() -> tuple[FakeStore, FakeVerifier, list[FakeSink], Rotator, Metrics]:
    store, verifier = FakeStore(), FakeVerifier()
    sinks = [FakeSink("a"), FakeSink("b")]
    settings = parse_settings({"keys": [{"name": "k", "vault_path": PATH}]})
    metrics = Metrics()
    rotator = Rotator(
        store=store,
        verifier=verifier,
        settings=settings,
        metrics=metrics,
        owner="me",
        clock=lambda: CREATED + timedelta(days=10),
        sleep=_no_sleep,
    )
    return store, verifier, sinks, rotator, metrics


def _count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "mistral_key_rotations_total", {"key": "k", "result": result}
    )
    return value or 0.0


async def _activate_old(
    store: FakeStore, verifier: FakeVerifier, rotator: Rotator, key: ManagedKey
) -> None:
    store.put(PATH, OLD)
    verifier.set(OLD, Status.VALID)
    assert (await rotator.rotate(key)).result == "rotated"


def test_policy_never_goes_back_unless_asked() -> None:
    state = KeyState(active_version=3, rejected_version=4)
    assert choose_target(state, 3, explicit=None, force=False)[0] is None
    assert choose_target(state, 2, explicit=None, force=False)[0] is None
    assert choose_target(state, 4, explicit=None, force=False)[0] is None  # rejected
    assert choose_target(state, 5, explicit=None, force=False)[0] == 5
    assert choose_target(state, 5, explicit=2, force=False)[0] == 2  # ops asked
    assert choose_target(state, 4, explicit=4, force=False)[0] == 4  # ops asked for it
    # force re-delivers the active version, whatever is newest (issue 11, defect 3)
    assert choose_target(state, 4, explicit=None, force=True)[0] == 3
    assert choose_target(state, 5, explicit=None, force=True)[0] == 3
    assert choose_target(state, 3, explicit=None, force=True)[0] == 3
    with pytest.raises(NotPossible, match="leave out --force"):
        choose_target(state, 5, explicit=5, force=True)
    with pytest.raises(NotPossible, match="nothing to re-deliver"):
        choose_target(KeyState(), 5, explicit=None, force=True)


async def test_valid_new_version_reaches_every_sink_and_is_recorded(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, metrics = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    store.put(PATH, NEW)
    verifier.set(NEW, Status.VALID)
    result = await rotator.rotate(key)
    assert (result.result, result.active_version) == ("rotated", 2)
    assert [s.held for s in sinks] == [NEW, NEW]
    state = store.states["k"][0]
    assert (state.active_version, state.previous_version, state.pending_version) == (2, 1, None)
    assert _count(metrics, "rotated") == 2


@pytest.mark.parametrize(
    "verdict", [Status.INVALID, Status.BILLING_BLOCKED, Status.MODEL_UNAVAILABLE, Status.FORBIDDEN]
)
async def test_bad_candidate_is_never_delivered_and_not_retried(world, verdict) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, metrics = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    store.put(PATH, NEW)
    verifier.set(NEW, verdict)
    assert (await rotator.rotate(key)).result == "rejected"
    assert [s.held for s in sinks] == [OLD, OLD]
    assert (await rotator.rotate(key)).result == "noop"  # same version: not tried again
    assert verifier.calls.count(NEW) == 1
    assert _count(metrics, "rejected") == 1
    assert store.states["k"][0].active_version == 1


async def test_transient_answer_postpones_without_rejecting(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, metrics = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    store.put(PATH, NEW)
    verifier.set(NEW, Status.UNREACHABLE, Status.VALID)
    assert (await rotator.rotate(key)).result == "postponed"
    assert [s.held for s in sinks] == [OLD, OLD]
    assert (await rotator.rotate(key)).result == "rotated"
    assert _count(metrics, "rejected") == 0


async def test_failing_sink_puts_previous_key_back_everywhere(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, metrics = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    store.put(PATH, NEW)
    verifier.set(NEW, Status.VALID)
    sinks[1].fail_next = -1
    result = await rotator.rotate(key)
    assert result.result == "failed" and "fake:b" in result.reason
    assert sinks[0].held == OLD and sinks[0].deliveries == [1, 2, 1]
    assert store.states["k"][0].active_version == 1
    assert _count(metrics, "failed") == 1
    sinks[1].fail_next = 0  # the sink is back: the next poll completes the rotation
    assert (await rotator.rotate(key)).result == "rotated"
    assert [s.held for s in sinks] == [NEW, NEW]


async def test_sink_retried_before_giving_up(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, _ = world
    key = ManagedKey("k", PATH, sinks)
    store.put(PATH, OLD)
    verifier.set(OLD, Status.VALID)
    sinks[0].fail_next = 2  # default sink_attempts is 3
    assert (await rotator.rotate(key)).result == "rotated"
    assert sinks[0].held == OLD


async def test_second_instance_yields_to_a_live_lease(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, _ = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    store.put(PATH, NEW)
    _, cas = store.states["k"]
    until = CREATED + timedelta(days=10, seconds=30)
    store.states["k"] = (
        KeyState(1, pending_version=2, pending_owner="other", pending_until=until),
        cas,
    )
    assert (await rotator.rotate(key)).reason == "another instance is rotating"
    assert [s.held for s in sinks] == [OLD, OLD]


async def test_converge_after_crash_restores_recorded_version(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, _ = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    store.put(PATH, NEW)
    verifier.set(NEW, Status.VALID)
    # A crash after sink a took v2, with the lease of a process that is gone.
    sinks[0].held = NEW
    _, cas = store.states["k"]
    expired = CREATED + timedelta(days=9)
    store.states["k"] = (
        KeyState(1, pending_version=2, pending_owner="dead", pending_until=expired),
        cas,
    )
    sinks.append(FakeSink("fresh"))  # a fresh container whose file is empty
    await rotator.converge(key)
    assert [s.held for s in sinks] == [OLD, OLD, OLD]
    assert store.states["k"][0].pending_version is None
    assert (await rotator.rotate(key)).result == "rotated"
    assert [s.held for s in sinks] == [NEW, NEW, NEW]


async def test_converge_leaves_sinks_that_hold_the_key_alone(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, _ = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    before = [list(s.deliveries) for s in sinks]
    assert (await rotator.converge(key)).reason == "every sink holds the active key"
    assert [s.deliveries for s in sinks] == before


async def test_rollback_only_to_a_previous_version_that_verifies(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, metrics = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    store.put(PATH, NEW)
    verifier.set(NEW, Status.VALID)
    await rotator.rotate(key)
    verifier.set(OLD, Status.INVALID)
    assert (await rotator.rollback(key)).result == "rejected"
    assert [s.held for s in sinks] == [NEW, NEW]
    verifier.set(OLD, Status.VALID)
    result = await rotator.rollback(key)
    assert (result.result, result.active_version) == ("rolled_back", 1)
    assert [s.held for s in sinks] == [OLD, OLD]
    assert _count(metrics, "rolled_back") == 1
    # The version we left does not come back on the next poll.
    assert (await rotator.rotate(key)).result == "noop"


async def test_expired_or_malformed_candidate_is_rejected(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, _ = world
    key = ManagedKey("k", PATH, sinks)
    store.put(PATH, NEW, expires_at="2026-01-05")
    verifier.set(NEW, Status.VALID)
    result = await rotator.rotate(key)
    assert result.result == "rejected" and "expired" in result.reason
    store.put(PATH, NEW, expires_at="next tuesday")
    result = await rotator.rotate(key)
    assert result.result == "rejected" and "expires_at" in result.reason
    assert all(s.held is None for s in sinks)


async def test_force_redelivers_active_version(world) -> None:  # type: ignore[no-untyped-def]
    store, verifier, sinks, rotator, _ = world
    key = ManagedKey("k", PATH, sinks)
    await _activate_old(store, verifier, rotator, key)
    sinks[1].held = None  # the sink lost it
    result = await rotator.rotate(key, force=True)
    assert result.result == "noop" and "re-delivered" in result.reason
    assert [s.held for s in sinks] == [OLD, OLD]


class _Clock:
    def __init__(self) -> None:
        self.now = CREATED + timedelta(days=10)

    def __call__(self) -> datetime:
        return self.now


async def test_lease_is_kept_alive_through_slow_sinks_and_lost_lease_stops_delivery() -> None:
    store, verifier, clock = FakeStore(), FakeVerifier(), _Clock()
    settings = parse_settings({"keys": [{"name": "k", "vault_path": PATH}]})  # lease 60s
    rotator = Rotator(
        store=store,
        verifier=verifier,
        settings=settings,
        metrics=Metrics(),
        owner="me",
        clock=clock,
        sleep=_no_sleep,
    )

    lease_left: list[float] = []

    class SlowSink(FakeSink):
        async def deliver(self, delivery):  # type: ignore[no-untyped-def]
            clock.now += timedelta(seconds=40)  # each sink takes 40 s
            until = store.states["k"][0].pending_until
            assert until is not None
            lease_left.append((until - clock.now).total_seconds())
            await super().deliver(delivery)

    sinks = [SlowSink("a"), SlowSink("b"), SlowSink("c")]
    key = ManagedKey("k", PATH, sinks)
    store.put(PATH, OLD)
    verifier.set(OLD, Status.VALID)
    assert (await rotator.rotate(key)).result == "rotated"
    assert store.states["k"][0].pending_version is None
    assert len(lease_left) == 3 and min(lease_left) > 0  # 120 s of delivery, a 60 s lease

    # Another instance takes the state over while our first sink is slow: we stop there.
    store.put(PATH, NEW)
    verifier.set(NEW, Status.VALID)

    class Thief(SlowSink):
        async def deliver(self, delivery):  # type: ignore[no-untyped-def]
            await super().deliver(delivery)
            state, cas = store.states["k"]
            store.states["k"] = (replace(state, pending_owner="other"), cas + 1)

    thief_sinks = [Thief("a"), SlowSink("b")]
    result = await rotator.rotate(ManagedKey("k", PATH, thief_sinks))
    assert result.result == "noop" and "lease" in result.reason
    assert thief_sinks[1].held is None  # nothing delivered after the lease was lost
