"""The rotation decision: which Vault version to promote, or why none. Pure: no I/O.

:func:`choose_target` is the whole policy; ``rotator.core.rotation`` carries it out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rotator.domain.model import KeyState
from rotator.errors import NotPossible

LEASE_SKEW = 2
"""A lease may end at most this many lease lengths from now: what a live holder writes is
``now + rotation.lease`` by its clock, so more means a clock far ahead (or a tampered
state), and honouring it would block the key for as long as that clock is wrong."""


def leased_by_other(
    state: KeyState, owner: str, now: datetime, length: timedelta | None = None
) -> bool:
    """Another instance holds a live lease. ``length`` (``rotation.lease``) caps how far
    ahead a lease may run; one beyond that is stale (see :func:`stale_lease`)."""
    held = (
        state.pending_version is not None
        and state.pending_owner != owner
        and state.pending_until is not None
        and state.pending_until > now
    )
    return held and not (length is not None and stale_lease(state, now, length))


def stale_lease(state: KeyState, now: datetime, length: timedelta) -> bool:
    """A lease no live holder could have written: ending beyond ``LEASE_SKEW`` lengths."""
    until = state.pending_until
    return (
        state.pending_version is not None
        and until is not None
        and until > now + LEASE_SKEW * length
    )


def choose_target(
    state: KeyState, latest: int | None, *, explicit: int | None, force: bool
) -> tuple[int | None, str]:
    """Which version to promote, or None and why not. Pure: the whole policy is here.

    ``force`` re-delivers the active version and never promotes another one: after a
    rollback, "force" must not move forward to the version just left. An ``explicit``
    version is what ops asked for, older or once rejected. Raises NotPossible for a request
    that cannot be done as asked.
    """
    if force:
        if state.active_version is None:
            raise NotPossible(
                "no version has been delivered yet, so there is nothing to re-deliver "
                "(--force re-delivers the active version); leave out --force to rotate"
            )
        if explicit is not None and explicit != state.active_version:
            raise NotPossible(
                f"--force re-delivers the active version {state.active_version}; to promote "
                f"version {explicit}, leave out --force"
            )
        return state.active_version, ""
    target = explicit if explicit is not None else latest
    if target is None:
        return None, "no live version in Vault"
    if target == state.active_version:
        return None, f"version {target} is already active"
    if explicit is None:
        if state.active_version is not None and target < state.active_version:
            return None, f"version {target} is older than the active {state.active_version}"
        if target == state.rejected_version:
            return None, (
                f"version {target} was rejected; stage a new key, or promote it "
                f"with --version {target}"
            )
    return target, ""
