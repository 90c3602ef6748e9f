"""What the admin API works with: the few collaborators it is given, and its own bookkeeping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from rotator.core.admin_keys import AdminKeys
from rotator.core.service import KeyService
from rotator.intake.service import IntakeService

WAIT_S = 30.0


@dataclass(frozen=True)
class AdminDeps:
    """Built by the composition root (``rotator.app.bootstrap.admin_deps``)."""

    service: KeyService
    vault_ready: Callable[[], Awaitable[tuple[bool, str]]]
    """Whether Vault answers and the daemon's token is good, and why not."""
    scheduler_running: Callable[[], bool]
    warn_days: int
    critical_days: int
    token: str | None
    """The admin bearer token; None when auth is off (loopback only)."""
    stop: asyncio.Event | None = None
    """Set when the daemon stops: readiness then answers 503."""
    admin_keys: AdminKeys | None = None
    """Mistral's Admin API: inventory and minting (None without ``mistral.admin``)."""
    intake: IntakeService | None = None
    """Key intake links (``POST``/``DELETE .../intake``); None without ``intake:``."""


@dataclass
class AdminState:
    deps: AdminDeps
    wait_s: float = WAIT_S
    operations: set[asyncio.Task[Any]] = field(default_factory=set)
    in_flight: dict[str, str] = field(default_factory=dict)
    """Key name -> the admin operation under way on it."""

    @property
    def token(self) -> str | None:
        return self.deps.token


def state_of(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state
