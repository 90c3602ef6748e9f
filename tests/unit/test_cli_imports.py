"""A client command starts without the server stack: ``rotator --help``, ``rotator status``
and the other clients of the admin API import neither FastAPI nor hvac, APScheduler, uvicorn
or pydantic, nor httpx (the client speaks HTTP with the standard library); ``--help`` and
``--version`` do not even load the client."""

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
    "httpx",
    "httpcore",
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
loaded = [m for m, module in sys.modules.items() if module is not None]
print(json.dumps(sorted(loaded)), file=sys.stderr)
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _imported(*args: str) -> set[str]:
    """Every module loaded by the time ``rotator ARGS`` ended (its full dotted name)."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    last = done.stderr.strip().splitlines()[-1]
    return set(json.loads(last))


def _packages(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


CLOSED = f"http://127.0.0.1:{_closed_port()}"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["status", "--help"],
        ["status", "--url", CLOSED],
        ["status", "--url", CLOSED.replace("http://", "https://")],
        ["rotate", "some-key", "--url", CLOSED],
        ["verify", "some-key", "--url", CLOSED],
        ["rollback", "some-key", "--url", CLOSED],
        ["mint", "some-key", "--url", CLOSED],
        ["inventory", "--url", CLOSED],
        ["intake", "some-key", "--url", CLOSED],
    ],
    ids=lambda args: "-".join(a.split(":")[0] if a.startswith("http") else a for a in args),
)
def test_a_client_command_does_not_import_the_server_stack(args: list[str]) -> None:
    imported = _imported(*args)
    packages = _packages(imported)
    assert "rotator" in packages and "click" in packages  # it did run the CLI
    assert not packages & set(SERVER_STACK), sorted(packages & set(SERVER_STACK))
    if "--url" in args:
        assert "rotator.cli.client" in imported  # it did try the daemon


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["status", "--help"]])
def test_help_does_not_load_the_client(args: list[str]) -> None:
    imported = _imported(*args)
    assert "rotator.cli.commands" in imported
    assert not {"rotator.cli.client", "rotator.domain.model", "http.client"} & imported


def test_the_daemon_command_still_has_it() -> None:
    # The same probe sees them when a command needs them: it can tell.
    imported = _packages(_imported("config", "validate", "--config", "/nonexistent/rotator.yaml"))
    assert {"pydantic", "yaml"} <= imported
