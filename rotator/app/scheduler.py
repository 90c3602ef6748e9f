"""When things happen: the Vault poll, each key's verification, token upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from rotator.adapters.vault.codec import parse_time
from rotator.adapters.vault.gateway import VAULT_CONCURRENCY
from rotator.adapters.vault.listing import Listed
from rotator.config import Settings
from rotator.core.service import KeyBusy, KeyService, UnknownKey
from rotator.logs import get_logger

log = get_logger(__name__)

TOKEN_CHECK_S = 5
UNLISTED_PER_S = 30
"""Metadata reads a second, on average, for keys no folder list covers: about 3 % of a core."""
POLL_CPU_SHARE = 0.015
"""The most of a core the poll's own step (list, compare) may take, however large the fleet:
with the verifications of 10,000 keys an hour (about 1 %) the daemon stays under 3 % of a core."""
MAX_POLL_GAP_S = 60.0


def build_scheduler(
    settings: Settings,
    service: KeyService,
    maintain_token: Callable[[], Awaitable[None]],
    refresh_keys: Callable[[], Awaitable[Mapping[str, Listed] | None]] | None = None,
) -> AsyncIOScheduler:
    """Jobs never overlap themselves (max_instances=1) and a late run is coalesced into one.

    ``refresh_keys`` runs first in each poll: it may add or drop keys, and return the newest
    live version (and creation time) of the keys a folder list covered
    (:class:`rotator.app.watch.Watch`).
    """
    scheduler = AsyncIOScheduler(
        executors={"default": _QuietExecutor()},
        timezone=UTC,
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
    )
    poll_s = settings.schedule.poll_interval.total_seconds()
    now = datetime.now(UTC)
    pending: set[str] = set()
    """Keys whose poll is running or queued in a batch."""
    queued = _Queued()
    batches: set[asyncio.Task[None]] = set()
    checks = _Verifications(service, settings.schedule.verify_interval.total_seconds())
    # Enough keys at a time for Vault's reads and Mistral's verifications to overlap; each
    # is bounded on its own (Vault's worker threads, mistral.max_concurrency).
    workers = VAULT_CONCURRENCY + settings.mistral.max_concurrency
    ration = _Ration()
    pace = _PollPace(poll_s)

    async def poll_all() -> None:
        if queued.keys:
            # Keys of an earlier poll still wait for a worker (the first poll of thousands
            # of keys): listing again would tell them nothing new, and a list of 10,000 keys
            # costs OpenBao about a second of CPU (which a restart needs for its reads).
            return
        if not pace.due(time.monotonic()):
            return
        started = time.monotonic(), time.process_time()
        listed = (await refresh_keys() if refresh_keys is not None else None) or {}
        names = service.names()
        checks.sync(names)
        # A key listed at the version it already settled on has nothing to do. A key whose
        # last poll is still running (or waiting its turn) is skipped, so nothing piles up
        # while Vault is slow; a slow rotation of one key (a sink that hangs) holds one
        # worker of its batch, never the next poll of the others.
        due = [
            (name, entry)
            for name in names
            if name not in pending
            and not service.unchanged(name, entry.version if (entry := listed.get(name)) else None)
        ]
        due = ration.select(due, service, poll_s)
        pace.took(*started)
        if due:
            pending.update(name for name, _ in due)
            batch = asyncio.create_task(
                _poll_keys(service, due, workers, pending, queued), name="poll"
            )
            batches.add(batch)
            batch.add_done_callback(batches.discard)

    scheduler.add_job(
        _ends_quietly(poll_all),
        "interval",
        seconds=poll_s,
        id="poll",
        next_run_time=now,
        jitter=min(poll_s / 10, 5.0),
    )
    scheduler.add_job(_ends_quietly(checks.run_due), "interval", seconds=checks.tick_s, id="verify")
    scheduler.add_job(
        _ends_quietly(maintain_token),
        "interval",
        seconds=TOKEN_CHECK_S,
        id="vault-token",
        next_run_time=now + timedelta(seconds=TOKEN_CHECK_S),
    )
    return scheduler


_E = TypeVar("_E")


def _ends_quietly(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """``job``, ending without an error when the scheduler's shutdown cancels it at stop
    (Vault's token upkeep or a verification under way): the daemon stopping, not the job
    failing. APScheduler would log the CancelledError as the job's error, with a traceback."""

    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.debug("scheduler.job_cancelled", job=getattr(job, "__name__", repr(job)))

    return run


class _QuietExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """A job cancelled before its first step (a stop right after start-up, the first poll
    submitted but not yet run) never reaches :func:`_ends_quietly`; APScheduler logged it as
    "Error running job" with a traceback. The daemon stopping is not the job failing."""

    def _run_job_error(self, job_id: str, exc: BaseException, traceback: Any = None) -> None:
        if not isinstance(exc, asyncio.CancelledError):
            super()._run_job_error(job_id, exc, traceback)
            return
        with self._lock:
            self._instances[job_id] -= 1
            if self._instances[job_id] == 0:
                del self._instances[job_id]
        log.debug("scheduler.job_cancelled", job=job_id)


class _Ration:
    """Keys that no folder list covers (HashiCorp Vault, a policy without detailed-metadata)
    cost a metadata read each per poll. At most :data:`UNLISTED_PER_S` of them a second are
    polled, in turn: 10,000 such keys are each read about every 6 minutes instead of every
    poll (which would keep a core busy), 150 or fewer every poll at the default interval.
    A key's first poll (which also recovers it) is never held back."""

    def __init__(self) -> None:
        self._turn = 0

    def select(
        self, due: list[tuple[str, _E | None]], service: KeyService, poll_s: float
    ) -> list[tuple[str, _E | None]]:
        budget = max(1, int(UNLISTED_PER_S * poll_s))
        waiting = [d for d in due if d[1] is None and service.started(d[0])]
        if len(waiting) <= budget:
            return due
        start = self._turn % len(waiting)
        self._turn = start + budget
        chosen = {name for name, _ in (waiting + waiting)[start : start + budget]}
        held = {name for name, _ in waiting} - chosen
        return [d for d in due if d[0] not in held]


class _PollPace:
    """The next poll waits until the last one's own CPU (the folder listing's JSON, comparing
    every key; not the keys' reads) is at most :data:`POLL_CPU_SHARE` of the time since it
    began. A fleet of hundreds keeps ``poll_interval``; a folder of 10,000 keys (0.2 to 0.3 s
    a poll, most of it decoding the list's JSON) is listed every 13 to 20 s instead of every
    5 s. Measured in CPU, not wall time: a slow or unreachable Vault does not slow the polls
    down."""

    def __init__(self, poll_s: float) -> None:
        self._poll_s = poll_s
        self._next = 0.0

    def due(self, now: float) -> bool:
        return now >= self._next

    def took(self, started: float, cpu_started: float) -> None:
        # The whole process's CPU: work running beside the poll counts too, which only
        # spaces the polls out further while the daemon is busy.
        gap = min((time.process_time() - cpu_started) / POLL_CPU_SHARE, MAX_POLL_GAP_S)
        if gap <= self._poll_s:
            self._next = 0.0  # the interval job alone paces a cheap poll
            return
        # A little early: the interval job's own jitter would otherwise skip a whole poll.
        self._next = started + gap - min(self._poll_s / 2, 1.0)


class _Queued:
    """How many keys of the poll batches wait for a worker (not those being polled)."""

    def __init__(self) -> None:
        self.keys = 0


async def _poll_keys(
    service: KeyService,
    due: list[tuple[str, Listed | None]],
    workers: int,
    pending: set[str],
    queued: _Queued,
) -> None:
    """Poll every key of ``due`` (with what the list said of it), ``workers`` keys at a time:
    a few tasks for 10,000 keys, not one each."""
    queue = iter(due)
    taken = 0
    queued.keys += len(due)

    async def worker() -> None:
        nonlocal taken
        for name, entry in queue:
            taken += 1
            queued.keys -= 1
            try:
                # UnknownKey: discovery dropped it while it waited for its turn.
                with contextlib.suppress(UnknownKey):
                    if entry is None:
                        await service.poll(name)
                    else:
                        created = parse_time(entry.created) if entry.created else None
                        await service.poll(name, entry.version, created=created)
            finally:
                pending.discard(name)

    try:
        await asyncio.gather(*(worker() for _ in range(min(workers, len(due)))))
    finally:
        queued.keys -= len(due) - taken  # cut short (a stop): none of them waits any more


class _Verifications:
    """Each key verified every ``verify_interval``, from one job that wakes every
    :attr:`tick_s`: a heap of due times, not an APScheduler job a key (about 500 bytes each,
    and at a first start 10,000 ``add_job`` calls that each woke the scheduler).

    As the jobs did: a new key's first check falls at a random moment of the first interval
    (the first poll already verified it), so that a fleet never becomes a burst on Mistral;
    later ones come every interval plus a jitter; a check that is still running when the
    next is due is not doubled, and missed ones are not caught up (coalesced)."""

    def __init__(
        self,
        service: KeyService,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._clock = clock
        self._interval = interval_s
        self._jitter = min(interval_s / 20, 60.0)
        self.tick_s = min(1.0, max(interval_s / 10, 0.05))
        self._base: dict[str, float] = {}
        """Key -> its current due time without jitter (monotonic clock)."""
        self._heap: list[tuple[float, str]] = []
        """(moment to check, key); an entry whose key left or moved on is skipped."""
        self._next: dict[str, float] = {}
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def sync(self, names: list[str]) -> None:
        """Check the keys of ``names`` from now on, and no others."""
        if len(names) == len(self._base) and self._base.keys() == set(names):
            return
        now = self._clock()
        for name in names:
            if name not in self._base:
                # Spreading the first checks, not a secret: random is enough.
                first = now + random.uniform(0.1, 1.0) * self._interval  # noqa: S311  # nosec B311
                self._base[name] = first
                self._push(name, first)
        for name in self._base.keys() - set(names):
            del self._base[name]  # a discovered key that is gone
            del self._next[name]

    def _push(self, name: str, at: float) -> None:
        self._next[name] = at
        heapq.heappush(self._heap, (at, name))

    async def run_due(self) -> None:
        now = self._clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, name = heapq.heappop(heap)
            if self._next.get(name) != at:
                continue
            base = self._base[name] + self._interval
            while base <= now:
                base += self._interval  # coalesced: one check, not one per missed interval
            self._base[name] = base
            # Jitter, not a secret: random is enough.
            self._push(name, base + random.uniform(0, self._jitter))  # noqa: S311  # nosec B311
            if name in self._running:
                continue  # the last check of this key is still under way
            self._running.add(name)
            task = asyncio.create_task(self._verify(name), name=f"verify:{name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _verify(self, name: str) -> None:
        try:
            # KeyBusy: a rotation is verifying this key right now; UnknownKey: it was dropped.
            with contextlib.suppress(KeyBusy, UnknownKey):
                await self._service.verify(name, wait=False)
        finally:
            self._running.discard(name)
