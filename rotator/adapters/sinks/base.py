"""The shared base of every sink: timing, logging, metrics and error wrapping around ``_write``.

A sink subclass only says how to write (``_write``), how to tell whether the integration
already holds a key (``holds``) and how to name itself (``id``). ``deliver`` does the rest.
"""

from __future__ import annotations

import abc
import time

import httpx

from rotator.adapters.metrics.registry import Metrics
from rotator.domain.model import Delivery
from rotator.errors import SinkError
from rotator.logs import REDACTOR, get_logger

log = get_logger(__name__)


class BaseSink(abc.ABC):
    """One place a key is delivered to. Implements the ``rotator.ports.Sink`` protocol."""

    def __init__(self, *, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        """Counts failures as ``rotator_errors_total{component="sink"}`` when set."""

    @property
    @abc.abstractmethod
    def id(self) -> str:
        """A stable, secret-free description, e.g. ``file:/run/mistral/api-key``."""

    @abc.abstractmethod
    async def _write(self, delivery: Delivery) -> None:
        """Put the key in place and reload the integration.

        Raises SinkError for what it foresees; OSError and httpx errors are wrapped by
        ``deliver``. No message may contain the key.
        """

    @abc.abstractmethod
    async def holds(self, delivery: Delivery) -> bool | None:
        """Whether the integration already has exactly this delivery; None if it cannot tell."""

    async def aclose(self) -> None:
        """Release connections and the like; the sink is not used afterwards."""
        return None

    async def deliver(self, delivery: Delivery) -> None:
        """Write the key (and reload). Raises SinkError with a secret-free message.

        The message says what went wrong, not which sink: callers name the sink by ``id``.
        """
        REDACTOR.add(delivery.api_key)
        started = time.monotonic()
        wrapped: SinkError | None = None
        try:
            await self._write(delivery)
        except SinkError as exc:
            self._failed(delivery, str(exc))
            raise
        except (OSError, httpx.HTTPError) as exc:
            wrapped = SinkError(error_text(exc, delivery.api_key))
        except Exception as exc:
            # A bug, not an outcome: counted and logged, then left to propagate as is.
            self._failed(delivery, f"unexpected {type(exc).__name__}")
            raise
        if wrapped is not None:
            self._failed(delivery, str(wrapped))
            # Raised outside the handler so that no cause or context is attached: an httpx
            # error carries the request, and so the key.
            raise wrapped
        log.info(
            "sink.delivered",
            key=delivery.key,
            version=delivery.version,
            fingerprint=delivery.fingerprint,
            sink=self.id,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _failed(self, delivery: Delivery, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(component="sink").inc()
        log.warning(
            "sink.failed",
            key=delivery.key,
            version=delivery.version,
            fingerprint=delivery.fingerprint,
            sink=self.id,
            reason=scrub(reason, delivery.api_key),
        )


def error_text(exc: BaseException, api_key: str) -> str:
    """A one-line, secret-free account of ``exc``."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}", api_key)


def scrub(text: str, api_key: str) -> str:
    """Take ``api_key`` (even one too short for the log scrubber) and known secrets out."""
    if api_key:
        text = text.replace(api_key, "[REDACTED]")
    return REDACTOR.scrub(text)


class ReloadAction(abc.ABC):
    """Tells the integration to pick up a freshly written key (see ``sinks.reload``)."""

    @abc.abstractmethod
    async def run(self, delivery: Delivery) -> None:
        """Reload the integration. Raises SinkError with a secret-free message."""

    async def aclose(self) -> None:
        return None
