"""Delivering one version to a key's sinks: every sink, or none (the previous key put back)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from rotator.domain.model import Delivery
from rotator.errors import SinkError
from rotator.logs import get_logger
from rotator.ports import Sink

log = get_logger(__name__)

LEASE_LOST = "the lease was lost to another instance"


@dataclass(frozen=True)
class Retry:
    attempts: int
    first_wait_s: float
    sleep: Callable[[float], Awaitable[None]]


async def deliver_retrying(sink: Sink, delivery: Delivery, retry: Retry) -> str:
    """'' when the sink took it, else the last error (secret-free)."""
    wait, error = retry.first_wait_s, ""
    for attempt in range(retry.attempts):
        if attempt:
            await retry.sleep(wait)
            wait *= 2
        try:
            await sink.deliver(delivery)
            return ""
        except SinkError as exc:
            error = str(exc)
    return error or "failed"


async def deliver_all(
    sinks: Sequence[Sink],
    delivery: Delivery,
    *,
    previous: Delivery | None,
    retry: Retry,
    keep_lease: Callable[[], Awaitable[bool]],
) -> str:
    """Deliver to every sink in order; on a failure put ``previous`` back. '' = all took it."""
    taken: list[Sink] = []
    for sink in sinks:
        if not await keep_lease():
            return LEASE_LOST  # the other instance owns the sinks now: touch nothing more
        error = await deliver_retrying(sink, delivery, retry)
        # A failing sink may have half-taken it (an HTTP peer that timed out): restore it too.
        taken.append(sink)
        if error:
            if previous is not None:
                for s in taken:
                    if await deliver_retrying(s, previous, retry):
                        log.error(
                            "sink.restore_failed",
                            key=delivery.key,
                            sink=s.id,
                            version=previous.version,
                        )
            return f"{sink.id}: {error}"
    return ""
