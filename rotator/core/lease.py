"""The lease a rotation holds on a key's state while it delivers: one instance at a time.

Taken with check-and-set on the state secret (``pending_*`` fields); kept alive between
sinks so that a slow delivery never outlives it; released by the final state write.
"""

from __future__ import annotations

import os
import socket
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

    async def release(self, final: KeyState) -> bool:
        """Record ``final`` (the outcome) and end the lease in one write; False when the
        lease had been lost and nothing was recorded."""
        cleared = replace(final, pending_version=None, pending_owner=None, pending_until=None)
        try:
            await self.store.write_state(self.name, cleared, self.cas)
        except CasConflict:
            # Only when the lease was lost: converge() sets the sinks right on that side.
            log.error("key.state_conflict", key=self.name, version=final.active_version)
            return False
        return True


def instance_owner() -> str:
    """Who holds a lease: ``host:pid``, so that a later start on the same host can tell a
    lease of its own dead predecessor from one of another instance that still runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def orphaned(owner: str | None, me: str) -> bool:
    """Whether ``owner`` was an instance on this host whose process is gone (a SIGTERM mid
    delivery, a crash): its lease need not run out before the sinks are set right."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != me.rpartition(":")[0] or not pid.isdigit():
        return False
    if owner == me:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False
