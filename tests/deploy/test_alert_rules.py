"""deploy/prometheus/alerts.yml: valid, unit-tested both ways, documented, in step with the code."""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest

from rotator.config.expiry import ExpirySettings
from rotator.config.schedule import ScheduleSettings
from tests.deploy.files import (
    ALERTMANAGER,
    ALERTS,
    ALERTS_TEST,
    JOB,
    RUNBOOK,
    alert_rules,
    github_anchors,
    load_yaml,
    promtool,
    run,
)

RULES = alert_rules()
NAMES = sorted({rule["alert"] for rule in RULES})
SEVERITIES = {"critical", "warning", "info"}


def _expectations() -> list[tuple[str, list[dict[str, Any]]]]:
    """(alertname, expected alerts) for every alert_rule_test of alerts_test.yml."""
    return [
        (case["alertname"], case.get("exp_alerts") or [])
        for test in load_yaml(ALERTS_TEST)["tests"]
        for case in test["alert_rule_test"]
    ]


def test_promtool_accepts_the_rules() -> None:
    result = run([promtool(), "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = run([promtool(), "test", "rules", str(ALERTS_TEST)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_contract_alerts_are_all_there() -> None:
    contract = {
        "MistralKeyExpiringSoon",
        "MistralKeyExpiringCritical",
        "MistralKeyExpired",
        "MistralKeyInvalid",
        "MistralKeyBillingBlocked",
        "MistralKeyRotationRejected",
        "MistralKeyRotationPending",
        "MistralKeyCheckStale",
        "RotatorVaultDown",
        "RotatorDown",
    }
    assert contract <= set(NAMES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r['alert']}{r['labels'].get('cause', '')}")
def test_every_rule_has_a_firing_case(rule: dict[str, Any]) -> None:
    """A firing expectation that carries the rule's own static labels (e.g. its cause)."""
    static = rule["labels"]
    firing = [
        alert["exp_labels"]
        for name, alerts in _expectations()
        if name == rule["alert"]
        for alert in alerts
    ]
    assert any(static.items() <= labels.items() for labels in firing), (
        f"no case in alerts_test.yml where {rule['alert']} {static} fires"
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_alert_has_a_case_where_it_must_not_fire(name: str) -> None:
    assert any(n == name and not alerts for n, alerts in _expectations()), (
        f"no case in alerts_test.yml where {name} must stay silent (exp_alerts: [])"
    )


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("MistralKey")])
def test_key_alerts_carry_the_key_label(name: str) -> None:
    fired = [a["exp_labels"] for n, alerts in _expectations() if n == name for a in alerts]
    assert fired and all("key" in labels for labels in fired)
    rules = [r for r in RULES if r["alert"] == name]
    assert all("$labels.key" in r["annotations"]["summary"] for r in rules)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["alert"])
def test_every_rule_has_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"


def test_every_runbook_url_points_at_a_section_of_the_runbook() -> None:
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    missing = {
        r["annotations"]["runbook_url"]
        for r in RULES
        if r["annotations"]["runbook_url"].partition("#")[2] not in anchors
    }
    assert not missing


def test_every_runbook_section_is_an_alert() -> None:
    """The runbook has no stale section for an alert that was renamed or removed."""
    sections = re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    assert set(sections) == set(NAMES)


def test_thresholds_follow_the_daemons_defaults() -> None:
    """The rules hard-code warn_days, critical_days and 3 x verify_interval."""
    expiry, schedule = ExpirySettings(), ScheduleSettings()
    by_name = {r["alert"]: r["expr"] for r in RULES}
    assert f"< {expiry.warn_days}\n" in by_name["MistralKeyExpiringSoon"]
    assert f"< {expiry.critical_days}\n" in by_name["MistralKeyExpiringCritical"]
    stale = next(r for r in RULES if r["labels"].get("cause") == "no_attempt")
    hours = int(schedule.verify_interval.total_seconds() // 3600)
    assert f"> 3 * {hours * 3600}" in stale["expr"]
    inconclusive = next(r for r in RULES if r["labels"].get("cause") == "inconclusive")
    assert inconclusive["for"] == f"{3 * hours}h"


def test_rotator_down_watches_the_documented_job() -> None:
    expr = next(r["expr"] for r in RULES if r["alert"] == "RotatorDown")
    assert set(re.findall(r'job="([^"]+)"', expr)) == {JOB}


def test_alertmanager_configuration_is_valid_and_names_real_alerts() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (`make system-deps` installs prometheus-alertmanager)")
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr
    named = set()
    for rule in load_yaml(ALERTMANAGER)["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            named |= set(re.findall(r"\w+", matcher.partition("alertname")[2]))
    assert named and named <= set(NAMES)
