"""Issue 11 (reliability round 2), what a hurried operator meets: real ``rotator`` processes
against the session OpenBao and the Mistral stand-in.

- SIGHUP does not kill the daemon (8);
- a reload helper started with ``setsid`` that keeps the command's output is killed, and
  retries do not pile helpers up (9);
- ``config validate`` and ``run`` refuse the same configs, listing every error, exit 2 (10);
- an operator's mistake is exit 1 or 2 with a sentence, never 0 (11);
- key names are checked by the CLI and never reach a URL unencoded (12);
- ``status`` takes ``--config``; ``check`` and ``stage`` see discovered keys (13).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.demo.standin import MistralStandIn
from tests.dates import expiry_in
from tests.fixtures.daemon import (
    KeyKit,
    Stack,
    assert_no_key_in,
    configured_daemon,
    seeded_stack,
    sink_file,
)
from tests.fixtures.openbao import OpenBaoServer
from tests.waiting import wait_for

NAMES = ("op-a", "x")


@pytest.fixture(scope="module")
def stack(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("operator")
    with seeded_stack(openbao, workdir, "operator", NAMES, expiry_in(200)) as s:
        yield s


# --- 11: mistakes are never exit 0 ------------------------------------------------------------


def test_rotate_to_a_version_that_never_existed_is_a_mistake(stack: Stack) -> None:
    d = stack.daemon
    for version in ("9", "2147483647"):
        done = d.cli("rotate", "op-a", "--version", version)
        assert done.returncode in (1, 2), (done.stdout, done.stderr)
        assert f"version {version} of op-a does not exist" in done.stderr, done.stderr
    assert d.metric("mistral_key_latest_version", key="op-a") == 1
    assert d.key("op-a")["latest_version"] == 1 and d.key("op-a")["active_version"] == 1


# --- 12: key names ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["verify", "rollback", "rotate"])
def test_a_name_that_is_no_key_name_never_reaches_the_api(stack: Stack, command: str) -> None:
    d = stack.daemon
    before = len(d.events(f"admin.{command}")) + len(d.events("admin.rollback"))
    done = d.cli(command, "x/rollback?")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "KeyError" not in done.stderr
    assert "not a key name" in done.stderr, done.stderr
    assert len(d.events(f"admin.{command}")) + len(d.events("admin.rollback")) == before
    assert sink_file(d, "x").read_text().strip() == stack.first["x"]


# --- 9: reload helpers ------------------------------------------------------------------------

HELPER = """
import os, subprocess, sys
# A helper in a session of its own that keeps our stderr (it inherits it): the reload
# command ends, the helper lives on.
helper = subprocess.Popen(
    ["sleep", "300"], start_new_session=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
)
with open(sys.argv[1], "a") as f:
    f.write(f"{helper.pid}\\n")
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ", 1)[1][0] != "Z"


def test_a_setsid_helper_holding_the_output_is_killed_and_does_not_pile_up(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("helper")
    script, pids = tmp_path / "helper.py", tmp_path / "helper.pids"
    script.write_text(HELPER)
    daemon = configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        ["helper"],
        schedule={"poll_interval": "1s"},
        rotation={"retry_backoff": "0.2s", "max_backoff": "1s", "sink_attempts": 1},
    )
    daemon.config["keys"][0]["sinks"][0]["reload"] = {
        "command": [sys.executable, str(script), str(pids)],
        "timeout_seconds": 1,
    }
    started: list[int] = []
    try:
        daemon.start(wait_ready=False)

        def helpers() -> list[int]:
            text = pids.read_text() if pids.exists() else ""
            return [int(p) for p in text.split()]

        wait_for(lambda: len(helpers()) >= 3, 30, "three reloads tried")
        started = helpers()
        # Each helper is gone once its reload has timed out (killed with the command).
        wait_for(lambda: sum(map(_alive, started)) <= 1, 10, "the helpers killed")
        failed = daemon.events("sink.failed")
        assert any("did not finish within 1s" in e["reason"] for e in failed), failed[-1:]
    finally:
        daemon.stop()
        for pid in helpers() if pids.exists() else started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- 10: one validation path ------------------------------------------------------------------


