"""The poll spaces itself out by its own CPU cost (rotator.app.scheduler._PollPace), so a
huge folder does not keep a core busy at the default poll_interval, and a small one keeps it."""

from __future__ import annotations

import time

import pytest

from rotator.app import scheduler
from rotator.app.scheduler import MAX_POLL_GAP_S, POLL_CPU_SHARE, _PollPace

POLL_S = 5.0


def burn(cpu_s: float) -> None:
    """Spend ``cpu_s`` of this process's CPU, as parsing a large listing does."""
    until = time.process_time() + cpu_s
    while time.process_time() < until:
        pass


def poll(pace: _PollPace, cpu_s: float) -> float:
    started, cpu_started = time.monotonic(), time.process_time()
    burn(cpu_s)
    pace.took(started, cpu_started)
    return started


def test_a_cheap_poll_keeps_the_interval() -> None:
    pace = _PollPace(POLL_S)
    assert pace.due(time.monotonic())
    started = poll(pace, 0.0)
    # The interval job alone paces it: whenever it comes back, the poll is due.
    assert pace.due(started + 0.1) and pace.due(started + POLL_S - 0.5)


def test_an_expensive_poll_waits_until_its_cpu_is_a_small_share() -> None:
    pace = _PollPace(POLL_S)
    cpu = 0.3  # about what a folder of 10,000 keys costs a poll
    started = poll(pace, cpu)
    gap = cpu / POLL_CPU_SHARE
    assert gap > 2 * POLL_S
    assert not pace.due(started + POLL_S)
    assert not pace.due(started + gap - 1.5)
    assert pace.due(started + gap + 0.5)


def test_the_gap_has_a_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "POLL_CPU_SHARE", 0.0001)
    pace = _PollPace(POLL_S)
    started = poll(pace, 0.05)
    assert not pace.due(started + MAX_POLL_GAP_S - 2)
    assert pace.due(started + MAX_POLL_GAP_S)


def test_waiting_on_a_slow_vault_is_not_cost() -> None:
    """Wall time spent waiting (a slow or unreachable Vault) does not slow the polls down."""
    pace = _PollPace(POLL_S)
    started, cpu_started = time.monotonic(), time.process_time()
    time.sleep(0.3)
    pace.took(started, cpu_started)
    assert pace.due(started + POLL_S - 0.5)
