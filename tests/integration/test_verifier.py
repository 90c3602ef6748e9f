"""MistralVerifier against the Mistral stand-in over real HTTP."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import secrets
import socket
import string
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import structlog

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.mistral.verifier import MistralVerifier
from rotator.config.mistral import MistralSettings
from rotator.demo.standin import MistralStandIn
from rotator.domain.model import Status
from rotator.logs import configure

MakeVerifier = Callable[..., MistralVerifier]


def new_key() -> str:
    """A fresh key shaped like Mistral's: 32 letters and digits."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


def settings(url: str, **overrides: Any) -> MistralSettings:
    values: dict[str, Any] = {
        "base_url": url,
        "timeout_seconds": 1,
        "retries": 2,
        "max_concurrency": 8,
        "max_requests_per_second": 200,
    }
    return MistralSettings(**(values | overrides))


@pytest.fixture
async def make_verifier() -> AsyncIterator[MakeVerifier]:
    made: list[MistralVerifier] = []

    def make(s: MistralSettings, metrics: Metrics | None = None, **kw: Any) -> MistralVerifier:
        kw.setdefault("backoff_base", 0.05)
        made.append(MistralVerifier(s, metrics, **kw))
        return made[-1]

    yield make
    for verifier in made:
        await verifier.aclose()


def keyed(mistral: MistralStandIn, behaviour: str) -> str:
    key = new_key()
    mistral.set_key(key, behaviour)
    return key


DEFINITE = [
    ("valid", Status.VALID, 200),
    ("invalid", Status.INVALID, 401),
    ("invalid-detail", Status.INVALID, 401),
    ("invalid-message", Status.INVALID, 401),
    ("invalid-empty", Status.INVALID, 401),
    ("billing", Status.BILLING_BLOCKED, 402),
    ("forbidden", Status.FORBIDDEN, 403),
    ("not-found", Status.MODEL_UNAVAILABLE, 404),
    ("no-model", Status.MODEL_UNAVAILABLE, 200),
    ("not-json", Status.UNKNOWN, 200),
    ("no-list", Status.UNKNOWN, 200),
    ("redirect", Status.UNKNOWN, 302),
]
TRANSIENT = [
    ("unavailable", Status.UNREACHABLE, 503),
    ("bad-gateway", Status.UNREACHABLE, 502),
    ("rate-limited:none", Status.RATE_LIMITED, 429),
    ("reset", Status.UNREACHABLE, None),
]


@pytest.mark.parametrize(("behaviour", "status", "http_status"), DEFINITE)
async def test_definite_answers_are_classified_and_never_retried(
    mistral: MistralStandIn,
    make_verifier: MakeVerifier,
    behaviour: str,
    status: Status,
    http_status: int,
) -> None:
    key = keyed(mistral, behaviour)
    result = await make_verifier(settings(mistral.url)).verify(key)
    assert (result.status, result.http_status) == (status, http_status)
    assert result.detail.startswith(f"HTTP {http_status}")
    assert mistral.count(key) == 1


@pytest.mark.parametrize(("behaviour", "status", "http_status"), TRANSIENT)
async def test_transient_answers_are_retried_then_reported(
    mistral: MistralStandIn,
    make_verifier: MakeVerifier,
    behaviour: str,
    status: Status,
    http_status: int | None,
) -> None:
    key = keyed(mistral, behaviour)
    result = await make_verifier(settings(mistral.url, retries=2)).verify(key)
    assert (result.status, result.http_status) == (status, http_status)
    assert mistral.count(key) == 3


