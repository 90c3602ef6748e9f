"""The scale benchmark: ``make bench`` (or ``.venv/bin/python bench/run.py --help``).

Starts a real OpenBao dev server and the Mistral stand-in, seeds N tenants' keys, and
prints one table: verification sweeps against the physical limit, what a Vault poll costs,
the daemon's memory and idle CPU, ``/metrics`` at N keys, and how fast a new key version
reaches a file, next to OpenBao Agent. The targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from bench import delivery, exposition, footprint, rotate_latency, sweep  # noqa: E402
from bench.report import Table  # noqa: E402
from bench.rig import Fleet, StandIn, Vault  # noqa: E402
from rotator.config.schedule import ScheduleSettings  # noqa: E402


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(n.replace("_", "")) for n in text.split(",") if n.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--keys wants numbers like 1000,10000: {text!r}"
        ) from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("--keys wants positive numbers")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=_sizes, default=[1000, 10000], help="e.g. 1000,10000")
    parser.add_argument("--latency", type=float, default=0.1, help="stand-in answer delay, s")
    parser.add_argument("--concurrency", type=int, default=32, help="mistral.max_concurrency")
    parser.add_argument(
        "--rate", type=float, default=10000, help="mistral.max_requests_per_second (not the bound)"
    )
    parser.add_argument("--samples", type=int, default=20, help="propagation samples")
    parser.add_argument(
        "--observe", type=float, default=40, help="seconds to watch each daemon after start"
    )
    parser.add_argument(
        "--agent-default-samples",
        type=int,
        default=0,
        help="samples of OpenBao Agent at its default 5-minute re-read (each takes ~5 min)",
    )
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="daemons start with no state in Vault (every key delivered for the first time)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 keys, 5 samples, 25 s of watching: about a minute",
    )
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.samples, args.observe = [1000], 5, 25.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="rotator-bench-") as tmp:
        return run(args, Path(tmp))


def _step(what: str) -> Callable[[], None]:
    started = time.monotonic()
    print(f"... {what}", file=sys.stderr, flush=True)
    return lambda: print(
        f"    done in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True
    )


def run(args: argparse.Namespace, workdir: Path) -> int:
    table = Table(args)
    done = _step("OpenBao dev server, seeding")
    vault = Vault(workdir)
    fleets = {n: Fleet.planned(f"bench/tenants-{n}", n) for n in args.keys}
    for fleet in fleets.values():
        vault.seed(fleet)
        if not args.from_scratch:
            footprint.seed_state(vault, fleet)
        table.seeded(fleet)
    done()
    standin = StandIn(
        workdir, args.latency, [v for f in fleets.values() for v in f.values.values()]
    )
    try:
        for n, fleet in fleets.items():
            done = _step(f"verification sweep of {n} keys")
            table.sweep(
                sweep.run_sweep(
                    vault,
                    standin,
                    fleet,
                    concurrency=args.concurrency,
                    rate=args.rate,
                    log_file=workdir / f"sweep-{n}.log",
                )
            )
            done()
        for n, fleet in fleets.items():
            done = _step(f"daemon with {n} discovered keys ({args.observe:g}s watched)")
            table.footprint(
                footprint.measure(
                    workdir / f"daemon-{n}", vault, standin, fleet, observe_s=args.observe
                )
            )
            done()
        if not args.quick:
            # The issue's CPU row is at poll_interval 30s; two whole polls are watched.
            n = max(args.keys)
            observe = max(args.observe, 60.0)
            done = _step(f"daemon with {n} discovered keys, poll_interval 30s ({observe:g}s)")
            table.footprint(
                footprint.measure(
                    workdir / f"daemon-{n}-30s",
                    vault,
                    standin,
                    fleets[n],
                    observe_s=observe,
                    poll_interval="30s",
                )
            )
            done()
        done = _step(f"/metrics rendered at {max(args.keys)} keys")
        table.exposition(exposition.measure(max(args.keys)))
        table.exposition(exposition.measure(max(args.keys), compact=True))
        done()
        rounds = min(args.samples, 10)
        done = _step(f"rotator rotate, --help and status, {rounds} rounds each")
        table.commands(rotate_latency.measure(workdir / "commands", rounds))
        done()
        default_s = ScheduleSettings().poll_interval.total_seconds()
        table.issue.default_poll_s = default_s
        done = _step(f"propagation, {args.samples} samples each")
        table.propagation(
            f"daemon, default poll_interval {default_s:g}s",
            delivery.daemon_propagation(
                workdir / "propagation-default",
                vault,
                standin,
                count=args.samples,
                poll_interval_s=None,
                spread_s=default_s,
            ),
            default=True,
        )
        table.propagation(
            "daemon, poll_interval 1s",
            delivery.daemon_propagation(
                workdir / "propagation", vault, standin, count=args.samples
            ),
        )
        table.propagation(
            "OpenBao Agent, render interval 1s",
            delivery.agent_propagation(
                workdir / "propagation", vault, count=args.samples, interval_s=1.0
            ),
        )
        if args.agent_default_samples:
            table.propagation(
                "OpenBao Agent, default (5 min)",
                delivery.agent_propagation(
                    workdir / "propagation",
                    vault,
                    count=args.agent_default_samples,
                    interval_s=None,
                ),
            )
        else:
            table.agent_default_not_measured(delivery.AGENT_DEFAULT_S)
        done()
    finally:
        standin.close()
        vault.close()
    print(table.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
