"""The benchmark's one table: what was measured, the figure, the target, met or not."""

from __future__ import annotations

import argparse
import os
import platform
import statistics

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


class Table:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[Row] = []

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
        n = _n(f.keys)
        start = "first start, no state" if self.args.from_scratch else "restart"
        self._add(f"daemon first poll, {n} keys ({start})", f"{f.first_poll_s:.1f} s")
        self._add(
            f"daemon resident memory, {n} keys",
            f"{f.rss_mib:.0f} MiB",
            "< 150 MiB" if f.keys >= 10000 else "",
            f.rss_mib < 150,
        )
        idle = "n/a (no idle moment seen)" if f.idle_cpu_pct is None else f"{f.idle_cpu_pct:.2f} %"
        self._add(
            f"daemon CPU idle between polls, {n} keys",
            f"{idle} of a core over {f.idle_s:.0f} s; {f.average_cpu_pct:.1f} % average "
            "with polls every 30 s",
            "< 2 %",
            f.idle_cpu_pct is not None and f.idle_cpu_pct < 2,
        )
        full = [c for c in f.cycles if c.requests >= f.keys]
        if full:
            requests = statistics.median(c.requests for c in full)
            seconds = statistics.median(c.seconds for c in full)
            self._add(
                f"Vault poll cost per cycle, {n} keys",
                f"{requests:,.0f} requests in {seconds:.1f} s (median of {len(full)} cycles)",
            )
        else:
            self._add(f"Vault poll cost per cycle, {n} keys", "no full cycle observed")
        self._add(
            f"/metrics over HTTP from the daemon, {n} keys",
            f"{f.metrics_bytes / 2**20:.1f} MiB in {f.metrics_fetch_ms:.0f} ms",
        )

    def exposition(self, e: Exposition) -> None:
        mode = "compact" if e.compact else "full"
        self._add(
            f"/metrics render in-process, {_n(e.keys)} keys, metrics_per_key {mode}",
            f"{e.render_ms:.0f} ms, {e.bytes / 2**20:.1f} MiB, {e.lines:,} lines",
            "< 250 ms" if e.keys >= 10000 else "",
            e.render_ms < 250,
        )

    def propagation(self, what: str, s: Samples, target_s: float | None = None) -> None:
        self._add(
            f"propagation Vault write -> file: {what}",
            f"median {s.median:.2f} s, p95 {s.p95:.2f} s (n={len(s.seconds)})",
            f"median < {target_s:g} s" if target_s else "",
            s.median < target_s if target_s else None,
        )

    def agent_default_not_measured(self, seconds: float) -> None:
        self._add(
            "propagation Vault write -> file: OpenBao Agent, default",
            f"up to {seconds:.0f} s (documented default re-read; not measured, "
            "see --agent-default-samples)",
        )

    def render(self) -> str:
        header = ("measurement", "result", "target", "met")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(4)]
        line = "  ".join("-" * w for w in widths)
        out = [
            f"# rotator scale benchmark: {os.cpu_count()} CPUs, {platform.python_version()}, "
            f"stand-in latency {self.args.latency * 1000:g} ms",
            "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
            line,
        ]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in self.rows]
        return "\n".join(out)
