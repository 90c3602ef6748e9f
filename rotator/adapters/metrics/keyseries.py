"""Per-key metric families kept as plain floats, rendered straight to the text format.

At 10,000 keys the contract's ~25 series a key are 250,000 series. As prometheus_client
children they took 144 MiB and 2.4 s a scrape (each child holds a lock and a value object,
and every sample is formatted through generic code). Here a series is one dict entry, and
:meth:`KeyFamily.render` writes a family's lines in one pass. :class:`KeyFamily` keeps the
part of prometheus_client's interface the daemon uses: ``labels(...).set/inc/get`` and
``remove(...)``; :meth:`KeyFamily.collect` gives ordinary families for the registry, so
``generate_latest`` and ``get_sample_value`` see the same series.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

Kind = Literal["gauge", "counter"]


class _Child:
    __slots__ = ("_family", "_labels")

    def __init__(self, family: KeyFamily, labels: tuple[str, ...]) -> None:
        self._family = family
        self._labels = labels

    def set(self, value: float) -> None:
        with self._family.lock:
            self._family.values[self._labels] = float(value)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        with self._family.lock:
            values = self._family.values
            values[self._labels] = values.get(self._labels, 0.0) + amount

    def get(self) -> float:
        return self._family.values.get(self._labels, 0.0)


class KeyFamily:
    """One metric family whose series are told apart by ``label_names`` (``key`` first)."""

    def __init__(self, name: str, documentation: str, label_names: tuple[str, ...], kind: Kind):
        self.name = name
        self.documentation = documentation
        self.label_names = label_names
        self.kind = kind
        self.sample_name = f"{name}_total" if kind == "counter" else name
        self.values: dict[tuple[str, ...], float] = {}
        self.lock = threading.Lock()
        """Writes come from the event loop, renders from the metrics server's thread."""

    def labels(self, **labels: str) -> _Child:
        try:
            return _Child(self, tuple(labels[n] for n in self.label_names))
        except KeyError:
            raise ValueError(f"{self.name} takes labels {self.label_names}") from None

    def remove(self, *values: str) -> None:
        """Forget one series; KeyError if there is none (as prometheus_client)."""
        with self.lock:
            del self.values[values]

    def _snapshot(self) -> list[tuple[tuple[str, ...], float]]:
        with self.lock:
            return list(self.values.items())

    def collect(self) -> Iterator[Metric]:
        family_type = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = family_type(self.name, self.documentation, labels=self.label_names)
        for labels, value in self._snapshot():
            family.add_metric(list(labels), value)
        yield family

    def render(self, out: list[str]) -> None:
        """Append this family in the Prometheus text format (version 0.0.4)."""
        out.append(f"# HELP {self.name} {_escape_help(self.documentation)}\n")
        out.append(f"# TYPE {self.name} {self.kind}\n")
        first, *more = self.label_names
        head = f'{self.sample_name}{{{first}="'
        if not more:  # most families: one label, the key
            out.extend(f'{head}{_escape(k)}"}} {_number(v)}\n' for (k,), v in self._snapshot())
            return
        if len(more) == 1:  # the key and one more: status, result
            mid = f'",{more[0]}="'
            out.extend(
                f'{head}{_escape(k)}{mid}{_escape(x)}"}} {_number(v)}\n'
                for (k, x), v in self._snapshot()
            )
            return
        names = [f'",{n}="' for n in more]
        for labels, value in self._snapshot():
            rest = "".join(n + _escape(v) for n, v in zip(names, labels[1:], strict=True))
            out.append(f'{head}{_escape(labels[0])}{rest}"}} {_number(value)}\n')


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _number(value: float) -> str:
    text = repr(value)
    if text[-1] not in "fn":  # a finite float's repr ends in a digit; inf and nan do not
        return text
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
