"""deploy/grafana/mistral-keys.json: valid PromQL, the panels an operator needs, a sound layout."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import DASHBOARD, promtool, run

DOC: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
PANELS = [p for p in DOC["panels"] if p["type"] != "row"]
# Grafana fills these in before Prometheus sees a query: stand-ins of the same shape.
GRAFANA_VARIABLES = {
    "$__rate_interval": "2m",
    "$__interval": "1m",
    "$__range": "1d",
    "$job": ".+",
    "$key": ".+",
}


def _exprs() -> list[str]:
    return [t["expr"] for p in PANELS for t in p["targets"]]


def _as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses them as recording rules: any syntax error fails the check."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": _as_promql(e)} for i, e in enumerate(_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run([promtool(), "check", "rules", "--lint=none", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("days left per key", r"\(mistral_key_expiry_timestamp_seconds\{.*\} - time\(\)\) / 86400"),
        ("status per key", r"mistral_key_status\{.*\} == 1"),
        ("rotations", r"increase\(mistral_key_rotations_total\{"),
        (
            "verification latency",
            r"histogram_quantile\(0\.95, .*mistral_key_verify_duration_seconds_bucket",
        ),
        ("vault health", r"rotator_vault_up\{"),
        ("vault token expiry", r"rotator_vault_token_expiry_timestamp_seconds\{"),
    ],
)
def test_dashboard_shows(what: str, pattern: str) -> None:
    assert any(re.search(pattern, e) for e in _exprs()), f"no panel shows {what}"


def test_every_query_uses_the_datasource_variable() -> None:
    variables = {v["name"]: v for v in DOC["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in PANELS:
        sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources), panel[
            "title"
        ]


def test_panels_filter_by_the_job_variable() -> None:
    assert all('job=~"$job"' in e for e in _exprs())


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    ids = [p["id"] for p in DOC["panels"]]
    assert len(ids) == len(set(ids))
    boxes = [p["gridPos"] for p in DOC["panels"]]
    for i, a in enumerate(boxes):
        assert a["x"] + a["w"] <= 24
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, f"panels overlap: {a} {b}"


def test_identity_for_provisioning() -> None:
    assert DOC["uid"] == "mistral-key-rotator"
    assert DOC["title"]
    assert "id" not in DOC  # a fixed database id would clash on import
