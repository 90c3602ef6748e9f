"""Asks Mistral whether a key works (``GET /v1/models``) and says what the answer means.

:func:`classify` is the decision, pure; :class:`MistralVerifier` does the I/O. Every key of
an organisation draws from one rate-limit budget, so the verifier keeps fleet-wide manners:
a bound on concurrent requests, a bound on requests per second, and a 429's ``Retry-After``
pauses all of its requests, not just the one key's.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Self

import httpx

from rotator import __version__
from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.tls import client_tls
from rotator.config.mistral import MistralSettings
from rotator.core.backoff import BackoffPolicy
from rotator.domain.model import Status, Verification, fingerprint
from rotator.logs import REDACTOR, get_logger

log = get_logger(__name__)

POOL_SIZE = 4
"""Connections a pool: see :class:`MistralVerifier`."""
MAX_BODY_BYTES = 1 << 20
"""A model list is tens of kilobytes; anything far larger is not Mistral."""
DETAIL_CHARS = 200
_USER_AGENT = f"mistral-key-rotator/{__version__}"
MAX_PAUSE_S = 900.0
"""A Retry-After of a day (a confused proxy) must not silence verification for a day."""
_BY_CODE = {
    401: Status.INVALID,
    402: Status.BILLING_BLOCKED,
    403: Status.FORBIDDEN,
    404: Status.MODEL_UNAVAILABLE,
    429: Status.RATE_LIMITED,
}
_RETRYABLE = frozenset({Status.RATE_LIMITED, Status.UNREACHABLE})
# Long runs of letters and digits look like keys (Mistral's are 32); request ids with
# dashes survive. Error bodies are third-party text: never trust them to be key-free.
_KEYLIKE = re.compile(r"[A-Za-z0-9]{20,}")
_TAG = re.compile(r"<[^>]*>")


# --- Deciding -------------------------------------------------------------------------------


def classify(status_code: int, body: bytes, model: str) -> tuple[Status, str]:
    """What an answer to ``GET /v1/models`` says about the key, and a key-free detail."""
    if status_code == 200:
        return _classify_list(body, model)
    if 300 <= status_code < 400:
        return Status.UNKNOWN, f"HTTP {status_code}: redirect not followed"
    status = _BY_CODE.get(status_code)
    if status is None:
        status = Status.UNREACHABLE if 500 <= status_code < 600 else Status.UNKNOWN
    return status, f"HTTP {status_code}: {summarize(body)}"


def _classify_list(body: bytes, model: str) -> tuple[Status, str]:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return Status.UNKNOWN, "HTTP 200: answer is not JSON"
    models = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(models, list):
        return Status.UNKNOWN, "HTTP 200: answer has no model list"
    ids = {m.get("id") for m in models if isinstance(m, dict)}
    if model in ids:
        return Status.VALID, f"HTTP 200: {model} available"
    return Status.MODEL_UNAVAILABLE, f"HTTP 200: {model} not among the key's {len(ids)} models"


def summarize(body: bytes) -> str:
    """A short, single-line, key-free account of an error body for the log."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed, text = None, _TAG.sub(" ", text)
    if isinstance(parsed, dict):
        for name in ("message", "detail", "error"):
            if isinstance(parsed.get(name), str) and parsed[name].strip():
                text = parsed[name]
                break
    text = REDACTOR.scrub(_KEYLIKE.sub("[REDACTED]", " ".join(text.split())))
    if len(text) > DETAIL_CHARS:
        text = text[:DETAIL_CHARS] + "..."
    return text or "(empty body)"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent/bad."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def sendable(api_key: str) -> bool:
    """Whether the key can go into a header at all (no whitespace, control or non-ASCII)."""
    return bool(api_key) and api_key.isascii() and api_key.isprintable() and " " not in api_key


# --- What both Mistral clients share (the Admin API client imports these) -------------------


class Closing:
    """``async with`` closes the client's connections on the way out (:meth:`aclose`)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        raise NotImplementedError


# --- Pacing ---------------------------------------------------------------------------------


class RequestPacer:
    """Starts at most ``rate`` requests per second: each waits until 1/rate after the last.

    No burst: any window of one second holds at most ``rate`` starts, plus one where a
    window's two ends both fall exactly on a start.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._last = -math.inf
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:  # FIFO, so callers start in the order they asked
            delay = self._last + self.interval - self._clock()
            if delay > 0:
                await self._sleep(delay)
            self._last = self._clock()


# --- Talking --------------------------------------------------------------------------------


