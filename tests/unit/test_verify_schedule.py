"""The scheduler's bookkeeping at scale: one sweeper verifies every key once an interval
(no job a key), and a poll whose keys still wait for a worker is not listed again."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from rotator.adapters.vault.listing import Listed
from rotator.app.scheduler import _Verifications, build_scheduler
from rotator.config import parse_settings
from rotator.core.service import KeyBusy, KeyService


class _Keys:
    """The part of KeyService the scheduler uses; polls wait for ``release``."""

    def __init__(self, names: list[str]) -> None:
        self._names = names
        self.verified: list[str] = []
        self.polled: list[str] = []
        self.busy: set[str] = set()
        self.release = asyncio.Event()

    def names(self) -> list[str]:
        return list(self._names)

    def unchanged(self, name: str, latest: int | None) -> bool:
        return False

    def started(self, name: str) -> bool:
        return False

    async def poll(self, name: str, latest: int | None = None, **_: Any) -> None:
        self.polled.append(name)
        await self.release.wait()

    async def verify(self, name: str, *, wait: bool = True) -> None:
        if name in self.busy:
            raise KeyBusy(name)
        self.verified.append(name)
        await self.release.wait()


def _service(keys: _Keys) -> KeyService:
    return cast(KeyService, cast(Any, keys))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_each_key_is_checked_once_an_interval_spread_over_it_by_one_job() -> None:
    names = [f"k{i:03d}" for i in range(200)]
    keys, now = _Keys(names), [1000.0]
    checks = _Verifications(_service(keys), 100.0, clock=lambda: now[0])
    checks.sync(names)
    keys.release.set()
    firsts: list[float] = []
    while now[0] < 1100.0:  # the first interval, a tick at a time
        now[0] += checks.tick_s
        before = len(keys.verified)
        await checks.run_due()
        await _settle()
        firsts += [now[0]] * (len(keys.verified) - before)
    assert sorted(keys.verified) == names  # each once
    # Spread: the first checks fall between 10 % and 100 % of the interval, never together.
    assert min(firsts) >= 1010.0 and max(firsts) <= 1100.0
    assert max(firsts.count(t) for t in firsts) <= 20
    now[0] += 100.0 + 5.0 + checks.tick_s  # the next interval, its jitter included
    await checks.run_due()
    await _settle()
    assert sorted(keys.verified) == sorted(names * 2)


async def test_a_check_still_running_is_not_doubled_and_a_dropped_key_is_not_checked() -> None:
    keys, now = _Keys(["a", "b", "c"]), [0.0]
    checks = _Verifications(_service(keys), 10.0, clock=lambda: now[0])
    checks.sync(["a", "b", "c"])
    now[0] = 10.0
    await checks.run_due()
    await _settle()
    assert sorted(keys.verified) == ["a", "b", "c"]  # all three hang in Mistral
    checks.sync(["a", "b"])  # c was deleted in Vault
    now[0] = 30.0
    await checks.run_due()
    await _settle()
    assert sorted(keys.verified) == ["a", "b", "c"]  # none doubled, c gone
    keys.release.set()
    await _settle()
    now[0] = 45.0
    await checks.run_due()
    await _settle()
    assert sorted(keys.verified) == ["a", "a", "b", "b", "c"]


async def test_a_poll_is_not_listed_again_while_keys_of_the_last_one_wait_for_a_worker() -> None:
    many = [f"k{i:03d}" for i in range(200)]  # more than the workers of a batch
    keys = _Keys(many)
    listings: list[int] = []

    async def refresh() -> dict[str, Listed]:
        listings.append(1)
        return {n: Listed(1) for n in many}

    settings = parse_settings({"keys": [{"name": "x", "vault_path": "p"}]})

    async def no_token() -> None:
        return None

    scheduler: AsyncIOScheduler = build_scheduler(settings, _service(keys), no_token, refresh)
    poll = scheduler.get_job("poll").func
    await poll()
    await _settle()
    assert len(listings) == 1 and 0 < len(keys.polled) < len(many)
    await poll()  # the first batch still has keys waiting: no second listing
    assert len(listings) == 1
    keys.release.set()
    for _ in range(50):
        await _settle()
    assert sorted(keys.polled) == many
    await poll()
    assert len(listings) == 2
    for _ in range(50):
        await _settle()
