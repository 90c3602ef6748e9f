"""The lease a rotation holds on a key's state while it delivers: one instance at a time.

Taken with check-and-set on the state secret (``pending_*`` fields); kept alive between
sinks so that a slow delivery never outlives it; released by the final state write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rotator.domain.model import KeyState
from rotator.errors import CasConflict
from rotator.logs import get_logger
from rotator.ports import SecretStore

log = get_logger(__name__)


@dataclass
class RotationLease:
    store: SecretStore
    name: str
    state: KeyState
    """The state as it was before the lease: what a failure writes back."""
    cas: int
    length: timedelta
    clock: Callable[[], datetime]
    until: datetime

    @classmethod
    async def take(
        cls,
        store: SecretStore,
        name: str,
        state: KeyState,
        cas: int,
        *,
        version: int,
        owner: str,
        length: timedelta,
        clock: Callable[[], datetime],
    ) -> RotationLease | None:
        """The lease, or None when another instance wrote the state first."""
        until = clock() + length
        held = replace(state, pending_version=version, pending_owner=owner, pending_until=until)
        try:
            new_cas = await store.write_state(name, held, cas)
        except CasConflict:
            log.info("key.rotation_yielded", key=name, version=version)
            return None
        return cls(store, name, state, new_cas, length, clock, until)

    async def keep(self) -> bool:
        """Extend the lease once half of it is gone; False if another instance took over."""
        now = self.clock()
        if self.until - now > self.length / 2:
            return True
        current, _ = await self.store.read_state(self.name)
        until = now + self.length
        try:
            self.cas = await self.store.write_state(
                self.name, replace(current, pending_until=until), self.cas
            )
        except CasConflict:
            log.error("key.lease_lost", key=self.name)
            return False
        self.until = until
        return True

    async def release(self, final: KeyState) -> None:
        """Record ``final`` (the outcome) and end the lease in one write."""
        cleared = replace(final, pending_version=None, pending_owner=None, pending_until=None)
        try:
            await self.store.write_state(self.name, cleared, self.cas)
        except CasConflict:
            # Only when the lease was lost: converge() sets the sinks right on that side.
            log.error("key.state_conflict", key=self.name, version=final.active_version)
