"""The one retry policy: exponential backoff with equal jitter; and a tracker per failing thing.

Used by the key service (per key, and for Vault), the sink deliveries, Mistral's two clients,
minting, reminders, and the intake's check-and-set writes.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

_MAX_DOUBLINGS = 64
"""Past this the ceiling is the cap anyway; it keeps ``2**n`` a finite float."""


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff with *equal* jitter: retry ``n`` (0, 1, ...) waits a time drawn
    from ``[c/2, c]``, ``c = min(cap_s, base_s * 2**n)``.

    The fixed half makes the waits grow for sure, so a failing thing is asked less and less
    often; the random half keeps many keys from retrying in lockstep.
    """

    base_s: float
    cap_s: float

    def ceiling(self, retry: int) -> float:
        return min(self.cap_s, self.base_s * 2.0 ** min(retry, _MAX_DOUBLINGS))

    def wait(self, retry: int) -> float:
        ceiling = self.ceiling(retry)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy  # nosec B311


CAS_RETRY = BackoffPolicy(0.05, 0.4)
"""After a check-and-set write of a key's state lost to another writer (a rotation, another
instance): read again soon; the jitter keeps two writers from colliding again."""


@dataclass(slots=True)
class Backoff:
    """Failures of one thing (a key, Vault) so far, and when it may be tried again."""

    policy: BackoffPolicy
    failures: int = 0
    not_before: float = 0.0

    def ready(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.not_before

    def failed(self, at_least_s: float = 0.0, now: float | None = None) -> float:
        """Record a failure; return the wait before the next try."""
        self.failures += 1
        wait = max(at_least_s, self.policy.wait(self.failures - 1))
        self.not_before = (time.monotonic() if now is None else now) + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0
