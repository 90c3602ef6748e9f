"""Delivering one version to a key's sinks: every sink, or none (the previous key put back)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from rotator.core.backoff import BackoffPolicy
from rotator.domain.model import Delivery
from rotator.errors import SinkError, VaultError
from rotator.logs import REDACTOR, get_logger
from rotator.ports import Sink

log = get_logger(__name__)

LEASE_LOST = "the lease was lost to another instance"


@dataclass(frozen=True)
class Retry:
    attempts: int
    policy: BackoffPolicy
    sleep: Callable[[float], Awaitable[None]]


async def deliver_retrying(sink: Sink, delivery: Delivery, retry: Retry) -> str:
    """'' when the sink took it, else the last error (secret-free)."""
    error = ""
    for attempt in range(retry.attempts):
        if attempt:
            await retry.sleep(retry.policy.wait(attempt - 1))
        try:
            await sink.deliver(delivery)
            return ""
        except SinkError as exc:
            error = str(exc)
        except Exception as exc:
            # A bug in a sink (a TypeError, a UnicodeEncodeError) is still a failed delivery:
            # letting it escape would skip the put-back and leave the lease pending.
            error = unexpected(exc, delivery.api_key)
            log.error("sink.unexpected_error", key=delivery.key, sink=sink.id, reason=error)
    return error or "failed"


def unexpected(exc: Exception, api_key: str) -> str:
    """A secret-free one-line account of an exception nobody foresaw."""
    text = str(exc).replace(api_key, "[REDACTED]") if api_key else str(exc)
    text = " ".join(REDACTOR.scrub(text).split())[:200]
    return f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")


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
        try:
            kept = await keep_lease()
        except VaultError as exc:
            # Vault cannot say whether the lease is still ours: undo what was done so far,
            # as for a failing sink, rather than leave the sinks split.
            await _put_back(taken, delivery, previous, retry)
            return f"vault: {exc} (keeping the lease)"
        if not kept:
            return LEASE_LOST  # the other instance owns the sinks now: touch nothing more
        error = await deliver_retrying(sink, delivery, retry)
        # A failing sink may have half-taken it (an HTTP peer that timed out): restore it too.
        taken.append(sink)
        if error:
            await _put_back(taken, delivery, previous, retry)
            return f"{sink.id}: {error}"
    return ""


async def _put_back(
    taken: Sequence[Sink], delivery: Delivery, previous: Delivery | None, retry: Retry
) -> None:
    if previous is None:
        return
    for s in taken:
        if await deliver_retrying(s, previous, retry):
            log.error("sink.restore_failed", key=delivery.key, sink=s.id, version=previous.version)
