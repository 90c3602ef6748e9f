"""A client command starts without the server stack: ``rotator --help`` and ``rotator
status`` import neither FastAPI nor hvac, APScheduler, uvicorn or pydantic (``status`` needs
httpx to talk to the daemon; ``--help`` not even that)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

SERVER_STACK = (
    "fastapi",
    "starlette",
    "uvicorn",
    "hvac",
    "requests",
    "apscheduler",
    "pydantic",
    "prometheus_client",
    "structlog",
    "yaml",
)

_RUN = """
import json, sys
sys.argv = ["rotator", *sys.argv[1:]]
from rotator.cli.commands import main
try:
    main()
except SystemExit:
    pass
# A None entry is a module blocked from import (the CLI blocks rich: see main()).
loaded = {m.split(".")[0] for m, module in sys.modules.items() if module is not None}
print(json.dumps(sorted(loaded)), file=sys.stderr)
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _imported(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    last = done.stderr.strip().splitlines()[-1]
    return set(json.loads(last))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["status", "--help"],
        ["status", "--url", f"http://127.0.0.1:{_closed_port()}"],
        ["rotate", "some-key", "--url", f"http://127.0.0.1:{_closed_port()}"],
    ],
    ids=["help", "version", "status-help", "status", "rotate"],
)
def test_a_client_command_does_not_import_the_server_stack(args: list[str]) -> None:
    imported = _imported(*args)
    assert "rotator" in imported and "click" in imported  # it did run the CLI
    assert not imported & set(SERVER_STACK), sorted(imported & set(SERVER_STACK))
    if "--help" in args or "--version" in args:
        assert "httpx" not in imported


def test_the_daemon_command_still_has_it() -> None:
    # The same probe sees them when a command needs them: it can tell.
    imported = _imported("config", "validate", "--config", "/nonexistent/rotator.yaml")
    assert {"pydantic", "yaml"} <= imported
