"""deploy/prometheus/alerts-compact.yml (``server.metrics_per_key: compact``): derived from
alerts.yml, no alert lost, promtool-tested, and every series it reads is exported."""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client.core import Metric

from rotator.adapters.metrics.admin import AdminMetrics
from rotator.adapters.metrics.registry import Metrics
from rotator.intake.metrics import IntakeMetrics
from tests.deploy.files import ALERTS, DEPLOY, ROOT, load_yaml, metric_names_in, promtool, run

COMPACT = DEPLOY / "prometheus" / "alerts-compact.yml"
COMPACT_TEST = DEPLOY / "prometheus" / "alerts-compact_test.yml"


def _rules(path: Path) -> list[dict[str, object]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def _series(family: Metric) -> set[str]:
    return {f"{family.name}_total"} if family.type == "counter" else {family.name}


def test_the_file_is_what_the_generator_makes_of_alerts_yml() -> None:
    result = run([sys.executable, "scripts/gen_alerts_compact.py", "--check"], cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_every_alert_of_alerts_yml_is_there_with_the_same_severity_and_wait() -> None:
    def shape(rule: dict[str, object]) -> tuple[object, ...]:
        labels = rule.get("labels") or {}
        assert isinstance(labels, dict)
        return (rule["alert"], labels.get("severity"), labels.get("cause"), rule.get("for"))

    assert [shape(r) for r in _rules(COMPACT)] == [shape(r) for r in _rules(ALERTS)]


def test_promtool_accepts_and_unit_tests_the_rules() -> None:
    tool = promtool()
    checked = run([tool, "check", "rules", str(COMPACT)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run([tool, "test", "rules", str(COMPACT_TEST)])
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_series_it_reads_is_exported_in_compact_mode() -> None:
    metrics = Metrics(compact=True)
    IntakeMetrics(metrics)  # the intake's series, exported when intake is configured
    AdminMetrics(metrics)  # Mistral's Admin API's series, with mistral.admin
    exported = set().union(*(_series(f) for f in metrics.registry.collect()))
    exported |= {"mistral_key_verify_duration_seconds_bucket"}
    used = metric_names_in(COMPACT.read_text(encoding="utf-8"))
    assert "mistral_key_status_code" in used
    assert used <= exported, sorted(used - exported)
    assert "mistral_key_status" not in exported
