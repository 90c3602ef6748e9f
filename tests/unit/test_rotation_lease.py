"""KeyService under another instance's lease: it looks again, so a crashed holder is undone."""

from __future__ import annotations

from datetime import datetime, timedelta

from rotator.adapters.metrics.registry import Metrics
from rotator.config import parse_settings
from rotator.core.rotation import ManagedKey, Rotator
from rotator.core.service import KeyService
from rotator.domain.model import KeyState, Status
from tests.unit.fakes import CREATED, FakeSink, FakeStore, FakeVerifier

PATH = "mistral/k"
OLD, NEW = "old-key-aaaa1111", "new-key-bbbb2222"


class Clock:
    def __init__(self) -> None:
        self.now = CREATED + timedelta(days=10)

    def __call__(self) -> datetime:
        return self.now


def _service(store: FakeStore, verifier: FakeVerifier, clock: Clock, owner: str) -> KeyService:
    settings = parse_settings({"keys": [{"name": "k", "vault_path": PATH}]})
    return KeyService(
        Rotator(
            store=store,
            verifier=verifier,
            settings=settings,
            metrics=Metrics(),
            owner=owner,
            clock=clock,
        )
    )


async def test_restart_under_a_dead_lease_finishes_the_rotation_once_it_runs_out() -> None:
    store, verifier, clock = FakeStore(), FakeVerifier(), Clock()
    store.put(PATH, OLD)
    store.put(PATH, NEW)
    verifier.set(OLD, Status.VALID)
    verifier.set(NEW, Status.VALID)
    # A daemon died after sink a took v2; its lease runs for 30 more seconds.
    sinks = [FakeSink("a", held=NEW), FakeSink("b", held=OLD)]
    lease = KeyState(1, pending_version=2, pending_owner="dead", pending_until=clock.now)
    store.states["k"] = (lease, 1)
    clock.now -= timedelta(seconds=30)
    service = _service(store, verifier, clock, "restarted")
    service.add(ManagedKey("k", PATH, tuple(sinks)))

    await service.poll("k")
    assert store.states["k"][0] == lease  # nothing touched under a live lease
    clock.now += timedelta(seconds=31)
    await service.poll("k")
    state = store.states["k"][0]
    assert (state.active_version, state.pending_version) == (2, None)
    assert [s.held for s in sinks] == [NEW, NEW]
    assert service.view("k").active_version == 2


async def test_second_instance_sees_the_first_ones_rotation_after_its_lease() -> None:
    store, verifier, clock = FakeStore(), FakeVerifier(), Clock()
    store.put(PATH, OLD)
    verifier.set(OLD, Status.VALID)
    verifier.set(NEW, Status.VALID)
    sinks = [FakeSink("a")]
    first = _service(store, verifier, clock, "first")
    second = _service(store, verifier, clock, "second")
    first.add(ManagedKey("k", PATH, tuple(sinks)))
    second.add(ManagedKey("k", PATH, tuple(sinks)))
    await first.poll("k")
    await second.poll("k")
    store.put(PATH, NEW)
    cas = store.states["k"][1]
    # The first instance is delivering v2 when the second one polls.
    until = clock.now + timedelta(seconds=60)
    store.states["k"] = (
        KeyState(1, pending_version=2, pending_owner="first", pending_until=until),
        cas,
    )
    await second.poll("k")
    assert second.view("k").active_version == 1
    store.states["k"] = (KeyState(2, 1, clock.now, "rotated"), cas + 1)  # the first one finished
    await second.poll("k")
    assert second.view("k").active_version == 2
    assert sinks[0].deliveries == [1]  # the second instance delivered nothing
