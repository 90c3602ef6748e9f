"""What BaseSink.deliver adds around a sink's ``_write``: logs, metrics, error wrapping."""

from __future__ import annotations

import httpx
import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.sinks.base import BaseSink
from rotator.domain.model import Delivery
from rotator.errors import SinkError
from tests.sink_helpers import V1, capture, error_texts


class ScriptedSink(BaseSink):
    """Raises ``error`` from ``_write`` when set, else records the delivery."""

    def __init__(self, error: BaseException | None = None, metrics: Metrics | None = None):
        super().__init__(metrics=metrics)
        self.error = error
        self.written: list[Delivery] = []

    @property
    def id(self) -> str:
        return "scripted:test"

    async def _write(self, delivery: Delivery) -> None:
        if self.error is not None:
            raise self.error
        self.written.append(delivery)

    async def holds(self, delivery: Delivery) -> bool | None:
        return delivery in self.written


def sink_errors(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("rotator_errors_total", {"component": "sink"})
    return value or 0.0


async def test_success_logs_delivered_with_fingerprint(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    sink = ScriptedSink(metrics=metrics)
    with capture(caplog) as logs:
        await sink.deliver(V1)
    (event,) = logs.named("sink.delivered")
    assert event["key"] == V1.key and event["version"] == 1
    assert event["fingerprint"] == V1.api_key[-4:]
    assert event["sink"] == "scripted:test"
    assert event["duration_ms"] >= 0
    assert not logs.mentions(V1.api_key)
    assert sink_errors(metrics) == 0


async def test_os_error_becomes_a_counted_sink_error(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    sink = ScriptedSink(PermissionError(13, "Permission denied", "/run/x"), metrics)
    with capture(caplog) as logs, pytest.raises(SinkError) as caught:
        await sink.deliver(V1)
    assert str(caught.value) == "Permission denied (/run/x)"
    assert sink_errors(metrics) == 1
    (event,) = logs.named("sink.failed")
    assert event["reason"] == "Permission denied (/run/x)"
    assert event["sink"] == "scripted:test"


async def test_http_error_carrying_the_key_is_wrapped_without_it() -> None:
    request = httpx.Request("PUT", "https://portal/k", content=V1.api_key.encode())
    error = httpx.RemoteProtocolError(f"peer said {V1.api_key}", request=request)
    with pytest.raises(SinkError) as caught:
        await ScriptedSink(error).deliver(V1)
    assert V1.api_key not in error_texts(caught.value)
    assert caught.value.__cause__ is None and "RemoteProtocolError" in str(caught.value)


async def test_sink_error_passes_through_unchanged() -> None:
    original = SinkError("answered HTTP 503")
    metrics = Metrics()
    with pytest.raises(SinkError) as caught:
        await ScriptedSink(original, metrics).deliver(V1)
    assert caught.value is original
    assert sink_errors(metrics) == 1


async def test_a_bug_is_counted_and_propagates_as_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    with capture(caplog) as logs, pytest.raises(KeyError):
        await ScriptedSink(KeyError("x"), metrics).deliver(V1)
    assert sink_errors(metrics) == 1
    assert logs.named("sink.failed")[0]["reason"] == "unexpected KeyError"


async def test_aclose_is_a_no_op_by_default() -> None:
    sink = ScriptedSink()
    await sink.aclose()
    await sink.deliver(V1)
    assert await sink.holds(V1) is True
