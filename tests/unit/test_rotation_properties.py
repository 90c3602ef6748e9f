"""A stateful property test of the rotation core (issue 11): random sequences of what Vault,
Mistral, the sinks, ops and the process can do, with the invariants checked after each step.

Steps: new versions (valid, refused by Mistral, or with no definite answer), rotate (as a
poll does), rotate to a named version (one that may not exist), ``--force``, rollback,
deleting or destroying a version (the active one too), one-shot sink failures of every kind
(SinkError, an arbitrary exception, a sink that takes the key and then fails, an unreadable
sink), crashes in the middle of a delivery, restarts (before and after the lease ran out),
and time passing.

Invariants after every step:
- while no lease is recorded, every sink holds the same key, and it is the state's active
  version (unless that version is gone from Vault, when there is nothing to put back);
- while a lease is recorded (a crash mid-delivery), each sink holds the active or the leased
  version, nothing else;
- nothing is ever delivered that Mistral did not call valid;
- ``--force`` never changes the active version; a rollback never goes forward.

CI runs ``CI_EXAMPLES`` examples, derandomized (the same ones every run, fast); ``make soak``
sets ``ROTATOR_PROPERTY_EXAMPLES`` for a longer run with fresh random examples.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rotator.adapters.metrics.registry import Metrics
from rotator.config import parse_settings
from rotator.core.rotation import ManagedKey, Rotator
from rotator.domain.model import Delivery, KeyState, Status
from rotator.errors import NotPossible, SinkError
from tests.unit.fakes import CREATED, FakeStore, FakeVerifier

CI_EXAMPLES = 200
NAME, PATH = "k", "mistral/k"
LEASE = timedelta(seconds=60)
SETTINGS = parse_settings(
    {
        "keys": [{"name": NAME, "vault_path": PATH}],
        "rotation": {"lease": "60s", "sink_attempts": 1, "retry_backoff": "1s"},
    }
)
FAILURES = ("sink_error", "exception", "unicode", "half_taken", "half_taken_exception")


class Crash(BaseException):
    """The process dies here (SIGKILL): nothing after it runs, no clean-up."""


@dataclass
class ScriptedSink:
    """A sink that fails as told, once, then works again."""

    name: str
    valid_keys: set[str]
    held: str | None = None
    fail: str | None = None
    crash: bool = False
    unreadable: bool = False
    invalid_deliveries: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"scripted:{self.name}"

    async def deliver(self, delivery: Delivery) -> None:
        if delivery.api_key not in self.valid_keys:
            self.invalid_deliveries.append(delivery.api_key)
        if self.crash:
            self.crash = False
            self.held = delivery.api_key  # it took it, then the daemon died
            raise Crash
        kind, self.fail = self.fail, None
        if kind in ("half_taken", "half_taken_exception"):
            self.held = delivery.api_key
        if kind in ("sink_error", "half_taken"):
            raise SinkError(f"{self.id} refused")
        if kind in ("exception", "half_taken_exception"):
            raise RuntimeError("a bug in the sink")
        if kind == "unicode":
            "é".encode("ascii")  # a UnicodeEncodeError, as from a non-ASCII header value
        self.held = delivery.api_key

    async def holds(self, delivery: Delivery) -> bool | None:
        if self.unreadable:
            self.unreadable = False
            raise TypeError("cannot tell")
        return self.held == delivery.api_key


class RotationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.now = CREATED + timedelta(days=10)
        self.store = self._new_store()
        self.verifier = FakeVerifier()
        self.keys: dict[int, str] = {}
        self.valid_keys: set[str] = set()
        """Every key Mistral has called valid: the only ones a sink may ever get."""
        self.sinks = [ScriptedSink(n, self.valid_keys) for n in ("file", "http", "vault")]
        self.key = ManagedKey(NAME, self.path, tuple(self.sinks))
        self.restarts = 0
        self.rotator = self._new_rotator()
        self.crashed = False
        self.converged = True
        """False after a start whose converge did not finish: the next poll converges first."""

    def teardown(self) -> None:
        self.loop.close()

    # --- helpers ---------------------------------------------------------------------------

    def _new_rotator(self) -> Rotator:
        async def no_sleep(_: float) -> None:
            return None

        return Rotator(
            store=self.store,
            verifier=self.verifier,
            settings=SETTINGS,
            metrics=Metrics(),
            owner=f"host:{1000 + self.restarts}",
            clock=lambda: self.now,
            sleep=no_sleep,
        )

    def _run(self, work):  # type: ignore[no-untyped-def]
        try:
            return self.loop.run_until_complete(work)
        except Crash:
            self.crashed = True
            return None

    # What differs between the in-memory store and OpenBao (tests/integration).

    salt = "x" * 24
    path = PATH
    store: Any

    def _new_store(self) -> Any:
        return FakeStore()

    def _put(self, value: str) -> int:
        return int(self.store.put(self.path, value))

    def _delete(self, version: int) -> None:
        self.store.delete(self.path, version)  # soft delete and destroy read the same to the daemon

    def _live(self, version: int) -> bool:
        return self.store.secrets.get(self.path, {}).get(version) is not None

    def _state(self) -> KeyState | None:
        state: KeyState | None = self.store.states.get(NAME, (None, 0))[0]
        return state

    def _active(self) -> int | None:
        state = self._state()
        return state.active_version if state else None

    def _verify_records(self) -> None:
        for key, statuses in self.verifier.verdicts.items():
            if statuses and statuses[0] is Status.VALID:
                self.valid_keys.add(key)

    # --- Vault and Mistral -----------------------------------------------------------------

    @rule(verdict=st.sampled_from([Status.VALID, Status.VALID, Status.INVALID, Status.UNREACHABLE]))
    def new_version(self, verdict: Status) -> None:
        """A key staged (valid), or one Mistral refuses, or cannot judge now."""
        value = f"key-{len(self.keys) + 1:04d}-{self.salt}"
        version = self._put(value)
        self.keys[version] = value
        self.verifier.set(value, verdict)
        self._verify_records()

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data())
    def delete_or_destroy_a_version(self, data: st.DataObject) -> None:
        version = data.draw(st.sampled_from(sorted(self.keys)))
        self._delete(version)

    @rule(seconds=st.sampled_from([1, 30, 61, 3600]))
    def time_passes(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # --- the sinks -------------------------------------------------------------------------

    @rule(sink=st.integers(0, 2), kind=st.sampled_from(FAILURES))
    def a_sink_fails_next(self, sink: int, kind: str) -> None:
        self.sinks[sink].fail = kind

    @rule(sink=st.integers(0, 2))
    def a_sink_cannot_tell_next(self, sink: int) -> None:
        self.sinks[sink].unreadable = True

    @precondition(lambda self: not self.crashed)
    @rule(sink=st.integers(0, 2))
    def the_daemon_dies_in_the_next_delivery(self, sink: int) -> None:
        self.sinks[sink].crash = True

    # --- the daemon and ops ----------------------------------------------------------------

    @precondition(lambda self: not self.crashed)
    @rule()
    def poll(self) -> None:
        if not self.converged:
            self._converge()
            if self.crashed or not self.converged:
                return
        self._run(self.rotator.rotate(self.key))

    @precondition(lambda self: not self.crashed)
    @rule(version=st.integers(1, 12))
    def rotate_to_a_named_version(self, version: int) -> None:
        try:
            self._run(self.rotator.rotate(self.key, version=version))
        except NotPossible:
            assert not self._live(version)

    @precondition(lambda self: not self.crashed)
    @rule()
    def force(self) -> None:
        before = self._active()
        try:
            self._run(self.rotator.rotate(self.key, force=True))
        except NotPossible:
            # Only when there is nothing to re-deliver: never delivered, or deleted since.
            assert before is None or not self._live(before)
        assert self._active() == before, "--force changed the active version"

    @precondition(lambda self: not self.crashed)
    @rule()
    def rollback(self) -> None:
        state = self._state()
        before = state.active_version if state else None
        try:
            result = self._run(self.rotator.rollback(self.key))
        except NotPossible:
            assert self._active() == before
            return
        if result is not None and result.result == "rolled_back":
            assert state is not None and self._active() == state.previous_version
            # A rollback is never undone by another: that would go forward again.
            assert state.last_result != "rolled_back", state

    @rule(wait_for_the_lease=st.booleans())
    def restart(self, wait_for_the_lease: bool) -> None:
        """A new process (a new owner); SIGKILLed or not, the sinks are as they were."""
        if wait_for_the_lease:
            self.now += LEASE + timedelta(seconds=1)
        for sink in self.sinks:
            sink.crash = False
        self.restarts += 1
        self.rotator = self._new_rotator()
        self.crashed = False
        self._converge()

    def _converge(self) -> None:
        result = self._run(self.rotator.converge(self.key))
        self.converged = result is not None and not result.contended and result.result != "failed"

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def nothing_invalid_was_ever_delivered(self) -> None:
        for sink in self.sinks:
            assert sink.invalid_deliveries == [], f"{sink.id} got a key Mistral refused"

    @invariant()
    def the_sinks_agree_with_the_state(self) -> None:
        state = self._state()
        if state is None or state.active_version is None:
            return
        held = [s.held for s in self.sinks]
        active = self.keys[state.active_version]
        if state.pending_version is not None:
            # A lease is recorded: a delivery was cut short (a crash) or is under way.
            allowed = {active, self.keys.get(state.pending_version)}
            assert set(held) <= allowed, (held, state)
            return
        if self.crashed or not self.converged:
            return  # the next start (or poll) converges: checked then
        if not self._live(state.active_version):
            return  # the active version is gone from Vault: nothing to put back from
        assert held == [active] * len(self.sinks), (held, state)


RotationMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("ROTATOR_PROPERTY_EXAMPLES", CI_EXAMPLES)),
    derandomize="ROTATOR_PROPERTY_EXAMPLES" not in os.environ,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRotationProperties = RotationMachine.TestCase


def test_the_machine_is_not_vacuous() -> None:
    """The invariants only mean something if rotations happen: one scripted run."""
    machine = RotationMachine()
    try:
        machine.new_version(Status.VALID)
        machine.poll()
        machine.new_version(Status.VALID)
        machine.poll()
        assert [s.held for s in machine.sinks] == [machine.keys[2]] * 3
        machine.rollback()
        assert machine._active() == 1
        machine.force()
        assert machine._active() == 1
        machine.rollback()  # refused: it would go forward
        assert machine._active() == 1
        machine.the_sinks_agree_with_the_state()
    finally:
        machine.teardown()
