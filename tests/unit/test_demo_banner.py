"""Issue 11, defect 15: the demo's suggested commands work verbatim from another terminal,
whose PATH does not have the virtualenv on it (``make demo`` runs ``.venv/bin/rotator``)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from rotator.demo.run import _banner


def test_the_suggested_commands_run_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A terminal without the virtualenv on PATH: only the system's directories.
    bare_path = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if p)
    monkeypatch.setenv("PATH", bare_path)
    _banner(tmp_path, "http://127.0.0.1:8200", "t", 9102, 8080)
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines()]
    suggested = [ln for ln in lines if " check --config " in ln or " stage " in ln]
    assert len(suggested) == 2, lines
    for line in suggested:
        argv = shlex.split(line.split(" < ")[0])
        # "--help" in place of the work: the command itself must be found and start.
        done = subprocess.run(
            [*argv[: argv.index("--config")], "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": bare_path},
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (line, done.stderr)
        assert "Usage:" in done.stdout
