"""The verifier's small parts: Retry-After parsing, the request pacer, sendable keys."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from rotator.adapters.mistral.verifier import RequestPacer, parse_retry_after, sendable

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=45), usegmt=True), 45.0),
        (format_datetime(NOW - timedelta(seconds=45), usegmt=True), 0.0),
        ("Fri, 01 May 2026 12:01:00 GMT", 60.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_pacer_spaces_starts_by_the_interval() -> None:
    clock = FakeClock()
    pacer = RequestPacer(4, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        await pacer.wait()
        starts.append(clock.now)
    assert starts == [100.0, 100.25, 100.5, 100.75, 101.0]


async def test_pacer_does_not_wait_after_a_quiet_spell() -> None:
    clock = FakeClock()
    pacer = RequestPacer(2, clock=clock, sleep=clock.sleep)
    await pacer.wait()
    clock.now += 10
    await pacer.wait()
    assert clock.now == 110.0  # no burst saved up, but no needless wait either


async def test_pacer_holds_concurrent_callers_to_the_rate() -> None:
    pacer = RequestPacer(50)
    starts: list[float] = []

    async def one() -> None:
        await pacer.wait()
        starts.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(10)))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.02 - 0.002
    assert starts[-1] - starts[0] >= 9 * 0.02 - 0.005


@pytest.mark.parametrize("rate", [0, -1])
def test_pacer_refuses_a_rate_that_is_not_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        RequestPacer(rate)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("Zx9QeLr2TbW7uYc4Nd8Hk1Mp5Sa3Vf6G", True),
        ("", False),
        ("Zx9QeLr2TbW7uYc4Nd8Hk1Mp5Sa3Vf6G\n", False),
        ("Zx9QeLr2 TbW7uYc4", False),
        ("Zx9QeLr2TbW7uYc4\r\nX-Evil: 1", False),
        ("Zx9QeLr2TbW7uYc4é", False),
    ],
)
def test_sendable(key: str, ok: bool) -> None:
    assert sendable(key) is ok
