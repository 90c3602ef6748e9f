"""``/metrics`` at N keys, rendered in this process: size and time of one exposition.

Every per-key series is set as in a daemon that has verified and rotated each key, so the
exposition is as large as it gets; ``Metrics.exposition`` is what the daemon's metrics
endpoint renders per scrape (before compression).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from rotator.adapters.metrics.registry import Metrics
from rotator.domain.model import Status


@dataclass(frozen=True)
class Exposition:
    keys: int
    compact: bool
    bytes: int
    lines: int
    render_ms: float
    """Median of ``repeat`` renders."""


def populated(keys: int, *, compact: bool = False) -> Metrics:
    metrics = Metrics(compact=compact)
    now = time.time()
    for i in range(keys):
        name = f"tenant-{i:05d}"
        metrics.add_key(name)
        metrics.set_status(name, Status.VALID)
        for gauge in (
            metrics.expiry,
            metrics.last_check,
            metrics.last_rotation,
        ):
            gauge.labels(key=name).set(now)
        for gauge in (metrics.active_version, metrics.latest_version):
            gauge.labels(key=name).set(1)
        for gauge in (metrics.expiry_assumed, metrics.previous_still_valid):
            gauge.labels(key=name).set(0)
        metrics.rotations.labels(key=name, result="rotated").inc()
    metrics.keys_managed.set(keys)
    return metrics


def measure(keys: int, *, compact: bool = False, repeat: int = 5) -> Exposition:
    metrics = populated(keys, compact=compact)
    times, body = [], b""
    for _ in range(repeat):
        started = time.perf_counter()
        body = metrics.exposition()
        times.append((time.perf_counter() - started) * 1000)
    return Exposition(keys, compact, len(body), body.count(b"\n"), statistics.median(times))
