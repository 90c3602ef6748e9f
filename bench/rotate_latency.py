"""Time from ``rotator rotate NAME`` (the CLI, a new process) to the new key in the file sink.

A real OpenBao dev server, the Mistral stand-in on loopback (answering at once), and the daemon
as a subprocess (``tests/fixtures/daemon.py``). Each round stages a new version in Vault,
starts the clock, runs the CLI, and a watcher thread notes when the sink file first holds the
new key. The same is measured with a plain HTTP POST to the admin API, to show how much of it
is the CLI's own start-up.

    .venv/bin/python -m bench.rotate_latency [--rounds 10]
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rotator.demo.standin import MistralStandIn  # noqa: E402
from tests.fixtures.daemon import DaemonProcess, KeyKit, sink_file, start_daemon  # noqa: E402
from tests.fixtures.openbao import OpenBaoServer  # noqa: E402

NAME = "bench-key"


def watch(path: Path, value: str, seen: list[float], stop: threading.Event) -> None:
    """Note the first moment ``path`` holds ``value`` (polls every 0.5 ms)."""
    while not stop.is_set():
        try:
            if path.read_text().strip() == value:
                seen.append(time.perf_counter())
                return
        except OSError:
            pass
        time.sleep(0.0005)


def one_round(daemon: DaemonProcess, kit: KeyKit, trigger: Callable[[], None]) -> float:
    _, value = kit.put(NAME)
    seen: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(sink_file(daemon, NAME), value, seen, stop))
    watcher.start()
    started = time.perf_counter()
    trigger()
    watcher.join(30)
    stop.set()
    if not seen:
        raise RuntimeError(f"the new key never reached the sink:\n{daemon.tail()}")
    return seen[0] - started


def via_cli(daemon: DaemonProcess) -> None:
    done = daemon.cli("rotate", NAME)
    if done.returncode != 0:
        raise RuntimeError(f"rotator rotate failed: {done.stdout}{done.stderr}")


def via_http(daemon: DaemonProcess) -> None:
    answer = daemon.api("POST", f"/api/v1/keys/{NAME}/rotate")
    if answer.json().get("result") != "rotated":
        raise RuntimeError(answer.text)


def summary(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return (
        f"{label:<28} median {statistics.median(ms):7.1f} ms   "
        f"min {ms[0]:7.1f}   max {ms[-1]:7.1f}   (n={len(ms)})"
    )


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False, env=env, timeout=60)
    return time.perf_counter() - began


def measure(workdir: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds of each round: ``rotate`` (the CLI) and ``post`` (plain HTTP) until the new key
    is in the file; ``help`` and ``status`` (against this one-key daemon) start to finish."""
    workdir.mkdir(parents=True, exist_ok=True)
    # As installed (pip byte-compiles a package): a checkout run with PYTHONDONTWRITEBYTECODE
    # would compile every rotator module from source in every command timed here.
    compileall.compile_dir(ROOT / "rotator", quiet=1)
    bao = OpenBaoServer.dev(workdir)
    try:
        with MistralStandIn() as standin:
            kit = KeyKit(bao, standin, f"mistral/bench-{uuid.uuid4().hex[:8]}")
            kit.put(NAME)
            (workdir / "daemon").mkdir()
            daemon = start_daemon(workdir / "daemon", bao, standin, kit, [NAME])
            try:
                found: dict[str, list[float]] = {
                    "rotate": [
                        one_round(daemon, kit, lambda: via_cli(daemon)) for _ in range(rounds)
                    ],
                    "post": [
                        one_round(daemon, kit, lambda: via_http(daemon)) for _ in range(rounds)
                    ],
                }
                rotator = [sys.executable, "-m", "rotator"]
                env = {**daemon.base_env(), "ROTATOR_URL": daemon.admin_url}
                env["ROTATOR_ADMIN_TOKEN"] = daemon.token or ""
                found["help"] = [_timed([*rotator, "--help"]) for _ in range(rounds)]
                found["status"] = [_timed([*rotator, "status"], env) for _ in range(rounds)]
                found["python"] = [_timed([sys.executable, "-c", "pass"]) for _ in range(rounds)]
                return found
            finally:
                daemon.stop()
    finally:
        bao.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    found = measure(Path(tempfile.mkdtemp(prefix="rotate-latency-")), args.rounds)
    print(summary("rotator rotate -> file", found["rotate"]))
    print(summary("POST .../rotate -> file", found["post"]))
    print(summary("rotator --help", found["help"]))
    print(summary("rotator status (1 key)", found["status"]))
    print(summary("python -c pass", found["python"]))


if __name__ == "__main__":
    main()