class MistralVerifier(Closing):
    """The :class:`rotator.ports.Verifier` for Mistral's API. Close it with :meth:`aclose`."""

    def __init__(
        self,
        settings: MistralSettings,
        metrics: Metrics | None = None,
        *,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        max_retry_wait: float = 30.0,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._url = settings.base_url.rstrip("/") + "/v1/models"
        self._backoff = BackoffPolicy(backoff_base, backoff_cap)
        self._max_retry_wait = max_retry_wait
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._pacer = RequestPacer(settings.max_requests_per_second)
        self._paused_until = 0.0
        # Several small connection pools rather than one large one: httpcore checks every
        # pooled connection (a system call each) whenever a request starts or ends, which at
        # 32 connections was most of a sweep's CPU. Each request takes the least busy pool.
        shards = math.ceil(settings.max_concurrency / POOL_SIZE)
        n = math.ceil(settings.max_concurrency / shards)
        tls = client_tls(settings.ca_cert, where="mistral")
        if tls is True:  # one context for every pool: loading the CA bundle takes a while
            tls = httpx.create_ssl_context()
        self._clients = [
            httpx.AsyncClient(
                timeout=settings.timeout_seconds,
                verify=tls,
                # A redirect would carry the key to whatever host the Location names.
                follow_redirects=False,
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                headers={
                    "Accept": "application/json",
                    "User-Agent": _USER_AGENT,
                },
            )
            for _ in range(shards)
        ]
        self._busy = [0] * shards

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def verify(self, api_key: str) -> Verification:
        """Ask Mistral about the key, retrying transient answers. Never raises for I/O."""
        REDACTOR.add(api_key)
        started = time.monotonic()
        if not sendable(api_key):
            detail = "key is empty or holds whitespace, control or non-ASCII characters"
            return Verification(Status.INVALID, detail=detail)
        attempt = 0
        while True:
            outcome = await self._attempt(api_key, attempt)
            wait = self._retry_wait(outcome, attempt)
            if wait is None:
                return replace(outcome, duration_s=time.monotonic() - started)
            await asyncio.sleep(wait)
            attempt += 1

    def _retry_wait(self, outcome: Verification, attempt: int) -> float | None:
        if outcome.status not in _RETRYABLE or attempt >= self._settings.retries:
            return None
        if outcome.retry_after_s is not None:
            return outcome.retry_after_s if outcome.retry_after_s <= self._max_retry_wait else None
        return self._backoff.wait(attempt)

    async def _attempt(self, api_key: str, attempt: int) -> Verification:
        async with self._slots:
            paused = await self._wait_turn()
            if paused is not None:
                self._log(api_key, attempt, paused)
                return paused
            started = time.monotonic()
            outcome = await self._send(api_key)
            took = time.monotonic() - started
            self._note_pause(outcome, attempt)
        outcome = replace(outcome, duration_s=took)
        self._record(outcome)
        self._log(api_key, attempt, outcome)
        return outcome

    async def _wait_turn(self) -> Verification | None:
        """Wait out a shared pause and the pacer; a pause too long to wait is the answer."""
        while True:
            remaining = self._paused_until - time.monotonic()
            if remaining > self._max_retry_wait:
                detail = f"all requests paused {remaining:.0f}s more after a 429 from Mistral"
                return Verification(Status.RATE_LIMITED, detail=detail, retry_after_s=remaining)
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            await self._pacer.wait()
            if self._paused_until <= time.monotonic():
                return None

    def _note_pause(self, outcome: Verification, attempt: int) -> None:
        if outcome.http_status != 429:
            return
        wait = outcome.retry_after_s
        if wait is None:
            wait = self._backoff.wait(attempt)
        until = time.monotonic() + min(wait, MAX_PAUSE_S)
        self._paused_until = max(self._paused_until, until)

    async def _send(self, api_key: str) -> Verification:
        headers = {"Authorization": f"Bearer {api_key}"}
        timeout = self._settings.timeout_seconds
        # Within max_concurrency, the least busy pool never holds more than its size.
        shard = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[shard] += 1
        try:
            # httpx times each read separately; this bounds the whole exchange.
            async with (
                asyncio.timeout(timeout),
                self._clients[shard].stream("GET", self._url, headers=headers) as response,
            ):
                body = await _read_capped(response)
                code, retry_after = response.status_code, response.headers.get("Retry-After")
        except (TimeoutError, httpx.TimeoutException):
            return Verification(Status.UNREACHABLE, detail=f"no answer within {timeout:g}s")
        except (httpx.TransportError, OSError) as exc:
            return Verification(Status.UNREACHABLE, detail=_transport_detail(exc, api_key))
        except httpx.HTTPError as exc:
            return Verification(Status.UNKNOWN, detail=_transport_detail(exc, api_key))
        finally:
            self._busy[shard] -= 1
        if body is None:
            detail = f"HTTP {code}: answer larger than {MAX_BODY_BYTES} bytes"
            return Verification(Status.UNKNOWN, http_status=code, detail=detail)
        status, detail = classify(code, body, self._settings.model)
        waits = status in _RETRYABLE
        return Verification(
            status,
            http_status=code,
            detail=detail.replace(api_key, "[REDACTED]"),
            retry_after_s=parse_retry_after(retry_after) if waits else None,
        )

    def _record(self, outcome: Verification) -> None:
        if self._metrics is None:
            return
        self._metrics.verify_duration.observe(outcome.duration_s)
        if outcome.status is Status.UNREACHABLE:
            self._metrics.errors.labels(component="mistral").inc()

    def _log(self, api_key: str, attempt: int, outcome: Verification) -> None:
        emit = log.info if outcome.status in _RETRYABLE else log.debug
        emit(
            "mistral.request",
            fingerprint=fingerprint(api_key),
            attempt=attempt + 1,
            status=outcome.status.value,
            http_status=outcome.http_status,
            duration_ms=round(outcome.duration_s * 1000),
            detail=outcome.detail,
        )


async def _read_capped(response: httpx.Response) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _transport_detail(exc: Exception, api_key: str) -> str:
    """The exception's kind and message, with no header value (httpx may hold the request)."""
    text = " ".join(str(exc).split()).replace(api_key, "[REDACTED]")
    text = REDACTOR.scrub(text)[:DETAIL_CHARS]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
