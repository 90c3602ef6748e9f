"""The benchmark's one table: what was measured, the figure, the target, met or not."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
from dataclasses import dataclass, field

from bench.delivery import Samples
from bench.exposition import Exposition
from bench.footprint import Footprint
from bench.rig import Fleet
from bench.sweep import SweepResult

Row = tuple[str, str, str, str]


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def _n(keys: int) -> str:
    return f"{keys:,}"


@dataclass
class Issue12:
    """What the table of issue 12 needs, gathered during the run."""

    footprint: Footprint | None = None
    footprint_30s: Footprint | None = None
    """The issue's CPU row is defined at ``poll_interval: 30s``."""
    render: Exposition | None = None
    commands: dict[str, list[float]] = field(default_factory=dict)
    propagation: Samples | None = None
    default_poll_s: float = 5.0


class Table:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[Row] = []
        self.issue = Issue12()

    def _add(self, what: str, result: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append((what, result, target, _verdict(met) if target else ""))

    def seeded(self, fleet: Fleet) -> None:
        rate = len(fleet.values) / fleet.seed_s if fleet.seed_s else 0
        self._add(
            f"seed {_n(len(fleet.values))} secrets into OpenBao",
            f"{fleet.seed_s:.1f} s ({rate:,.0f}/s)",
        )

    def sweep(self, r: SweepResult) -> None:
        target = 1.15 if r.concurrency == 32 and r.keys >= 10000 else None
        self._add(
            f"verification sweep, {_n(r.keys)} keys (concurrency {r.concurrency}, "
            f"{r.latency_s * 1000:g} ms)",
            f"{r.wall_s:.1f} s = {r.ratio:.2f} x limit {r.limit_s:.1f} s; "
            f"{r.valid:,} valid, {r.requests:,} requests, CPU {r.cpu_s:.1f} s",
            "<= 1.15 x" if target else "",
            r.ratio <= target if target else None,
        )

    def footprint(self, f: Footprint) -> None:
        if f.poll_interval == "30s":
            self.issue.footprint_30s = f
        elif self.issue.footprint is None or f.keys >= self.issue.footprint.keys:
            self.issue.footprint = f
        n = _n(f.keys)
        start = "first start, no state" if self.args.from_scratch else "restart"
        self._add(f"daemon first poll, {n} keys ({start})", f"{f.first_poll_s:.1f} s")
        self._add(f"daemon resident memory, {n} keys", f"{f.rss_mib:.0f} MiB")
        idle = "n/a (no idle moment seen)" if f.idle_cpu_pct is None else f"{f.idle_cpu_pct:.2f} %"
        interval = "default" if f.poll_interval is None else f.poll_interval
        self._add(
            f"daemon CPU, {n} keys, poll_interval {interval}",
            f"{f.average_cpu_pct:.1f} % of a core on average; {idle} between polls",
        )
        if f.cycles:
            requests = statistics.median(c.requests for c in f.cycles)
            seconds = statistics.median(c.seconds for c in f.cycles)
            self._add(
                f"Vault poll cost per cycle, {n} keys",
                f"{requests:,.0f} requests in {seconds:.2f} s (median of {len(f.cycles)} polls)",
            )
        else:
            self._add(f"Vault poll cost per cycle, {n} keys", "no whole poll observed")
        self._add(
            f"/metrics over HTTP from the daemon, {n} keys",
            f"{f.metrics_bytes / 2**20:.1f} MiB in {f.metrics_fetch_ms:.0f} ms",
        )

    def exposition(self, e: Exposition) -> None:
        if not e.compact:
            self.issue.render = e
        mode = "compact" if e.compact else "full"
        self._add(
            f"/metrics render in-process, {_n(e.keys)} keys, metrics_per_key {mode}",
            f"{e.render_ms:.0f} ms, {e.bytes / 2**20:.1f} MiB, {e.lines:,} lines",
        )

    def commands(self, found: dict[str, list[float]]) -> None:
        self.issue.commands = found
        labels = {
            "rotate": "`rotator rotate` -> new key in the file sink",
            "post": "POST /api/v1/keys/NAME/rotate -> new key in the file sink",
            "help": "`rotator --help`, start to finish",
            "status": "`rotator status` (a one-key daemon), start to finish",
            "python": "`python -c pass` (the interpreter alone)",
        }
        for name, label in labels.items():
            ms = sorted(x * 1000 for x in found[name])
            self._add(label, f"median {statistics.median(ms):.0f} ms (n={len(ms)})")

    def propagation(self, what: str, s: Samples, *, default: bool = False) -> None:
        if default:
            self.issue.propagation = s
        self._add(
            f"propagation Vault write -> file: {what}",
            f"median {s.median:.2f} s, p95 {s.p95:.2f} s (n={len(s.seconds)})",
        )

    def agent_default_not_measured(self, seconds: float) -> None:
        self._add(
            "propagation Vault write -> file: OpenBao Agent, default",
            f"up to {seconds:.0f} s (documented default re-read; not measured, "
            "see --agent-default-samples)",
        )

    def render(self) -> str:
        header = ("measurement", "result", "target", "met")
        return "\n".join(
            [
                f"# rotator scale benchmark: {os.cpu_count()} CPUs, "
                f"{platform.python_version()}, stand-in latency {self.args.latency * 1000:g} ms",
                *_grid(header, list(self.rows)),
                "",
                "# issue 12: today (docs/performance.md before), goal, now",
                *_grid(("", "today", "goal", "now", "met"), self.issue_rows()),
            ]
        )

    def issue_rows(self) -> list[tuple[str, ...]]:
        i, args = self.issue, self.args
        rows: list[tuple[str, ...]] = []
        f = i.footprint
        if f is not None:
            n, at10k = f.keys, f.keys >= 10000
            pages = math.ceil(n / 100)
            requests = statistics.median(c.requests for c in f.cycles) if f.cycles else None
            rows.append(
                (
                    f"Vault requests per poll cycle, {_n(n)} keys on OpenBao",
                    "10,163 (10,000 keys)",
                    f"<= {pages + 10:,} (a page per 100 keys or fewer, plus changes)",
                    "no whole poll seen" if requests is None else f"{requests:,.0f}",
                    _verdict(None if requests is None else requests <= pages + 10),
                )
            )
            # The issue defines this row at poll_interval 30s; the default is shown beside it
            # because the propagation goal is met at the default, not at 30s.
            f30 = i.footprint_30s
            rows.append(
                (
                    f"daemon CPU on average, {_n(f30.keys if f30 else n)} keys, poll_interval 30s",
                    "50 % of a core (10,000 keys, 30s)",
                    "<= 3 %",
                    "not measured (--quick)" if f30 is None else f"{f30.average_cpu_pct:.1f} %",
                    _verdict(None if f30 is None else f30.average_cpu_pct <= 3),
                )
            )
            rows.append(
                (
                    f"daemon CPU on average, {_n(n)} keys, poll_interval "
                    f"{i.default_poll_s:g}s (the default)",
                    "-",
                    "<= 3 % (if the default is to keep the goal above)",
                    f"{f.average_cpu_pct:.1f} %",
                    _verdict(f.average_cpu_pct <= 3),
                )
            )
            limit = n * args.latency / args.concurrency
            start = "no state" if args.from_scratch else "state in Vault"
            rows.append(
                (
                    f"first poll after a restart, {_n(n)} keys ({start})",
                    "156 s (10,000 keys)",
                    f"<= 1.3 x {limit:.1f} s = {1.3 * limit:.1f} s",
                    f"{f.first_poll_s:.1f} s = {f.first_poll_s / limit:.2f} x",
                    _verdict(f.first_poll_s <= 1.3 * limit),
                )
            )
            rows.append(
                (
                    f"resident memory, {_n(n)} keys",
                    "140 MiB (10,000 keys)",
                    "<= 110 MiB (10,000 keys)",
                    f"{f.rss_mib:.0f} MiB",
                    _verdict(f.rss_mib <= 110 if at10k else None),
                )
            )
        e = i.render
        if e is not None:
            rows.append(
                (
                    f"/metrics render, {_n(e.keys)} keys, full",
                    "214 ms (10,000 keys)",
                    "<= 120 ms (10,000 keys)",
                    f"{e.render_ms:.0f} ms",
                    _verdict(e.render_ms <= 120 if e.keys >= 10000 else None),
                )
            )
        c = {k: statistics.median(v) * 1000 for k, v in i.commands.items()}
        if c:
            slowest = max(c["help"], c["status"])
            rows.append(
                (
                    "`rotator --help` / `rotator status` start-up",
                    "~200 ms",
                    "<= 100 ms",
                    f"{c['help']:.0f} / {c['status']:.0f} ms (python alone {c['python']:.0f})",
                    _verdict(slowest <= 100),
                )
            )
            rows.append(
                (
                    "`rotator rotate` -> new key in the file sink",
                    "677 ms",
                    "<= 300 ms median",
                    f"{c['rotate']:.0f} ms",
                    _verdict(c["rotate"] <= 300),
                )
            )
        p = i.propagation
        if p is not None:
            rows.append(
                (
                    f"propagation Vault write -> sink, defaults (poll {i.default_poll_s:g}s)",
                    "~15 s + verification (30s poll)",
                    "median <= 3 s",
                    f"median {p.median:.2f} s, p95 {p.p95:.2f} s (n={len(p.seconds)})",
                    _verdict(p.median <= 3),
                )
            )
        return rows


def _grid(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out
