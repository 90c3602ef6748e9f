"""Keys no folder list covers are polled in turn, a bounded number a second; nothing else
is held back."""

from __future__ import annotations

from typing import Any, cast

from rotator.app.scheduler import UNLISTED_PER_S, _Ration
from rotator.core.service import KeyService


class _Started:
    def __init__(self, started: set[str]) -> None:
        self._started = started

    def started(self, name: str) -> bool:
        return name in self._started


def _service(started: set[str]) -> KeyService:
    return cast(KeyService, cast(Any, _Started(started)))


def test_unlisted_keys_take_turns_and_each_is_polled_within_a_few_rounds() -> None:
    names = [f"k{i:03d}" for i in range(100)]
    service = _service(set(names))
    ration = _Ration()
    due: list[tuple[str, int | None]] = [(n, None) for n in names]
    budget = UNLISTED_PER_S * 1  # a poll every second
    rounds = [ration.select(due, service, 1.0) for _ in range(4)]
    assert all(len(chosen) == budget for chosen in rounds)
    seen = {name for chosen in rounds for name, _ in chosen}
    assert seen == set(names)


def test_listed_keys_and_first_polls_are_never_held_back() -> None:
    unlisted = [(f"u{i:03d}", None) for i in range(200)]
    listed = [(f"l{i:03d}", 7) for i in range(500)]
    new = [(f"n{i:03d}", None) for i in range(50)]  # never polled yet: they must recover
    service = _service({n for n, _ in unlisted + listed})
    chosen = _Ration().select(unlisted + listed + new, service, 1.0)
    names = {n for n, _ in chosen}
    assert {n for n, _ in listed + new} <= names
    assert len(names & {n for n, _ in unlisted}) == UNLISTED_PER_S


def test_few_unlisted_keys_are_all_polled_every_time() -> None:
    due: list[tuple[str, int | None]] = [(f"k{i}", None) for i in range(20)]
    service = _service({n for n, _ in due})
    assert _Ration().select(due, service, 5.0) == due
