"""What the rotation tests share: real daemons on one config, an integration that counts its
reloads, the HTTP receiver as the second sink, and readers of what each of them holds.

Every daemon is a real ``rotator run`` subprocess (``tests.fixtures.daemon``) against the
session OpenBao and the Mistral stand-in. The config is built by ``daemon_config`` and then
given the sinks and the ``rotation:`` settings a test needs, so several daemons (a restart,
a second instance) can share the very same sinks and state.
"""

from __future__ import annotations

import copy
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, daemon_config
from tests.fixtures.openbao import OpenBaoServer, write_private
from tests.fixtures.receiver import Receiver
from tests.sink_helpers import HUP_APP
from tests.waiting import wait_for

POLL_S = 1.0
ROTATION = {"retry_backoff": "0.5s", "max_backoff": "2s", "sink_attempts": 1, "lease": "60s"}


@dataclass
class HupApp:
    """A running process that reloads its key file on SIGHUP (and logs each reload)."""

    key_file: Path
    pid_file: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, workdir: Path, key_file: Path) -> HupApp:
        script = workdir / "hup_app.py"
        script.write_text(HUP_APP)
        pid_file, log_file = workdir / "app.pid", workdir / "app.hups"
        argv = [sys.executable, str(script), str(key_file), str(log_file), str(pid_file)]
        app = cls(key_file, pid_file, log_file, subprocess.Popen(argv))
        wait_for(pid_file.exists, 10, "the HUP app's pid file")
        return app

    def reloads(self) -> list[str]:
        """The key file's last four characters at each SIGHUP, in order."""
        return self.log_file.read_text().split() if self.log_file.exists() else []

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(5)


@dataclass
class Rig:
    """One test's world: keys in Vault, the stand-in, the receiver, the integration."""

    openbao: OpenBaoServer
    standin: MistralStandIn
    receiver: Receiver
    kit: KeyKit
    workdir: Path
    names: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    app: HupApp | None = None
    daemons: list[DaemonProcess] = field(default_factory=list)
    token: str = field(default_factory=lambda: "admin-" + secrets.token_hex(16))

    def configure(
        self,
        *,
        reload_key: str | None = None,
        http: bool = True,
        http_timeout_s: float = 10,
        rotation: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Each key: a raw file sink, then (``http``) a PUT of its key to the receiver.

        ``reload_key``: that key's file sink SIGHUPs the HUP app, which reads that file.
        """
        token_file = write_private(self.workdir / "admin-token", self.token)
        config = daemon_config(
            self.workdir,
            self.openbao,
            self.standin,
            self.kit,
            self.names,
            admin_token_file=token_file,
            schedule={"poll_interval": f"{POLL_S:g}s", **(schedule or {})},
        )
        config["rotation"] = {**ROTATION, **(rotation or {})}
        for key in config["keys"]:
            file_sink = key["sinks"][0]
            if key["name"] == reload_key:
                self.app = HupApp.start(self.workdir, Path(file_sink["path"]))
                file_sink["reload"] = {"signal": "HUP", "pid_file": str(self.app.pid_file)}
            if http:
                key["sinks"].append(
                    {
                        "type": "http",
                        "url": f"{self.receiver.url}/mistral-key",
                        "method": "PUT",
                        "body": '{"key": "{name}", "version": {version}, "api_key": "{api_key}"}',
                        "timeout_seconds": http_timeout_s,
                    }
                )
        self.config = config
        return config

    def start(self, *, wait_checked: bool = True) -> DaemonProcess:
        """Another daemon on the same config (same Vault state, same sinks)."""
        workdir = self.workdir / f"daemon-{len(self.daemons)}"
        workdir.mkdir()
        daemon = DaemonProcess(workdir, copy.deepcopy(self.config), token=self.token)
        self.daemons.append(daemon)
        daemon.start()
        if wait_checked:
            daemon.wait_checked(self.names)
        return daemon

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        if self.app is not None:
            self.app.stop()

    # --- what the sinks and the state hold ------------------------------------------------

    def file_key(self, name: str) -> str:
        return Path(self.config["keys"][self.names.index(name)]["sinks"][0]["path"]).read_text()

    def received(self, name: str) -> list[tuple[int, str]]:
        """(version, api_key) of every request the receiver got for ``name``, in order."""
        bodies = [r.json() for r in self.receiver.requests]
        return [(b["version"], b["api_key"]) for b in bodies if b["key"] == name]

    def state_path(self, name: str) -> str:
        return f"{self.config['vault']['state_path']}/{name}"

    def state(self, name: str) -> dict[str, Any]:
        answer = self.openbao.client().secrets.kv.v2.read_secret_version(
            path=self.state_path(name), raise_on_deleted_version=True
        )
        data: dict[str, Any] = answer["data"]["data"]
        return data

    def state_history(self, name: str) -> list[dict[str, Any]]:
        """Every version of the key's state record, oldest first."""
        kv = self.openbao.client().secrets.kv.v2
        meta = kv.read_secret_metadata(path=self.state_path(name))["data"]
        return [
            kv.read_secret_version(
                path=self.state_path(name), version=int(v), raise_on_deleted_version=True
            )["data"]["data"]
            for v in sorted(meta["versions"], key=int)
        ]

    def rotations(self, daemon: DaemonProcess, name: str, result: str) -> float:
        return daemon.metric("mistral_key_rotations_total", key=name, result=result) or 0.0

    def assert_no_key_leaked(self) -> None:
        texts = [d.output() for d in self.daemons] + [a for d in self.daemons for a in d.answers]
        assert_no_key_in(texts, self.kit.values)


def open_rig(
    openbao: OpenBaoServer,
    standin: MistralStandIn,
    receiver: Receiver,
    kv_prefix: str,
    tmp_path: Path,
    seed: dict[str, str],
) -> Iterator[Rig]:
    """A rig whose keys (``seed``: name -> behaviour of version 1) are already in Vault."""
    kit = KeyKit(openbao, standin, kv_prefix)
    for name, behaviour in seed.items():
        kit.put(name, behaviour)
    rig = Rig(openbao, standin, receiver, kit, tmp_path, list(seed))
    try:
        yield rig
    finally:
        rig.close()
