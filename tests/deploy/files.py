"""The deployment artefacts under test, and what the daemon's code actually exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from rotator.adapters.metrics.admin import AdminMetrics
from rotator.adapters.metrics.registry import Metrics
from rotator.intake.metrics import IntakeMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARD = DEPLOY / "grafana" / "mistral-keys.json"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
RUNBOOK = ROOT / "docs" / "runbook.md"
DOCKERFILE = ROOT / "Dockerfile"
JOB = "mistral-key-rotator"
"""The scrape job name the alert RotatorDown expects."""

# Our series all start with one of these prefixes; `up` comes from Prometheus itself.
METRIC_NAME = re.compile(r"(?<![\w-])(?:mistral_key|rotator)_[a-z0-9_]*[a-z0-9](?![\w-])")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def _series_of(family: Metric) -> set[str]:
    """The sample names Prometheus stores for one metric family of prometheus_client."""
    name = family.name
    if family.type == "counter":
        return {f"{name}_total", f"{name}_created"}
    if family.type == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if family.type == "gauge":
        return {name}
    raise AssertionError(f"metric type {family.type} of {name} not handled by this test")


def exported_series() -> set[str]:
    """Every series name a daemon's /metrics can show, from the code that defines them."""
    metrics = Metrics()
    IntakeMetrics(metrics)  # the intake's series, exported when intake is configured
    AdminMetrics(metrics)  # Mistral's Admin API's series, with mistral.admin
    return set().union(*(_series_of(family) for family in metrics.registry.collect()))


def metric_names_in(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (`make system-deps` installs Debian's prometheus)")
    return path


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    anchors = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors
