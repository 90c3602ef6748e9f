"""When things happen: the Vault poll, one verification job per key, token upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from rotator.config import Settings
from rotator.core.service import KeyBusy, KeyService, UnknownKey
from rotator.logs import get_logger

log = get_logger(__name__)

TOKEN_CHECK_S = 5
VAULT_CONCURRENCY = 16
UNLISTED_PER_S = 30
"""Metadata reads a second, on average, for keys no folder list covers: about 3 % of a core."""


def build_scheduler(
    settings: Settings,
    service: KeyService,
    maintain_token: Callable[[], Awaitable[None]],
    refresh_keys: Callable[[], Awaitable[Mapping[str, int] | None]] | None = None,
) -> AsyncIOScheduler:
    """Jobs never overlap themselves (max_instances=1) and a late run is coalesced into one.

    ``refresh_keys`` runs first in each poll: it may add or drop keys, and return the newest
    live version of the keys a folder list covered (:class:`rotator.app.watch.Watch`).
    """
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
    )
    poll_s = settings.schedule.poll_interval.total_seconds()
    now = datetime.now(UTC)
    pending: set[str] = set()
    """Keys whose poll is running or queued in a batch."""
    batches: set[asyncio.Task[None]] = set()
    verified: set[str] = set()
    """The keys that have a verification job."""
    # Enough keys at a time for Vault's reads and Mistral's verifications to overlap; each
    # is bounded on its own (Vault's worker threads, mistral.max_concurrency).
    workers = VAULT_CONCURRENCY + settings.mistral.max_concurrency
    ration = _Ration()

    async def poll_all() -> None:
        listed = (await refresh_keys() if refresh_keys is not None else None) or {}
        names = service.names()
        if set(names) != verified:
            _sync_verify_jobs(scheduler, settings, service, verified, set(names))
        # A key listed at the version it already settled on has nothing to do. A key whose
        # last poll is still running (or waiting its turn) is skipped, so nothing piles up
        # while Vault is slow; a slow rotation of one key (a sink that hangs) holds one
        # worker of its batch, never the next poll of the others.
        due = [
            (name, listed.get(name))
            for name in names
            if name not in pending and not service.unchanged(name, listed.get(name))
        ]
        due = ration.select(due, service, poll_s)
        if due:
            pending.update(name for name, _ in due)
            batch = asyncio.create_task(_poll_keys(service, due, workers, pending), name="poll")
            batches.add(batch)
            batch.add_done_callback(batches.discard)

    scheduler.add_job(
        poll_all,
        "interval",
        seconds=poll_s,
        id="poll",
        next_run_time=now,
        jitter=min(poll_s / 10, 5.0),
    )
    scheduler.add_job(
        maintain_token,
        "interval",
        seconds=TOKEN_CHECK_S,
        id="vault-token",
        next_run_time=now + timedelta(seconds=TOKEN_CHECK_S),
    )
    return scheduler


class _Ration:
    """Keys that no folder list covers (HashiCorp Vault, a policy without detailed-metadata)
    cost a metadata read each per poll. At most :data:`UNLISTED_PER_S` of them a second are
    polled, in turn: 10,000 such keys are each read about every 6 minutes instead of every
    poll (which would keep a core busy), 150 or fewer every poll at the default interval.
    A key's first poll (which also recovers it) is never held back."""

    def __init__(self) -> None:
        self._turn = 0

    def select(
        self, due: list[tuple[str, int | None]], service: KeyService, poll_s: float
    ) -> list[tuple[str, int | None]]:
        budget = max(1, int(UNLISTED_PER_S * poll_s))
        waiting = [d for d in due if d[1] is None and service.started(d[0])]
        if len(waiting) <= budget:
            return due
        start = self._turn % len(waiting)
        self._turn = start + budget
        chosen = {name for name, _ in (waiting + waiting)[start : start + budget]}
        held = {name for name, _ in waiting} - chosen
        return [d for d in due if d[0] not in held]


async def _poll_keys(
    service: KeyService, due: list[tuple[str, int | None]], workers: int, pending: set[str]
) -> None:
    """Poll every key of ``due`` (with its listed version), ``workers`` keys at a time: a
    few tasks for 10,000 keys, not one each."""
    queue = iter(due)

    async def worker() -> None:
        for name, latest in queue:
            try:
                # UnknownKey: discovery dropped it while it waited for its turn.
                with contextlib.suppress(UnknownKey):
                    await service.poll(name, latest)
            finally:
                pending.discard(name)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(due)))))


def _sync_verify_jobs(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    service: KeyService,
    verified: set[str],
    names: set[str],
) -> None:
    """One verification job per key: added for new keys, removed for keys that are gone."""
    for name in sorted(names - verified):
        _add_verify_job(scheduler, settings, service, name)
    for name in verified - names:
        with contextlib.suppress(JobLookupError):
            scheduler.remove_job(f"verify:{name}")  # a discovered key that is gone
    verified.clear()
    verified.update(names)


def _add_verify_job(
    scheduler: AsyncIOScheduler, settings: Settings, service: KeyService, name: str
) -> None:
    interval = settings.schedule.verify_interval.total_seconds()

    async def verify() -> None:
        # KeyBusy: a rotation is verifying this key right now; UnknownKey: it was dropped.
        with contextlib.suppress(KeyBusy, UnknownKey):
            await service.verify(name, wait=False)

    # The first poll already verified the key: spread the next checks over the interval so
    # a fleet of keys never becomes a burst on Mistral (jitter, not secrecy).
    spread = random.uniform(0.1, 1.0) * interval  # noqa: S311  # nosec B311
    first = datetime.now(UTC) + timedelta(seconds=spread)
    scheduler.add_job(
        verify,
        "interval",
        seconds=interval,
        id=f"verify:{name}",
        next_run_time=first,
        jitter=min(interval / 20, 60.0),
    )
