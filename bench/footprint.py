"""A real daemon (``rotator run`` in a subprocess) discovering N keys: its memory, its CPU
while idle between Vault polls, what a poll costs Vault, and its ``/metrics``.

Vault's own audit log counts the requests: a poll cycle is a burst of requests on the
discovered prefix; "idle" is every moment outside those bursts (verifications spread over
``verify_interval`` still happen then, as in production).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.rig import ROOT, Fleet, StandIn, Vault, clean_env
from rotator.adapters.vault.codec import encode_state
from rotator.domain.model import KeyState
from tests.fixtures.openbao import write_private

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class PollCycle:
    requests: int
    seconds: float
    start: float
    end: float


@dataclass
class Footprint:
    keys: int
    first_poll_s: float
    """From start until every key was verified once."""
    rss_mib: float
    idle_cpu_pct: float | None
    idle_s: float
    average_cpu_pct: float
    """Over the whole observation, poll cycles included."""
    cycles: list[PollCycle] = field(default_factory=list)
    metrics_bytes: int = 0
    metrics_fetch_ms: float = 0.0
    poll_interval: str | None = None
    """As configured; None: the default."""


class Daemon:
    """``rotator run`` with its log in a file; the metrics address read from that log."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        config_path = workdir / "rotator.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "daemon.log"
        self._log_offset = 0
        self._verified: set[str] = set()
        command = ["-m", "rotator", "run", "--log-format", "json", "--config"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *command, str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(),
                cwd=ROOT,
            )
        self.started = time.monotonic()
        self.metrics_url = "http://" + self._wait_event("metrics.listening")["address"]

    def _new_lines(self) -> list[str]:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            data = log.read()
        cut = data.rfind(b"\n") + 1
        self._log_offset += cut
        return data[:cut].decode("utf-8", "replace").splitlines()

    def _wait_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self._new_lines():
                if f'"{name}"' in line:
                    event: dict[str, Any] = json.loads(line)
                    return event
            self._check_alive()
            time.sleep(0.05)
        raise TimeoutError(f"no {name} from the daemon; see {self.log_path}")

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the daemon exited ({self.process.returncode}); see {self.log_path}"
            )

    def wait_verified(self, names: set[str], timeout: float) -> float:
        """Seconds from start until every key in ``names`` was verified: ``key.verified``,
        or ``key.rotated`` for a key whose first version was verified and delivered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self._new_lines():
                if '"key.verified"' in line or '"key.rotated"' in line:
                    self._verified.add(json.loads(line)["key"])
            if names <= self._verified:
                return time.monotonic() - self.started
            self._check_alive()
            time.sleep(0.5)
        missing = len(names - self._verified)
        raise TimeoutError(f"{missing} keys not verified in {timeout:g}s; see {self.log_path}")

    def cpu_s(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_MIB

    def fetch_metrics(self) -> tuple[int, float]:
        started = time.monotonic()
        body = httpx.get(f"{self.metrics_url}/metrics", timeout=60).content
        return len(body), (time.monotonic() - started) * 1000

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def daemon_config(
    workdir: Path, vault: Vault, standin: StandIn, fleet: Fleet, poll_interval: str | None
) -> dict[str, Any]:
    token = write_private(workdir / "admin-token", "admin-" + secrets.token_hex(16))
    return {
        "vault": {
            "address": vault.url,
            "auth": {"method": "token", "token_file": str(vault.token_file)},
            "state_path": state_path_of(fleet),
            "timeout_seconds": 30,
        },
        "mistral": {
            "base_url": standin.url,
            "max_concurrency": 32,
            "max_requests_per_second": 10000,
            "retries": 0,
        },
        # No poll_interval: the default, as most operators will run it.
        "schedule": {"verify_interval": "1h"}
        | ({"poll_interval": poll_interval} if poll_interval else {}),
        "server": {
            "metrics_listen": "127.0.0.1:0",
            "admin_listen": "127.0.0.1:0",
            "admin_token_file": str(token),
        },
        "discover": {"prefix": fleet.prefix},
    }


def seed_state(vault: Vault, fleet: Fleet) -> None:
    """Version 1 of every key recorded as delivered: the daemon starts as after a restart."""
    state = encode_state(KeyState(active_version=1, activated_at=datetime.now(UTC)))
    prefix = state_path_of(fleet)
    vault.put_many([(f"{prefix}/{name}", state) for name in fleet.values])


def state_path_of(fleet: Fleet) -> str:
    return f"bench-state/{fleet.prefix.replace('/', '-')}"


def _audit_requests(audit_log: Path, fleet: Fleet, since: float) -> list[tuple[float, bool]]:
    """(time, starts a poll) of each request on the fleet's keys or state after ``since``.

    A poll starts with the first LIST of the prefix (detailed-metadata on OpenBao, plain
    metadata for discovery elsewhere); later pages carry ``after``."""
    keys, folder = "secret/", f"{fleet.prefix}/"
    state_path = f"secret/data/{state_path_of(fleet)}/"
    lists = (f"secret/detailed-metadata/{fleet.prefix}/", f"secret/metadata/{fleet.prefix}/")
    found = []
    with audit_log.open(encoding="utf-8") as log:
        for line in log:
            if '"type":"request"' not in line or (folder not in line and state_path not in line):
                continue
            entry = json.loads(line)
            request = entry["request"]
            path = request["path"]
            if not (path.startswith(keys) and folder in path) and not path.startswith(state_path):
                continue
            at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            if at < since:
                continue
            first = request["operation"] == "list" and path in lists
            found.append((at, first and "after" not in (request.get("data") or {})))
    return sorted(found)


def poll_cycles(requests: list[tuple[float, bool]]) -> list[PollCycle]:
    """Requests grouped by the poll they belong to (from one poll's first LIST to the next);
    the partial polls at either end of the window are left out."""
    cycles: list[PollCycle] = []
    for at, starts in requests:
        if starts:
            cycles.append(PollCycle(0, 0.0, at, at))
        if cycles:
            cycles[-1].requests += 1
            cycles[-1].end = at
    for cycle in cycles:
        cycle.seconds = cycle.end - cycle.start
    return cycles[:-1]


def _idle_cpu(
    samples: list[tuple[float, float]], cycles: list[PollCycle], margin_s: float = 1.0
) -> tuple[float | None, float]:
    """CPU percent over the sampling intervals that touch no poll cycle, and their length."""
    busy, idle_cpu, idle_s = [(c.start - margin_s, c.end + margin_s) for c in cycles], 0.0, 0.0
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        if any(t0 < end and t1 > start for start, end in busy):
            continue
        idle_cpu += c1 - c0
        idle_s += t1 - t0
    return (100 * idle_cpu / idle_s if idle_s else None), idle_s


def measure(
    workdir: Path,
    vault: Vault,
    standin: StandIn,
    fleet: Fleet,
    *,
    observe_s: float,
    poll_interval: str | None = None,
) -> Footprint:
    """Start a daemon on ``fleet``, wait for its first poll, then watch it ``observe_s``."""
    workdir.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(workdir, daemon_config(workdir, vault, standin, fleet, poll_interval))
    try:
        first = daemon.wait_verified(set(fleet.values), timeout=600)
        since = time.time()
        samples = []
        while time.time() - since < observe_s:
            samples.append((time.time(), daemon.cpu_s()))
            time.sleep(0.5)
        samples.append((time.time(), daemon.cpu_s()))
        rss = daemon.rss_mib()
        fetches = [daemon.fetch_metrics() for _ in range(3)]
    finally:
        daemon.stop()
    cycles = poll_cycles(_audit_requests(vault.audit_log, fleet, since))
    idle, idle_s = _idle_cpu(samples, cycles)
    span = samples[-1][0] - samples[0][0]
    return Footprint(
        keys=len(fleet.values),
        first_poll_s=first,
        rss_mib=rss,
        idle_cpu_pct=idle,
        idle_s=idle_s,
        average_cpu_pct=100 * (samples[-1][1] - samples[0][1]) / span,
        cycles=cycles,
        metrics_bytes=fetches[-1][0],
        metrics_fetch_ms=statistics.median(ms for _, ms in fetches),
        poll_interval=poll_interval,
    )
