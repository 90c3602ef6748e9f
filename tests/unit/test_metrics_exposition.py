"""``/metrics`` from the fast exposition: the same series as prometheus_client's rendering
of the registry, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rotator.adapters.metrics.exposition import metrics_app
from rotator.adapters.metrics.keyseries import KeyFamily
from rotator.adapters.metrics.registry import Metrics
from rotator.domain.model import Status
from tests.web.listener import Listener

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def samples(text: str) -> set[Sample]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")  # prometheus_client's extra, never alerted on
    }


def fleet(names: list[str]) -> Metrics:
    metrics = Metrics()
    for i, name in enumerate(names):
        metrics.add_key(name)
        metrics.set_status(name, Status.VALID if i % 2 else Status.BILLING_BLOCKED)
        metrics.expiry.labels(key=name).set(1_900_000_000.5)
        metrics.active_version.labels(key=name).set(i)
        metrics.rotations.labels(key=name, result="rotated").inc()
    metrics.errors.labels(component="vault").inc()
    metrics.verify_duration.observe(0.12)
    metrics.keys_managed.set(len(names))
    return metrics


def test_the_exposition_holds_exactly_the_registrys_series() -> None:
    metrics = fleet(["alpha", "beta", "gamma"])
    fast = samples(metrics.exposition().decode())
    assert fast == samples(generate_latest(metrics.registry).decode())
    assert ("mistral_key_rotations_total", (("key", "beta"), ("result", "rotated")), 1.0) in fast
    assert ("mistral_key_status", (("key", "alpha"), ("status", "billing_blocked")), 1.0) in fast
    assert ("rotator_errors_total", (("component", "vault"),), 1.0) in fast


def test_a_removed_key_leaves_no_series() -> None:
    metrics = fleet(["alpha", "beta"])
    metrics.remove_key("alpha")
    text = metrics.exposition().decode()
    assert 'key="alpha"' not in text and 'key="beta"' in text
    assert samples(text) == samples(generate_latest(metrics.registry).decode())


def test_new_keys_start_with_zero_counters_and_unknown_status() -> None:
    metrics = Metrics()
    metrics.add_key("fresh")
    sample = metrics.registry.get_sample_value
    assert sample("mistral_key_rotations_total", {"key": "fresh", "result": "rejected"}) == 0
    assert sample("mistral_key_status", {"key": "fresh", "status": "unknown"}) == 1
    assert sample("mistral_key_status", {"key": "fresh", "status": "valid"}) == 0


def test_a_key_has_one_status_at_1_and_the_seven_others_at_0_whatever_came_before() -> None:
    metrics = Metrics()
    metrics.add_key("k")
    moves = [Status.VALID, Status.UNKNOWN, Status.INVALID, Status.VALID, Status.VALID]
    for status in moves:
        metrics.set_status("k", status)
        found = {
            labels[1][1]: value
            for name, labels, value in samples(metrics.exposition().decode())
            if name == "mistral_key_status"
        }
        assert found == {s.value: (1.0 if s is status else 0.0) for s in Status}
        assert samples(metrics.exposition().decode()) == samples(
            generate_latest(metrics.registry).decode()
        )


def test_odd_label_values_and_numbers_stay_parseable() -> None:
    family = KeyFamily("odd", "Help with a \\ and a\nnewline.", ("key",), "gauge")
    family.labels(key='a"b\\c\nd').set(float("inf"))
    family.labels(key="nan").set(float("nan"))
    family.labels(key="small").set(1e-300)
    out: list[str] = []
    family.render(out)
    parsed = {
        s.labels["key"]: s.value
        for f in text_string_to_metric_families("".join(out))
        for s in f.samples
    }
    assert parsed['a"b\\c\nd'] == float("inf")
    assert parsed["nan"] != parsed["nan"]
    assert parsed["small"] == 1e-300


def test_counters_refuse_to_go_down_and_labels_are_checked() -> None:
    family = KeyFamily("c", "A counter.", ("key", "result"), "counter")
    with pytest.raises(ValueError, match="up"):
        family.labels(key="k", result="r").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        family.labels(key="k")
    with pytest.raises(KeyError):
        family.remove("k", "r")


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    metrics = fleet(["alpha", "beta"])
    with Listener(metrics_app(metrics.exposition, lambda: None)) as listener:
        yield metrics, f"{listener.url}/metrics"


def test_served_over_http_plain_and_gzipped(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert samples(plain.text) == samples(metrics.exposition().decode())
    with httpx.Client() as client:
        raw = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert raw.headers["content-encoding"] == "gzip"
        assert samples(raw.text) == samples(plain.text)
    assert httpx.post(url).status_code == 405


def test_compact_mode_has_one_status_series_a_key_with_a_fixed_code() -> None:
    metrics = Metrics(compact=True)
    metrics.add_key("alpha")
    sample = metrics.registry.get_sample_value
    assert sample("mistral_key_status_code", {"key": "alpha"}) == 7  # unknown
    metrics.set_status("alpha", Status.BILLING_BLOCKED)
    assert sample("mistral_key_status_code", {"key": "alpha"}) == 2
    assert sample("mistral_key_valid", {"key": "alpha"}) == 0
    text = metrics.exposition().decode()
    assert "mistral_key_status{" not in text
    assert samples(text) == samples(generate_latest(metrics.registry).decode())


def test_compact_mode_creates_only_the_alerted_rotation_counter_up_front() -> None:
    metrics = Metrics(compact=True)
    metrics.add_key("alpha")
    sample = metrics.registry.get_sample_value
    assert sample("mistral_key_rotations_total", {"key": "alpha", "result": "rejected"}) == 0
    assert sample("mistral_key_rotations_total", {"key": "alpha", "result": "rotated"}) is None
    metrics.rotations.labels(key="alpha", result="rotated").inc()
    assert sample("mistral_key_rotations_total", {"key": "alpha", "result": "rotated"}) == 1
    metrics.remove_key("alpha")
    assert 'key="alpha"' not in metrics.exposition().decode()


def test_compact_mode_trims_the_series_of_a_new_key() -> None:
    def per_key(metrics: Metrics) -> int:
        metrics.add_key("alpha")
        return sum(1 for s in samples(metrics.exposition().decode()) if ("key", "alpha") in s[1])

    # A new key: 8 status series, 4 rotation counters, the secret error flag; compact: the
    # status code, the rejected counter, the flag. Other gauges come as the key is checked.
    assert per_key(Metrics()) == 13
    assert per_key(Metrics(compact=True)) == 3
