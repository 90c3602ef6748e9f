"""The rotation decision: which Vault version to promote, or why none. Pure: no I/O.

:func:`choose_target` is the whole policy; ``rotator.core.rotation`` carries it out.
"""

from __future__ import annotations

from datetime import datetime

from rotator.domain.model import KeyState


def leased_by_other(state: KeyState, owner: str, now: datetime) -> bool:
    return (
        state.pending_version is not None
        and state.pending_owner != owner
        and state.pending_until is not None
        and state.pending_until > now
    )


def choose_target(
    state: KeyState, latest: int | None, *, explicit: int | None, force: bool
) -> tuple[int | None, str]:
    """Which version to promote, or None and why not. Pure: the whole policy is here."""
    target = explicit if explicit is not None else latest
    if target is None:
        return None, "no live version in Vault"
    if target == state.active_version and not force:
        return None, f"version {target} is already active"
    if explicit is None and not force:
        if state.active_version is not None and target < state.active_version:
            return None, f"version {target} is older than the active {state.active_version}"
        if target == state.rejected_version:
            return None, f"version {target} was rejected; stage a new key or force it"
    return target, ""
