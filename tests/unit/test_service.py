"""KeyService over in-memory ports: what the metrics say, and one key's trouble stays its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.config import parse_settings
from rotator.core.backoff import Backoff, BackoffPolicy
from rotator.core.rotation import ManagedKey, Rotator
from rotator.core.service import KeyService
from rotator.domain.model import Status
from tests.unit.fakes import FakeSink, FakeStore, FakeVerifier

GOOD, BAD = "good-key-0000aaaa", "bad-key-1111bbbb"


def _service() -> tuple[KeyService, FakeStore, FakeVerifier, Metrics]:
    store, verifier, metrics = FakeStore(), FakeVerifier(), Metrics()
    settings = parse_settings({"keys": [{"name": "x", "vault_path": "p"}]})
    now = datetime(2026, 6, 1, tzinfo=UTC)
    service = KeyService(
        Rotator(
            store=store,
            verifier=verifier,
            settings=settings,
            metrics=metrics,
            owner="me",
            clock=lambda: now,
        )
    )
    return service, store, verifier, metrics


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_broken_secret_is_reported_and_the_other_key_carries_on() -> None:
    service, store, verifier, metrics = _service()
    store.put("mistral/good", GOOD, expires_at="2026-12-01")
    store.secrets["mistral/broken"] = {1: {"api_key": "short-but-ok-12345", "expires_at": "soon"}}
    verifier.set(GOOD, Status.VALID)
    verifier.set("short-but-ok-12345", Status.VALID)
    for name in ("good", "broken", "missing"):
        service.add(ManagedKey(name, f"mistral/{name}", (FakeSink(name),)))
        await service.poll(name)
    assert _sample(metrics, "mistral_key_valid", key="good") == 1
    assert _sample(metrics, "mistral_key_secret_error", key="good") == 0
    assert _sample(metrics, "mistral_key_secret_error", key="missing") == 1
    assert _sample(metrics, "mistral_key_secret_error", key="broken") == 1
    assert "expires_at" in (service.view("broken").problem or "")
    assert _sample(metrics, "mistral_key_rotations_total", key="broken", result="rejected") == 1
    assert service.view("missing").problem
    assert service.view("good").active_version == 1
    assert _sample(metrics, "rotator_keys_managed") == 3


@pytest.mark.parametrize("transient", [Status.RATE_LIMITED, Status.UNREACHABLE, Status.UNKNOWN])
async def test_transient_answer_changes_status_but_never_validity(transient: Status) -> None:
    service, store, verifier, metrics = _service()
    store.put("p", GOOD)
    verifier.set(GOOD, Status.VALID)
    service.add(ManagedKey("x", "p"))
    await service.poll("x")
    verifier.set(GOOD, transient)
    await service.verify("x")
    assert _sample(metrics, "mistral_key_status", key="x", status=transient.value) == 1
    assert _sample(metrics, "mistral_key_status", key="x", status="valid") == 0
    assert _sample(metrics, "mistral_key_valid", key="x") == 1
    verifier.set(GOOD, Status.INVALID)
    await service.verify("x")
    assert _sample(metrics, "mistral_key_valid", key="x") == 0


async def test_expiry_metrics_declared_and_assumed() -> None:
    service, store, verifier, metrics = _service()
    store.put("declared", GOOD, expires_at="2026-06-04T00:00:00Z")
    store.put("assumed", BAD)
    verifier.set(GOOD, Status.VALID)
    verifier.set(BAD, Status.VALID)
    for name in ("declared", "assumed"):
        service.add(ManagedKey(name, name))
        await service.poll(name)
    declared = datetime(2026, 6, 4, tzinfo=UTC).timestamp()
    assert _sample(metrics, "mistral_key_expiry_timestamp_seconds", key="declared") == declared
    assert _sample(metrics, "mistral_key_expiry_assumed", key="declared") == 0
    assert _sample(metrics, "mistral_key_expiry_assumed", key="assumed") == 1
    created = datetime(2026, 1, 1, tzinfo=UTC)  # the fake store's creation time
    assumed = (created + timedelta(days=365)).timestamp()
    assert _sample(metrics, "mistral_key_expiry_timestamp_seconds", key="assumed") == assumed


async def test_removed_key_loses_its_series() -> None:
    service, store, verifier, metrics = _service()
    store.put("p", GOOD)
    verifier.set(GOOD, Status.VALID)
    service.add(ManagedKey("x", "p"))
    await service.poll("x")
    service.remove("x")
    assert _sample(metrics, "mistral_key_valid", key="x") is None
    assert _sample(metrics, "mistral_key_status", key="x", status="valid") is None
    assert _sample(metrics, "rotator_keys_managed") == 0


def test_the_backoff_policy_is_exponential_with_equal_jitter() -> None:
    policy = BackoffPolicy(base_s=1.0, cap_s=5.0)
    assert [policy.ceiling(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.ceiling(10_000) == 5.0
    for n in range(5):
        waits = [policy.wait(n) for _ in range(200)]
        assert all(policy.ceiling(n) / 2 <= w <= policy.ceiling(n) for w in waits)
    tracker = Backoff(policy)
    assert 0.5 <= tracker.failed(now=0.0) <= 1.0
    assert 1.0 <= tracker.failed(now=0.0) <= 2.0
    assert tracker.failed(at_least_s=30.0, now=0.0) == 30.0
    assert not tracker.ready(now=29.0)
    tracker.succeeded()
    assert tracker.ready(now=0.0)
