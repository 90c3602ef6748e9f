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
    limit = asyncio.Semaphore(VAULT_CONCURRENCY)
    in_flight: dict[str, asyncio.Task[None]] = {}
    verified: set[str] = set()
    """The keys that have a verification job."""

    async def poll_all() -> None:
        listed = (await refresh_keys() if refresh_keys is not None else None) or {}
        names = service.names()
        if set(names) != verified:
            _sync_verify_jobs(scheduler, settings, service, verified, set(names))

        async def one(name: str, latest: int | None) -> None:
            async with limit:
                # UnknownKey: discovery dropped it while we waited for our turn.
                with contextlib.suppress(UnknownKey):
                    await service.poll(name, latest)

        # Each key's poll runs on its own: a slow rotation of one key (a sink that hangs)
        # must not hold back the next poll of the others. A key whose last poll is still
        # running is skipped, so nothing piles up while Vault is slow.
        # A key listed at the version it already settled on has nothing to do: no task.
        for name in names:
            task = in_flight.get(name)
            latest = listed.get(name)
            if latest is not None and service.unchanged(name, latest):
                continue
            if task is None or task.done():
                in_flight[name] = asyncio.create_task(one(name, latest), name=f"poll:{name}")
        for name in [n for n, t in in_flight.items() if t.done()]:
            del in_flight[name]

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
