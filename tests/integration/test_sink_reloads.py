"""Reload actions against real processes and a real HTTP endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.adapters.sinks.file import FileSink
from rotator.adapters.sinks.registry import close_sinks
from rotator.config.sinks import FileSinkSettings
from rotator.errors import SinkError
from tests.fixtures.receiver import Receiver
from tests.sink_helpers import HUP_APP, V1, V2, error_texts
from tests.waiting import wait_for

# Writes what it was started with; exits with $EXIT_WITH, after printing $SAY to stderr.
REPORTER = """
import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump({"argv": sys.argv, "env": dict(os.environ)}, f)
sys.stderr.write(os.environ.get("SAY", ""))
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""

# Starts a grandchild, records both pids; then sleeps past any timeout, or ("leave") exits
# at once while the grandchild keeps its stderr open.
SLEEPER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
if sys.argv[2] == "stay":
    time.sleep(60)
"""


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def file_sink(path: Path, reload: dict[str, Any]) -> FileSink:
    return FileSink(
        FileSinkSettings.model_validate({"type": "file", "path": path, "reload": reload})
    )


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


# --- signal --------------------------------------------------------------------------------


@pytest.fixture
def hup_counter(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A running process that logs each SIGHUP; yields (its pid file, its HUP log)."""
    pid_file, hup_log = tmp_path / "app.pid", tmp_path / "hups"
    key_file = tmp_path / "keys" / "api-key"
    key_file.parent.mkdir()
    code = script(tmp_path, "hup.py", HUP_APP)
    proc = subprocess.Popen([sys.executable, code, str(key_file), str(hup_log), str(pid_file)])
    wait_for(pid_file.exists)
    yield pid_file, hup_log
    proc.kill()
    proc.wait()


async def test_one_delivery_is_exactly_one_hup_after_the_write(
    tmp_path: Path, hup_counter: tuple[Path, Path]
) -> None:
    pid_file, hup_log = hup_counter
    sink = file_sink(tmp_path / "keys" / "api-key", {"signal": "HUP", "pid_file": pid_file})
    await sink.deliver(V1)
    wait_for(lambda: len(lines(hup_log)) >= 1)
    await sink.deliver(V2)
    wait_for(lambda: len(lines(hup_log)) >= 2)
    time.sleep(0.2)  # a stray third signal would have landed by now
    # Each HUP found the new key already in place.
    assert lines(hup_log) == [V1.fingerprint, V2.fingerprint]


@pytest.mark.parametrize(
    ("pid_text", "message"),
    [
        (None, "does not exist"),
        ("not-a-pid\n", "does not hold a process id"),
        ("0", "does not hold a process id"),
        ("-1", "does not hold a process id"),
    ],
)
async def test_bad_pid_file_is_a_clear_failure(
    tmp_path: Path, pid_text: str | None, message: str
) -> None:
    pid_file = tmp_path / "app.pid"
    if pid_text is not None:
        pid_file.write_text(pid_text)
    sink = file_sink(tmp_path / "api-key", {"signal": "SIGHUP", "pid_file": pid_file})
    with pytest.raises(SinkError, match=f"pid file {pid_file} {message}"):
        await sink.deliver(V1)


async def test_dead_process_is_a_clear_failure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid_file = tmp_path / "app.pid"
    pid_file.write_text(done.stdout)
    sink = file_sink(tmp_path / "api-key", {"signal": "HUP", "pid_file": pid_file})
    with pytest.raises(SinkError, match=f"process {done.stdout.strip()} .* is not running"):
        await sink.deliver(V1)


# --- command -------------------------------------------------------------------------------


async def test_command_never_sees_the_key_or_daemon_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.daemon-token-xyz")
    monkeypatch.setenv("MISTRAL_API_KEY", V1.api_key)  # e.g. the daemon started with one
    report = tmp_path / "report.json"
    command = [sys.executable, script(tmp_path, "r.py", REPORTER), str(report), "--key-file"]
    sink = file_sink(tmp_path / "api-key", {"command": command})
    await sink.deliver(V1)
    text = report.read_text()
    assert json.loads(text)["argv"][1:] == [str(report), "--key-file"]
    assert V1.api_key not in text
    assert "hvs.daemon-token-xyz" not in text
    assert json.loads(text)["env"]["PATH"] == os.environ["PATH"]


async def test_command_gets_the_key_only_under_pass_key_env(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [sys.executable, script(tmp_path, "r.py", REPORTER), str(report)]
    sink = file_sink(tmp_path / "api-key", {"command": command, "pass_key_env": "NEW_KEY"})
    await sink.deliver(V2)
    seen = json.loads(report.read_text())
    assert seen["env"]["NEW_KEY"] == V2.api_key
    assert V2.api_key not in json.dumps(seen["argv"])


async def test_failing_command_reports_exit_status_and_scrubbed_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXIT_WITH", "3")
    report = tmp_path / "report.json"
    command = [sys.executable, script(tmp_path, "r.py", REPORTER), str(report)]
    sink = file_sink(tmp_path / "api-key", {"command": command, "pass_key_env": "SAY"})
    with pytest.raises(SinkError, match=r"exited with 3: \[REDACTED\]") as caught:
        await sink.deliver(V1)
    assert V1.api_key not in error_texts(caught.value)


@pytest.mark.parametrize("parent", ["stay", "leave"])
async def test_hanging_command_is_killed_with_its_children(tmp_path: Path, parent: str) -> None:
    pids = tmp_path / "pids"
    command = [sys.executable, script(tmp_path, "s.py", SLEEPER), str(pids), parent]
    sink = file_sink(tmp_path / "api-key", {"command": command, "timeout_seconds": 2})
    started = time.monotonic()
    with pytest.raises(SinkError, match=r"did not finish within 2s"):
        await sink.deliver(V1)
    # Not held up by a grandchild that still has the command's stderr open.
    assert time.monotonic() - started < 10
    first, second = (int(p) for p in pids.read_text().split())
    wait_for(lambda: gone(first) and gone(second), timeout=5)


async def test_missing_command_is_a_clear_failure(tmp_path: Path) -> None:
    sink = file_sink(tmp_path / "api-key", {"command": [str(tmp_path / "no-such-tool")]})
    with pytest.raises(SinkError, match="no-such-tool: No such file"):
        await sink.deliver(V1)


# --- http ----------------------------------------------------------------------------------


async def test_http_reload_is_one_request_without_the_key(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELOAD_TOKEN", "reload-token-42")
    reload = {
        "url": f"{receiver.url}/-/reload",
        "headers": {"Authorization": "Bearer ${env:RELOAD_TOKEN}"},
    }
    sink = file_sink(tmp_path / "api-key", reload)
    await sink.deliver(V1)
    await close_sinks([sink])
    (got,) = receiver.requests
    assert (got.method, got.path) == ("POST", "/-/reload")
    assert got.headers["authorization"] == "Bearer reload-token-42"
    assert V1.api_key.encode() not in got.body


async def test_http_reload_error_status_fails_the_delivery(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.respond(503, b"busy")
    sink = file_sink(tmp_path / "api-key", {"url": receiver.url, "method": "PUT"})
    with pytest.raises(SinkError, match=r"reload PUT .* answered HTTP 503: busy"):
        await sink.deliver(V1)
    await close_sinks([sink])