async def test_a_key_mistral_does_not_know_is_invalid(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    result = await make_verifier(settings(mistral.url)).verify(new_key())
    assert result.status is Status.INVALID


async def test_a_key_that_cannot_be_sent_is_invalid_without_a_request(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    result = await make_verifier(settings(mistral.url)).verify(new_key() + "\n")
    assert result.status is Status.INVALID
    assert mistral.count() == 0


async def test_a_model_missing_from_the_list_is_model_unavailable(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    key = keyed(mistral, "valid")
    verifier = make_verifier(settings(mistral.url, model="mistral-medium-2"))
    result = await verifier.verify(key)
    assert result.status is Status.MODEL_UNAVAILABLE
    assert "mistral-medium-2" in result.detail


@pytest.mark.parametrize("model", ["mistral-large-2411", "mistral-large-latest"])
async def test_a_model_is_found_by_its_dated_id_or_its_alias(
    mistral: MistralStandIn, make_verifier: MakeVerifier, model: str
) -> None:
    # Mistral lists an alias both inside its model's card and as an entry of its own.
    key = keyed(mistral, "valid")
    result = await make_verifier(settings(mistral.url, model=model)).verify(key)
    assert result.status is Status.VALID


async def test_outage_then_recovery_ends_valid(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    key = keyed(mistral, "seq:unavailable,unavailable,valid")
    result = await make_verifier(settings(mistral.url, retries=2)).verify(key)
    assert result.status is Status.VALID
    assert mistral.count(key) == 3


async def test_retries_are_bounded(mistral: MistralStandIn, make_verifier: MakeVerifier) -> None:
    key = keyed(mistral, "seq:unavailable,unavailable,valid")
    result = await make_verifier(settings(mistral.url, retries=1)).verify(key)
    assert result.status is Status.UNREACHABLE
    assert mistral.count(key) == 2


async def test_backoff_grows_between_retries(
    mistral: MistralStandIn,
    make_verifier: MakeVerifier,
    captured_log: Callable[[], list[dict[str, Any]]],
) -> None:
    key = keyed(mistral, "unavailable")
    verifier = make_verifier(settings(mistral.url, retries=3), backoff_base=0.1, backoff_cap=0.15)
    result = await verifier.verify(key)
    assert result.status is Status.UNREACHABLE
    times = [r.at for r in mistral.requests]
    assert len(times) == 4
    # Equal jitter: the wait after attempt n lies between c/2 and c, c = min(cap, base * 2**n)
    # (0.1, then 0.15). Two arrivals at the stand-in are further apart by the answer to the
    # first and the sending of the second: at most the two requests' measured durations.
    took = [e["duration_ms"] / 1000 for e in captured_log() if e["event"] == "mistral.request"]
    for (first, second), ceiling, before, after in zip(
        itertools.pairwise(times), (0.1, 0.15, 0.15), took[:-1], took[1:], strict=True
    ):
        assert ceiling / 2 <= second - first <= ceiling + before + after + 0.05


async def test_short_retry_after_is_waited(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    key = keyed(mistral, "seq:rate-limited:1,valid")
    started = time.monotonic()
    result = await make_verifier(settings(mistral.url)).verify(key)
    assert result.status is Status.VALID
    assert time.monotonic() - started >= 0.95
    first, second = mistral.requests
    assert second.at - first.at >= 0.95


async def test_long_retry_after_is_reported_not_slept(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    key = keyed(mistral, "rate-limited:120")
    other = keyed(mistral, "valid")
    verifier = make_verifier(settings(mistral.url))
    started = time.monotonic()
    result = await verifier.verify(key)
    assert result.status is Status.RATE_LIMITED
    assert result.retry_after_s == pytest.approx(120, abs=1)
    # The organisation's budget is shared: other keys wait too, and say so at once.
    paused = await verifier.verify(other)
    assert time.monotonic() - started < 1
    assert paused.status is Status.RATE_LIMITED
    assert paused.retry_after_s is not None and paused.retry_after_s > 100
    assert (mistral.count(key), mistral.count(other)) == (1, 0)


async def test_an_absurd_retry_after_pauses_at_most_fifteen_minutes(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(settings(mistral.url))
    first = await verifier.verify(keyed(mistral, "rate-limited:86400"))
    assert first.retry_after_s == pytest.approx(86400, abs=1)  # what Mistral said
    paused = await verifier.verify(keyed(mistral, "valid"))
    assert paused.status is Status.RATE_LIMITED
    assert paused.retry_after_s is not None and 890 < paused.retry_after_s <= 900


async def test_a_429_pauses_every_key(mistral: MistralStandIn, make_verifier: MakeVerifier) -> None:
    limited = keyed(mistral, "seq:rate-limited:1,valid")
    other = keyed(mistral, "valid")
    verifier = make_verifier(settings(mistral.url))
    first = asyncio.create_task(verifier.verify(limited))
    while mistral.count(limited) == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the 429 has been read by now
    second = await verifier.verify(other)
    assert (await first).status is Status.VALID
    assert second.status is Status.VALID
    at_429 = mistral.requests[0].at
    other_at = next(r.at for r in mistral.requests if r.fingerprint == other[-4:])
    assert other_at - at_429 >= 0.95


async def test_slow_answer_beyond_timeout_is_unreachable(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    key = keyed(mistral, "slow:3")
    started = time.monotonic()
    result = await make_verifier(settings(mistral.url, timeout_seconds=0.5, retries=0)).verify(key)
    assert result.status is Status.UNREACHABLE
    assert time.monotonic() - started < 1.5


async def test_slow_answer_within_timeout_is_valid(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    key = keyed(mistral, "slow:0.2")
    result = await make_verifier(settings(mistral.url, timeout_seconds=1)).verify(key)
    assert result.status is Status.VALID
    assert result.duration_s >= 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused_is_unreachable(make_verifier: MakeVerifier) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await make_verifier(settings(url, retries=1)).verify(new_key())
    assert result.status is Status.UNREACHABLE
    assert "ConnectError" in result.detail


async def test_redirect_is_not_followed(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    with MistralStandIn() as elsewhere:
        key = new_key()
        elsewhere.set_key(key, "valid")
        mistral.set_key(key, f"redirect:{elsewhere.url}/v1/models")
        result = await make_verifier(settings(mistral.url)).verify(key)
        assert (result.status, result.http_status) == (Status.UNKNOWN, 302)
        assert elsewhere.count() == 0


async def test_request_rate_stays_within_the_limit(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    keys = [keyed(mistral, "valid") for _ in range(30)]
    verifier = make_verifier(settings(mistral.url, max_requests_per_second=10, max_concurrency=8))
    results = await asyncio.gather(*(verifier.verify(k) for k in keys))
    assert {r.status for r in results} == {Status.VALID}
    times = sorted(r.at for r in mistral.requests)
    assert len(times) == 30
    # The pacer allows no burst; +1 covers a window whose two ends both sit on a request,
    # and arrival jitter on a busy machine.
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 10 + 1
    assert times[-1] - times[0] >= 29 / 10 * 0.95


async def test_concurrency_is_bounded(mistral: MistralStandIn, make_verifier: MakeVerifier) -> None:
    keys = [keyed(mistral, "slow:0.3") for _ in range(9)]
    verifier = make_verifier(settings(mistral.url, max_concurrency=3, timeout_seconds=2))
    started = time.monotonic()
    results = await asyncio.gather(*(verifier.verify(k) for k in keys))
    assert {r.status for r in results} == {Status.VALID}
    assert mistral.max_in_flight == 3
    assert time.monotonic() - started >= 3 * 0.3


async def test_metrics_count_round_trips_and_errors(
    mistral: MistralStandIn, make_verifier: MakeVerifier
) -> None:
    metrics = Metrics()
    verifier = make_verifier(settings(mistral.url, retries=1), metrics)
    await verifier.verify(keyed(mistral, "valid"))
    await verifier.verify(keyed(mistral, "unavailable"))
    await verifier.verify(keyed(mistral, "invalid"))
    sample = metrics.registry.get_sample_value
    assert sample("mistral_key_verify_duration_seconds_count") == 4
    assert sample("rotator_errors_total", {"component": "mistral"}) == 2


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Logs as in production (JSON, DEBUG, the scrubber last), into a buffer to read back."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    configure("json", level="DEBUG")
    buffer = io.StringIO()
    # configure() writes to sys.stdout; pytest swaps that object between phases.
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(buffer)
    yield buffer
    root.handlers[:], root.level = saved[0], saved[1]
    structlog.configure(**saved[2])


async def test_the_key_never_appears_in_logs_or_results(
    mistral: MistralStandIn, make_verifier: MakeVerifier, json_logs: io.StringIO
) -> None:
    behaviours = ["valid", "invalid-message", "unavailable", "bad-gateway", "reset", "slow:2"]
    keys = [keyed(mistral, b) for b in behaviours]
    keys.append(new_key())  # unknown to Mistral
    verifier = make_verifier(settings(mistral.url, timeout_seconds=0.5, retries=1))
    results = [await verifier.verify(k) for k in keys]
    refused = make_verifier(settings(f"http://127.0.0.1:{free_port()}", retries=0))
    results.append(await refused.verify(keys[0]))
    out = json_logs.getvalue()
    assert out.count('"event": "mistral.request"') >= len(keys)
    assert keys[1][-4:] in out  # fingerprints are how keys show up
    texts = out + "".join(f"{r!r} {r.detail}" for r in results)
    for key in keys:
        assert key not in texts
        assert key[:12] not in texts