def _validate_and_run(tmp_path: Path, config: dict[str, Any]) -> tuple[Any, Any]:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "ROTATOR_"))}
    env["ROTATOR_ADMIN_TOKEN"] = "admin-" + "a" * 32

    def rotator(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rotator", *args, "--config", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return rotator("config", "validate"), rotator("run")


BAD_CONFIGS = {
    "relative sink path": (
        {"sinks": [{"type": "file", "path": "relative/key"}]},
        "keys[0].sinks[0].path",
    ),
    "unknown signal": (
        {
            "sinks": [
                {
                    "type": "file",
                    "path": "/tmp/rotator-test-never-written.key",
                    "reload": {"signal": "NOSUCH", "pid_file": "/run/app.pid"},
                }
            ]
        },
        "keys[0].sinks[0].reload.signal",
    ),
    "plain http to a remote host": (
        {"sinks": [{"type": "http", "url": "http://portal.example.com/key"}]},
        "keys[0].sinks[0].url",
    ),
}


def test_validate_and_run_refuse_the_same_configs_listing_every_error(tmp_path: Path) -> None:
    key: dict[str, Any] = {"name": "k", "vault_path": "mistral/k", "sinks": []}
    for entry, _ in BAD_CONFIGS.values():
        key["sinks"] += entry["sinks"]
    config = {
        "vault": {"address": "http://127.0.0.1:1", "auth": {"method": "token"}},
        "schedule": {"poll_interval": "99999999999d", "verify_interval": float("inf")},
        "expiry": {"max_lifetime_days": 3000000},
        "rotation": {"lease": -5, "retry_backoff": "-1"},
        "keys": [key],
    }
    validate, run = _validate_and_run(tmp_path, config)
    wanted = [
        "keys[0].sinks[0].path",
        "keys[0].sinks[1].reload: signal: unknown signal 'NOSUCH'",
        "keys[0].sinks[2].url: plain http://",
        "schedule.poll_interval",
        "schedule.verify_interval",
        "expiry.max_lifetime_days",
        "rotation.lease",
        "rotation.retry_backoff",
    ]
    for done in (validate, run):
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "OverflowError" not in done.stderr
        for field in wanted:
            assert field in done.stderr, (field, done.stderr)
    assert validate.stderr == run.stderr


# --- 8: SIGHUP --------------------------------------------------------------------------------


# Last in the module: before the fix, it stops the module's daemon.
def test_sighup_does_not_stop_the_daemon(stack: Stack) -> None:
    d = stack.daemon
    assert d._process is not None
    d._process.send_signal(signal.SIGHUP)
    d.wait_until(lambda: d.events("rotator.sighup"), 10, "the SIGHUP logged")
    assert d.running and d.ready()
    assert d.key("op-a")["status"] == "valid"


# --- 13: the CLI sees what the daemon sees ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_status_takes_config_and_check_and_stage_see_discovered_keys(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("tenant-a", expires_at=expiry_in(100))
    daemon = configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        [],
        # A fixed port: the CLI reads it from the config (port 0 is only known to the daemon).
        server={"admin_listen": f"127.0.0.1:{_free_port()}"},
        discover={
            "prefix": kit.prefix,
            "sinks": [{"type": "file", "path": str(tmp_path / "sinks" / "{name}.key")}],
        },
    ).start()
    try:
        daemon.wait_checked(["tenant-a"])
        config = ["--config", str(daemon.config_path)]
        env = {k: v for k, v in daemon.base_env().items() if k != "ROTATOR_URL"}

        def rotator(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "rotator", *args],
                capture_output=True,
                text=True,
                input=stdin,
                env=env,
                timeout=90,
                check=False,
            )

        # No $ROTATOR_URL, no token in the environment: the config says where and how.
        status = rotator("status", *config)
        assert status.returncode == 0, status.stderr
        assert "tenant-a" in status.stdout and "valid" in status.stdout

        check = rotator("check", *config, "tenant-a")
        assert check.returncode == 0, check.stderr
        assert "tenant-a" in check.stdout

        value = "Stagedkey" + "x" * 23
        kit.values.append(value)
        mistral.set_key(value, "valid")
        staged = rotator("stage", *config, "tenant-a", stdin=value + "\n")
        assert staged.returncode == 0, staged.stderr
        assert "version 2" in staged.stdout

        unknown = rotator("check", *config, "tenant-zz")
        assert unknown.returncode == 2 and "tenant-zz" in unknown.stderr
    finally:
        daemon.stop()
    assert_no_key_in([daemon.output(), status.stdout, check.stdout, staged.stdout], kit.values)
