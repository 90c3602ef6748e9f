"""How long a new key takes to reach the running integration.

Measures, against a real ``rotator run`` daemon (poll_interval 2s by default), an OpenBao dev
server and the Mistral stand-in, all on loopback:

- **vault write**: from a KV v2 write of a new valid key (what ``bao kv put`` does) until the
  new value is in the daemon's file sink;
- **rotator stage**: from starting ``rotator stage`` (a subprocess: it verifies the key, then
  writes it to Vault) until the new value is in the file sink.

Each sample starts at a random moment of the poll cycle, as an operator's write would.
Reuses the test fixtures (``tests/fixtures``), so it needs the dev extra installed.

    .venv/bin/python bench/propagation.py [--samples 10] [--poll 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rotator.demo.standin import MistralStandIn  # noqa: E402
from tests.fixtures.daemon import (  # noqa: E402
    DaemonProcess,
    KeyKit,
    daemon_config,
    new_key_value,
    sink_file,
)
from tests.fixtures.openbao import OpenBaoServer, write_private  # noqa: E402

NAME = "portal"


def wait_for_content(path: Path, expected: str, timeout: float) -> float:
    """monotonic() when ``path`` first holds ``expected`` (checked every 2 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.read_text() == expected:
                return time.monotonic()
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"{path} did not get the new key within {timeout:g}s")


def sample(
    poll_s: float, path: Path, write: Callable[[], str], rng: random.Random
) -> tuple[float, float]:
    """(seconds until the file holds the new key, seconds the write itself took)."""
    time.sleep(rng.uniform(0, poll_s))
    started = time.monotonic()
    value = write()
    written = time.monotonic()
    arrived = wait_for_content(path, value + "\n", timeout=poll_s * 3 + 30)
    return arrived - started, written - started


def stage_writer(daemon: DaemonProcess, kit: KeyKit, standin: MistralStandIn) -> Callable[[], str]:
    def write() -> str:
        value = new_key_value()
        kit.values.append(value)
        standin.set_key(value, "valid")
        proc = subprocess.run(
            [sys.executable, "-m", "rotator", "stage", NAME, "--config", str(daemon.config_path)],
            input=value + "\n",
            capture_output=True,
            text=True,
            env=daemon.base_env(),
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"rotator stage failed: {proc.stderr.strip()}")
        return value

    return write


def row(label: str, results: list[tuple[float, float]]) -> str:
    total = sorted(t for t, _ in results)
    write = statistics.median(w for _, w in results)
    cells = [statistics.median(total), total[0], total[-1], write]
    return f"| {label:<14} | {len(total):>2} | " + " | ".join(f"{c:7.3f}" for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--poll", type=float, default=2.0, help="poll_interval in seconds")
    parser.add_argument("--seed", type=int, default=None, help="for the random start moments")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="rotator-bench-") as tmp, MistralStandIn() as standin:
        workdir = Path(tmp)
        (workdir / "bao").mkdir()
        openbao = OpenBaoServer.dev(workdir / "bao")
        daemon: DaemonProcess | None = None
        try:
            kit = KeyKit(openbao, standin, "mistral/bench")
            kit.put(NAME)
            token = write_private(workdir / "admin-token", "bench-admin-token-0123456789")
            config = daemon_config(
                workdir,
                openbao,
                standin,
                kit,
                [NAME],
                admin_token_file=token,
                schedule={"poll_interval": f"{args.poll:g}s"},
            )
            daemon = DaemonProcess(workdir, config, token="bench-admin-token-0123456789")
            daemon.start()
            daemon.wait_checked([NAME])
            path = sink_file(daemon, NAME)

            def vault_put() -> str:
                return kit.put(NAME)[1]

            by_vault = [sample(args.poll, path, vault_put, rng) for _ in range(args.samples)]
            staging = stage_writer(daemon, kit, standin)
            by_stage = [sample(args.poll, path, staging, rng) for _ in range(args.samples)]
        finally:
            if daemon is not None:
                daemon.stop()
            openbao.stop()

    print(f"New key to file sink, poll_interval {args.poll:g}s (seconds; loopback, stand-in)")
    print("| from           |  n |  median |     min |     max | write took (median) |")
    print("|----------------|----|---------|---------|---------|---------------------|")
    print(row("vault write", by_vault))
    print(row("rotator stage", by_stage))


if __name__ == "__main__":
    main()
