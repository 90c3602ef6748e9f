"""What every measurement needs: a real OpenBao dev server, the Mistral stand-in, many keys.

Seeding 10,000 secrets one hvac call at a time takes minutes; :func:`seed` writes them from
a few threads, each with its own keep-alive connection (about 2,000 writes a second here).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rotator.demo.standin import put_key
from tests.fixtures.openbao import BAO, OpenBaoServer, write_private

ROOT = Path(__file__).resolve().parents[1]
SEED_THREADS = 8


def key_value() -> str:
    return secrets.token_hex(16)


def tenant_names(count: int) -> list[str]:
    return [f"tenant-{i:05d}" for i in range(count)]


def clean_env() -> dict[str, str]:
    """The environment for a child process: ours, without Vault/rotator settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "BAO_", "ROTATOR_", "MISTRAL_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class Fleet:
    """Keys seeded under ``prefix`` (a folder of the ``secret`` KV v2 mount)."""

    prefix: str
    values: dict[str, str] = field(default_factory=dict)
    """Name -> key value, all answered ``valid`` by the stand-in."""
    seed_s: float = 0.0

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    @classmethod
    def planned(cls, prefix: str, count: int) -> Fleet:
        return cls(prefix.strip("/"), {n: key_value() for n in tenant_names(count)})


class _DevServer(OpenBaoServer):
    """The fixture's dev server, plus a config file: OpenBao 2 takes audit devices only
    from configuration, not from the API."""

    def __init__(self, workdir: Path, audit_log: Path) -> None:
        super().__init__(workdir, persistent=False)
        self.config = workdir / "audit.hcl"
        self.config.write_text(
            f'audit "file" "bench" {{\n  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n'
        )

    def start(self) -> None:
        args = [str(BAO), "server", "-dev", f"-dev-root-token-id={self.root_token}"]
        args += [f"-dev-listen-address=127.0.0.1:{self.port}", "-dev-no-store-token"]
        args += [f"-config={self.config}"]
        with (self.workdir / "bao.log").open("ab") as log:
            self._process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=clean_env(), cwd=self.workdir
            )
        self.wait_ready()


class Vault:
    """A dev OpenBao server of the benchmark's own, with an audit log: Vault's own count
    of the requests it answered."""

    def __init__(self, workdir: Path) -> None:
        self.audit_log = workdir / "vault-audit.log"
        self.server = _DevServer(workdir, self.audit_log)
        self.server.start()
        self.token_file = write_private(workdir / "vault-token", self.server.root_token)

    @property
    def url(self) -> str:
        return self.server.url

    def seed(self, fleet: Fleet) -> None:
        items = [(fleet.path(n), {"api_key": v}) for n, v in fleet.values.items()]
        started = time.monotonic()
        self.put_many(items)
        fleet.seed_s = time.monotonic() - started

    def put(self, path: str, data: dict[str, str]) -> None:
        self.put_many([(path, data)])

    def put_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        for path, (status, text) in zip(items, self._many("POST", items), strict=True):
            if status != 200:
                raise RuntimeError(f"seeding {path[0]}: HTTP {status} {text[:200]!r}")

    def read_many(self, paths: list[str]) -> list[dict[str, Any]]:
        """The KV v2 ``data`` answer (``data`` and ``metadata``) of each path."""
        answers = []
        for path, (status, text) in zip(paths, self._many("GET", paths), strict=True):
            if status != 200:
                raise RuntimeError(f"reading {path}: HTTP {status} {text[:200]!r}")
            answers.append(json.loads(text)["data"])
        return answers

    def _many(self, method: str, items: list[Any]) -> list[tuple[int, bytes]]:
        """Each item (a path, or a path and data to write) from a few keep-alive threads."""
        local = threading.local()
        host, port = "127.0.0.1", self.server.port
        headers = {"X-Vault-Token": self.server.root_token, "Content-Type": "application/json"}

        def one(item: Any) -> tuple[int, bytes]:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, port, timeout=30)
            path, data = item if method == "POST" else (item, None)
            body = json.dumps({"data": data}) if data is not None else None
            conn.request(method, f"/v1/secret/data/{path}", body=body, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.read()

        with ThreadPoolExecutor(SEED_THREADS) as pool:
            return list(pool.map(one, items))

    def close(self) -> None:
        self.server.stop()


class StandIn:
    """The Mistral stand-in in its own process (see ``bench/standin_proc.py``)."""

    def __init__(self, workdir: Path, latency: float, keys: Iterable[str]) -> None:
        keys_file = write_private(workdir / f"standin-keys-{latency:g}", "\n".join(keys))
        self.latency = latency
        command = ["-m", "bench.standin_proc", "--latency", str(latency), "--keys-file"]
        self._process = subprocess.Popen(
            [sys.executable, *command, str(keys_file)],
            stdout=subprocess.PIPE,
            env=clean_env(),
            cwd=ROOT,
            text=True,
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.close()
            raise RuntimeError("the stand-in did not start")

    def add_key(self, value: str) -> None:
        put_key(self.url, value, "valid")

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/_standin/stats", timeout=30).json()
        return data

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
