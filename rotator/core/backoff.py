"""Exponential backoff with full jitter, kept per thing that fails (a key, Vault)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass
class Backoff:
    base_s: float
    cap_s: float
    failures: int = 0
    not_before: float = 0.0

    def ready(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.not_before

    def failed(self, at_least_s: float = 0.0, now: float | None = None) -> float:
        """Record a failure; return the wait before the next try."""
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * 2 ** (self.failures - 1))
        # Full jitter keeps many keys from retrying in lockstep.
        wait = max(at_least_s, random.uniform(ceiling / 2, ceiling))  # noqa: S311  # nosec B311
        self.not_before = (time.monotonic() if now is None else now) + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0
