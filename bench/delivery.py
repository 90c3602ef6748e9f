"""Propagation: a Vault write of a new key version until the new value is in a file.

The daemon (file sink, ``poll_interval: 1s``, the new key verified against the stand-in
first) next to OpenBao Agent rendering the same kind of secret to a file with a template,
with its default static-secret re-read (5 minutes) and with it tuned to 1 s. Each write
waits a random fraction of the interval first, so that samples do not ride the schedule.
"""

from __future__ import annotations

import json
import random
import secrets
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.footprint import Daemon
from bench.rig import StandIn, Vault, clean_env, key_value
from tests.fixtures.openbao import BAO, write_private

WAIT_S = 30.0
AGENT_DEFAULT_S = 300.0
"""OpenBao Agent's documented default ``static_secret_render_interval`` (5 minutes)."""


@dataclass(frozen=True)
class Samples:
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _wait_for(path: Path, value: str, started: float, timeout: float) -> float:
    while time.monotonic() - started < timeout:
        try:
            if path.read_text().strip() == value:
                return time.monotonic() - started
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{path} did not get the new value within {timeout:g}s")


def _sample(
    vault: Vault,
    standin: StandIn | None,
    path: str,
    target: Path,
    *,
    count: int,
    spread_s: float,
    timeout: float,
) -> Samples:
    times = []
    for _ in range(count):
        time.sleep(random.uniform(0, spread_s))  # spreading, not secrecy
        value = key_value()
        if standin is not None:
            standin.add_key(value)
        started = time.monotonic()
        vault.put(path, {"api_key": value})
        times.append(_wait_for(target, value, started, timeout))
    return Samples(times)


def daemon_propagation(
    workdir: Path,
    vault: Vault,
    standin: StandIn,
    *,
    count: int,
    poll_interval_s: float | None = 1.0,
    spread_s: float | None = None,
) -> Samples:
    """``poll_interval_s`` None: the daemon's default (then say ``spread_s``, the interval)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path, target = f"bench/propagation/{workdir.name}", workdir / "sink.key"
    first = key_value()
    standin.add_key(first)
    vault.put(path, {"api_key": first})
    token = write_private(workdir / "admin-token", "admin-" + secrets.token_hex(16))
    config = {
        "vault": {
            "address": vault.url,
            "auth": {"method": "token", "token_file": str(vault.token_file)},
            "state_path": f"bench-state/{workdir.name}",
        },
        "mistral": {"base_url": standin.url, "retries": 0},
        "schedule": {"verify_interval": "1h"}
        | ({"poll_interval": f"{poll_interval_s:g}s"} if poll_interval_s else {}),
        "server": {
            "metrics_listen": "127.0.0.1:0",
            "admin_listen": "127.0.0.1:0",
            "admin_token_file": str(token),
        },
        "keys": [
            {
                "name": "propagation",
                "vault_path": path,
                "sinks": [{"type": "file", "path": str(target)}],
            }
        ],
    }
    daemon = Daemon(workdir, config)
    try:
        _wait_for(target, first, time.monotonic(), WAIT_S)
        return _sample(
            vault,
            standin,
            path,
            target,
            count=count,
            spread_s=spread_s or poll_interval_s or 1.0,
            timeout=WAIT_S,
        )
    finally:
        daemon.stop()


_AGENT_HCL = """
vault {{
  address = {address}
}}
auto_auth {{
  method "token_file" {{
    config = {{ token_file_path = {token_file} }}
  }}
}}
{tuning}
template {{
  destination = {destination}
  contents = {contents}
}}
"""


def _agent_config(vault: Vault, path: str, target: Path, interval: str | None) -> str:
    # HCL strings take JSON's quoting.
    contents = (
        f'{{{{ with secret "secret/data/{path}" }}}}{{{{ .Data.data.api_key }}}}{{{{ end }}}}'
    )
    tuning = (
        f"template_config {{\n  static_secret_render_interval = {json.dumps(interval)}\n}}"
        if interval
        else ""
    )
    return _AGENT_HCL.format(
        address=json.dumps(vault.url),
        token_file=json.dumps(str(vault.token_file)),
        tuning=tuning,
        destination=json.dumps(str(target)),
        contents=json.dumps(contents),
    )


def agent_propagation(
    workdir: Path, vault: Vault, *, count: int, interval_s: float | None
) -> Samples:
    """``bao agent`` with ``static_secret_render_interval`` = ``interval_s`` (None: its
    default). With the default, one sample is written right after a render: it measures
    the whole re-read period."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = "agent-default" if interval_s is None else f"agent-{interval_s:g}s"
    path, target = f"bench/propagation/{name}", workdir / f"{name}.key"
    first = key_value()
    vault.put(path, {"api_key": first})
    config = workdir / f"{name}.hcl"
    interval = None if interval_s is None else f"{interval_s:g}s"
    config.write_text(_agent_config(vault, path, target, interval))
    with (workdir / f"{name}.log").open("wb") as log:
        agent = subprocess.Popen(
            [str(BAO), "agent", f"-config={config}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            cwd=workdir,
        )
    try:
        _wait_for(target, first, time.monotonic(), WAIT_S)
        if interval_s is None:
            timeout = AGENT_DEFAULT_S * 1.5
            return _sample(vault, None, path, target, count=count, spread_s=0, timeout=timeout)
        return _sample(vault, None, path, target, count=count, spread_s=interval_s, timeout=WAIT_S)
    finally:
        agent.terminate()
        agent.wait(10)
