"""What the fault tests share: real daemons on a config a test shapes, and readers of what
the daemon, its sinks and Vault hold.

Every daemon is a real ``rotator run`` subprocess (``tests.fixtures.daemon``) against a real
OpenBao and the Mistral stand-in; a test changes the config dict (sinks, timeouts, the
Mistral or Vault address of a :class:`~tests.faults.proxy.FaultProxy`) before starting it.
"""

from __future__ import annotations

import copy
import secrets
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, daemon_config
from tests.fixtures.openbao import OpenBaoServer, write_private

FAST_ROTATION = {"retry_backoff": "0.5s", "max_backoff": "2s", "sink_attempts": 1, "lease": "3s"}
STATUSES = (
    "valid",
    "invalid",
    "billing_blocked",
    "forbidden",
    "model_unavailable",
    "rate_limited",
    "unreachable",
    "unknown",
)


def sigkill(daemon: DaemonProcess) -> None:
    """As the kernel's OOM killer would: no clean-up, no last log line."""
    process = daemon._process
    assert process is not None and process.poll() is None, "the daemon is not running"
    process.send_signal(signal.SIGKILL)
    process.wait(5)
    daemon._process = None


def status_of(daemon: DaemonProcess, key: str) -> str | None:
    """The status whose ``mistral_key_status`` series is 1."""
    for status in STATUSES:
        if daemon.metric("mistral_key_status", key=key, status=status) == 1:
            return status
    return None


def vault_errors(daemon: DaemonProcess) -> float:
    return daemon.metric("rotator_errors_total", component="vault") or 0.0


def rotations(daemon: DaemonProcess, key: str, result: str) -> float:
    return daemon.metric("mistral_key_rotations_total", key=key, result=result) or 0.0


@dataclass
class Stack:
    """One test's world: an OpenBao, the stand-in, keys in Vault, and the daemons started."""

    openbao: OpenBaoServer
    standin: MistralStandIn
    kit: KeyKit
    workdir: Path
    token: str = field(default_factory=lambda: "admin-" + secrets.token_hex(16))
    daemons: list[DaemonProcess] = field(default_factory=list)

    def config(
        self,
        names: Iterable[str],
        *,
        schedule: dict[str, Any] | None = None,
        rotation: dict[str, Any] | None = None,
        mistral: dict[str, Any] | None = None,
        vault: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Each key with a raw file sink at ``workdir/sinks/NAME.key``; sections merged in."""
        config = daemon_config(
            self.workdir,
            self.openbao,
            self.standin,
            self.kit,
            list(names),
            admin_token_file=write_private(self.workdir / "admin-token", self.token),
            schedule={"poll_interval": "1s", **(schedule or {})},
        )
        config["rotation"] = {**FAST_ROTATION, **(rotation or {})}
        config["mistral"].update(mistral or {})
        config["vault"].update(vault or {})
        return config

    def start(
        self, config: dict[str, Any], *, wait_ready: bool = True, checked: bool = True
    ) -> DaemonProcess:
        """A daemon on ``config`` (a copy); waits until ready and every key was checked."""
        workdir = self.workdir / f"daemon-{len(self.daemons)}"
        workdir.mkdir()
        daemon = DaemonProcess(workdir, copy.deepcopy(config), token=self.token)
        self.daemons.append(daemon)
        daemon.start(wait_ready=wait_ready)
        if wait_ready and checked:
            daemon.wait_checked([k["name"] for k in config["keys"]])
        return daemon

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.stop()

    # --- what the sinks and Vault hold ---------------------------------------------------

    def sink_path(self, config: dict[str, Any], name: str, index: int = 0) -> Path:
        key = next(k for k in config["keys"] if k["name"] == name)
        return Path(key["sinks"][index]["path"])

    def state(self, config: dict[str, Any], name: str) -> dict[str, Any]:
        path = f"{config['vault']['state_path']}/{name}"
        answer = self.openbao.client().secrets.kv.v2.read_secret_version(
            path=path, raise_on_deleted_version=True
        )
        data: dict[str, Any] = answer["data"]["data"]
        return data

    def assert_no_key_leaked(self, extra: Iterable[str] = ()) -> None:
        texts = [d.output() for d in self.daemons] + [a for d in self.daemons for a in d.answers]
        assert_no_key_in([*texts, *extra], self.kit.values)


def read_key(path: Path) -> str | None:
    """What a raw file sink holds, without its newline; None when there is no file."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
