"""Static security checks: bandit finds nothing, and every suppression says why.

``make lint`` runs the same bandit command; this test also holds the rule that a
``# nosec`` (bandit) or ``# noqa: S...`` (ruff's bandit rules) comes with its reason, on
its line or in a comment just above.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPPRESSION = re.compile(r"#\s*(nosec\b[^#]*|noqa:\s*S\d+[^#]*)")
MARKERS = re.compile(r"#\s*(nosec(\s+B\d+)*|noqa:\s*[A-Z]+\d+(,\s*[A-Z]+\d+)*)")


@pytest.mark.skipif(
    importlib.util.find_spec("bandit") is None, reason="bandit is not installed (dev extra)"
)
def test_bandit_is_clean_with_the_projects_configuration() -> None:
    command = ["bandit", "-q", "-c", "pyproject.toml", "-r", "rotator", "-f", "json"]
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    found = [f"{r['filename']}:{r['line_number']} {r['test_id']}" for r in report["results"]]
    assert found == [], done.stdout
    assert report["errors"] == []
    assert done.returncode == 0


def suppressions() -> list[tuple[Path, int, list[str]]]:
    found = []
    for path in sorted((ROOT / "rotator").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if SUPPRESSION.search(line):
                found.append((path, number, lines[max(0, number - 4) : number]))
    return found


def reason(context: list[str]) -> str:
    """The words of the suppression's line and of comment lines up to three above it (a
    statement's leading comment), markers removed."""
    *above, line = context
    comment = line[line.index("#") :] if "#" in line else ""
    text = MARKERS.sub(" ", comment)
    for previous in above:
        if previous.strip().startswith("#"):
            text += previous
    return re.sub(r"[#\s\-:]+", " ", text).strip()


def test_there_are_suppressions_to_check() -> None:
    assert len(suppressions()) >= 5


@pytest.mark.parametrize(
    ("path", "number", "context"),
    suppressions(),
    ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in suppressions()],
)
def test_every_security_suppression_says_why(path: Path, number: int, context: list[str]) -> None:
    assert len(reason(context).split()) >= 2, f"{path}:{number} suppresses without a reason"
