"""Every series the alerts, the dashboard and the deployment files use is one the daemon's code
exports: renaming a metric in rotator/adapters/metrics/registry.py fails here until they
follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.files import (
    ALERTS,
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    KUBERNETES,
    exported_series,
    metric_names_in,
)

FILES = [
    ALERTS,
    DASHBOARD,
    COMPOSE,
    DEPLOY / "docker-compose.tls.yml",
    *sorted(p for p in (DEPLOY / "compose").rglob("*") if p.is_file()),
    *sorted(KUBERNETES.glob("*.yaml")),
    *sorted((DEPLOY / "kubernetes-tls").glob("*.yaml")),
]
EXPORTED = exported_series()


def test_the_code_exports_what_the_contract_names() -> None:
    """The reference set itself: spot checks of counter, histogram and gauge naming."""
    assert {
        "mistral_key_rotations_total",
        "rotator_errors_total",
        "mistral_key_verify_duration_seconds_bucket",
        "mistral_key_expiry_timestamp_seconds",
        "mistral_key_secret_error",
    } <= EXPORTED
    assert "mistral_key_rotations" not in EXPORTED


def _queries(path: Path) -> str:
    """What Prometheus is asked: for the dashboard its queries, not its prose."""
    text = path.read_text(encoding="utf-8")
    if path != DASHBOARD:
        return text
    return "\n".join(re.findall(r'"(?:expr|definition)": "((?:[^"\\]|\\.)*)"', text))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_series_used_is_exported(path: Path) -> None:
    used = metric_names_in(_queries(path))
    assert used <= EXPORTED, (
        f"not exported by rotator.adapters.metrics.registry: {sorted(used - EXPORTED)}"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (ALERTS, {"mistral_key_expiry_timestamp_seconds", "mistral_key_rotations_total"}),
        (DASHBOARD, {"mistral_key_verify_duration_seconds_bucket", "rotator_vault_up"}),
        (KUBERNETES / "prometheusrule.yaml", {"mistral_key_valid", "rotator_errors_total"}),
    ],
)
def test_the_scan_finds_names(path: Path, expected: set[str]) -> None:
    """Guards the test above against a pattern that silently matches nothing."""
    assert expected <= metric_names_in(_queries(path))


def test_the_pattern_ignores_resource_names() -> None:
    assert metric_names_in('name: mistral-key-rotator, job="mistral-key-rotator"') == set()
    assert metric_names_in("rate(rotator_errors_total[5m])") == {"rotator_errors_total"}
