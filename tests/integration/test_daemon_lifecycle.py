"""The daemon's lifecycle: a start-up that fails closes what it had opened; a stop closes all.

In-process (``rotator.app.daemon.run``) so that a socket, a signal handler, a task or a
thread left behind is seen here, not hidden by the process exit; and once as ``rotator
run``, as an operator meets it.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.app.daemon import STOP_TIMEOUT_S, run
from rotator.config import parse_settings
from rotator.demo.standin import MistralStandIn
from rotator.errors import ConfigError
from tests.fixtures.daemon import ROOT, KeyKit, assert_no_key_in, daemon_config
from tests.fixtures.openbao import OpenBaoServer, write_private
from tests.waiting import wait_for

ADMIN_TOKEN = "lifecycle-admin-token-" + "7" * 16


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _can_listen(port: int) -> bool:
    """Whether ``port`` can be bound again (no SO_REUSEADDR: a socket left open forbids it)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that another program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        yield other.getsockname()[1]


def _config(
    tmp_path: Path, openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str
) -> tuple[dict[str, Any], KeyKit, dict[str, int]]:
    """One key with a file sink; metrics, admin API and intake page on ports of their own."""
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("solo")
    ports = {"metrics": _free_port(), "admin": _free_port(), "intake": _free_port()}
    config = daemon_config(
        tmp_path,
        openbao,
        mistral,
        kit,
        ["solo"],
        admin_token_file=write_private(tmp_path / "admin-token", ADMIN_TOKEN),
        server={
            "metrics_listen": f"127.0.0.1:{ports['metrics']}",
            "admin_listen": f"127.0.0.1:{ports['admin']}",
        },
    )
    config["intake"] = {"listen": f"127.0.0.1:{ports['intake']}"}
    return config, kit, ports


def _left_behind() -> tuple[set[asyncio.Task[Any]], list[str]]:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]
    threads = [t.name for t in threading.enumerate() if t.name.startswith("vault_")]
    return tasks, threads


def _signal_handler_left(sig: signal.Signals) -> bool:
    return asyncio.get_running_loop().remove_signal_handler(sig)


async def test_a_port_taken_at_start_up_closes_the_listeners_already_open(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
    taken_port: int,
) -> None:
    config, _, ports = _config(tmp_path, openbao, mistral, kv_prefix)
    # The admin API and metrics listeners are bound first; the intake page's port is taken.
    config["intake"]["listen"] = f"127.0.0.1:{taken_port}"

    said = re.escape(f"intake.listen: cannot listen on 127.0.0.1:{taken_port}")
    with pytest.raises(ConfigError, match=said):
        await run(parse_settings(config))

    assert _can_listen(ports["admin"]), "the admin API's socket was left open"
    assert _can_listen(ports["metrics"]), "the metrics socket was left open"
    assert _left_behind() == (set(), [])


async def test_an_unreadable_admin_key_at_start_up_closes_listeners_and_signal_handlers(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    config, _, ports = _config(tmp_path, openbao, mistral, kv_prefix)
    # Read after the listeners, the signal handlers and the clients exist.
    config["mistral"]["admin"] = {"key_file": str(tmp_path / "missing-admin-key")}

    with pytest.raises(ConfigError, match=r"mistral\.admin\.key_file: cannot read"):
        await run(parse_settings(config))

    for port in ports.values():
        assert _can_listen(port), f"port {port} was left open"
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        assert not _signal_handler_left(sig), f"{sig.name} handler left behind"
    assert _left_behind() == (set(), [])


async def test_a_stop_ends_run_and_closes_everything_quietly(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
    captured_log: Callable[[], list[dict[str, Any]]],
) -> None:
    config, kit, ports = _config(tmp_path, openbao, mistral, kv_prefix)
    config["schedule"]["poll_interval"] = "1s"
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(parse_settings(config), stop=stop))
    sink = tmp_path / "sinks" / "solo.key"
    async with asyncio.timeout(60):
        while not sink.exists():
            assert not daemon.done(), daemon
            await asyncio.sleep(0.05)
    assert not _can_listen(ports["metrics"])

    stop.set()
    began = time.monotonic()
    async with asyncio.timeout(STOP_TIMEOUT_S + 10):
        await daemon
    assert time.monotonic() - began < STOP_TIMEOUT_S

    for port in ports.values():
        assert _can_listen(port), f"port {port} was left open"
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        assert not _signal_handler_left(sig), f"{sig.name} handler left behind"
    assert _left_behind()[0] == set()
    # Vault's pool is shut down: its threads end once their call (if any) has.
    wait_for(lambda: not _left_behind()[1], 15, "Vault's threads to end")
    events = captured_log()
    assert [e["event"] for e in events][-1] == "rotator.stopped"
    loud = [e for e in events if e.get("level") in ("error", "critical") or "exception" in e]
    assert not loud, loud
    assert_no_key_in([json.dumps(events)], kit.values)


def test_rotator_run_with_a_port_taken_says_which_and_exits_leaving_nothing_open(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
    taken_port: int,
) -> None:
    """What an operator sees (the leak itself shows in-process above: a process that exits
    closes its sockets anyway)."""
    config, kit, ports = _config(tmp_path, openbao, mistral, kv_prefix)
    config["intake"]["listen"] = f"127.0.0.1:{taken_port}"
    config_file = tmp_path / "rotator.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "run", "--config", str(config_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - began

    assert done.returncode == 2, done
    assert f"intake.listen: cannot listen on 127.0.0.1:{taken_port}" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert took < 20, f"took {took:.1f}s to exit"
    for port in (ports["admin"], ports["metrics"]):
        assert _can_listen(port), f"port {port} still taken"
    assert_no_key_in([done.stdout, done.stderr], [*kit.values, ADMIN_TOKEN, openbao.root_token])
