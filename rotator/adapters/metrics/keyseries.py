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
from typing import Literal, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

Kind = Literal["gauge", "counter"]


_SHARED = {float(n): float(n) for n in range(-1, 64)}
"""One float object for each small whole number: most per-key series hold 0, 1 or a version
number, and 250,000 separate floats would take 6 MiB."""


class _Child:
    __slots__ = ("_family", "_slot")

    def __init__(self, family: KeyFamily, slot: Slot) -> None:
        self._family = family
        self._slot = slot

    def set(self, value: float) -> None:
        number = float(value)
        self._family.store(self._slot, _SHARED.get(number, number))

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        family = self._family
        with family.lock:
            number = family.values.get(self._slot, 0.0) + amount
            family.values[self._slot] = _SHARED.get(number, number)
        if not math.isfinite(number):
            family.mark_odd()

    def get(self) -> float:
        return self._family.values.get(self._slot, 0.0)


Slot = str | tuple[str, ...]
"""A series' place in :attr:`KeyFamily.values`: the key's name alone in a family labelled by
the key only (no tuple a series), the tuple of label values otherwise."""


class KeyFamily:
    """One metric family whose series are told apart by ``label_names`` (``key`` first)."""

    def __init__(self, name: str, documentation: str, label_names: tuple[str, ...], kind: Kind):
        self.name = name
        self.documentation = documentation
        self.label_names = label_names
        self.kind = kind
        self.sample_name = f"{name}_total" if kind == "counter" else name
        self.values: dict[Slot, float] = {}
        self.lock = threading.Lock()
        """Writes come from the event loop, renders from the metrics server's thread."""
        self._plain = True
        """No label value needs escaping and every value is finite: the fast rendering."""

    def labels(self, **labels: str) -> _Child:
        try:
            values = tuple(labels[n] for n in self.label_names)
        except KeyError:
            raise ValueError(f"{self.name} takes labels {self.label_names}") from None
        if self._plain and any(_escape(v) is not v for v in values):
            self._plain = False
        return _Child(self, values[0] if len(values) == 1 else values)

    def store(self, slot: Slot, value: float) -> None:
        if not math.isfinite(value):
            self.mark_odd()
        with self.lock:
            self.values[slot] = value

    def mark_odd(self) -> None:
        """An infinite or NaN value: render through the careful path from now on."""
        self._plain = False

    def remove(self, *values: str) -> None:
        """Forget one series; KeyError if there is none (as prometheus_client)."""
        with self.lock:
            del self.values[values[0] if len(self.label_names) == 1 else values]

    def _snapshot(self) -> dict[Slot, float]:
        with self.lock:
            return self.values.copy()

    def _series(self) -> Iterator[tuple[tuple[str, ...], float]]:
        for slot, value in self._snapshot().items():
            yield (slot,) if isinstance(slot, str) else slot, value

    def collect(self) -> Iterator[Metric]:
        family_type = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = family_type(self.name, self.documentation, labels=self.label_names)
        for labels, value in self._series():
            family.add_metric(list(labels), value)
        yield family

    def render(self, out: list[str]) -> None:
        """Append this family in the Prometheus text format (version 0.0.4)."""
        out.append(f"# HELP {self.name} {_escape_help(self.documentation)}\n")
        out.append(f"# TYPE {self.name} {self.kind}\n")
        first, *more = self.label_names
        head = f'{self.sample_name}{{{first}="'
        if not self._plain:
            names = [f'",{n}="' for n in more]
            for labels, value in self._series():
                rest = "".join(n + _escape(v) for n, v in zip(names, labels[1:], strict=True))
                out.append(f'{head}{_escape(labels[0])}{rest}"}} {_number(value)}\n')
            return
        # The usual case, about 20 lines a key: a finite float's repr is the text format's.
        snapshot = self._snapshot()
        if not more:  # most families: one label, the key
            out.extend([f'{head}{k}"}} {v!r}\n' for k, v in snapshot.items()])
            return
        labelled = cast("dict[tuple[str, ...], float]", snapshot)
        if len(more) == 1:  # the key and one more: status, result
            mid = f'",{more[0]}="'
            out.extend([f'{head}{k}{mid}{x}"}} {v!r}\n' for (k, x), v in labelled.items()])
            return
        names = [f'",{n}="' for n in more]
        for labels, value in labelled.items():
            rest = "".join(n + v for n, v in zip(names, labels[1:], strict=True))
            out.append(f'{head}{labels[0]}{rest}"}} {value!r}\n')


class _OneOfChild:
    __slots__ = ("_choice", "_family", "_key")

    def __init__(self, family: OneOfFamily, key: str, choice: str) -> None:
        self._family, self._key, self._choice = family, key, choice

    def set(self, value: float) -> None:
        self._family.put(self._key, self._choice, float(value))

    def get(self) -> float:
        return 1.0 if self._family.chosen.get(self._key, "") == self._choice else 0.0


class OneOfFamily(KeyFamily):
    """A gauge labelled ``key`` and one more label, whose series for a key are 1 for one of
    ``choices`` and 0 for the others (the key's status): one entry a key holds them all, not
    one a series. At 10,000 keys that is 80,000 series in 10,000 entries (about 7 MiB less).
    """

    def __init__(self, name: str, documentation: str, label: str, choices: tuple[str, ...]):
        super().__init__(name, documentation, ("key", label), "gauge")
        self.choices = choices
        self.chosen: dict[str, str | None] = {}
        """Key -> the choice at 1 (None: all at 0)."""

    def labels(self, **labels: str) -> _OneOfChild:  # type: ignore[override]
        try:
            key, choice = (labels[n] for n in self.label_names)
        except KeyError:
            raise ValueError(f"{self.name} takes labels {self.label_names}") from None
        if choice not in self.choices:
            raise ValueError(f"{self.name}: {choice!r} is none of {self.choices}")
        return _OneOfChild(self, key, choice)

    def put(self, key: str, choice: str, value: float) -> None:
        with self.lock:
            if value == 1.0:
                self.chosen[key] = choice
            elif value == 0.0:
                if self.chosen.get(key, choice) == choice:
                    self.chosen[key] = None
            else:
                raise ValueError(f"{self.name} holds 0 or 1, not {value!r}")

    def remove(self, *values: str) -> None:
        with self.lock:
            del self.chosen[values[0]]

    def _series(self) -> Iterator[tuple[tuple[str, ...], float]]:
        with self.lock:
            snapshot = self.chosen.copy()
        for key, chosen in snapshot.items():
            for choice in self.choices:
                yield (key, choice), 1.0 if choice == chosen else 0.0

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.documentation)}\n")
        out.append(f"# TYPE {self.name} {self.kind}\n")
        head = f'{self.sample_name}{{{self.label_names[0]}="'
        label = self.label_names[1]
        # A key's lines differ only by its name and which choice is 1: each possible block
        # is written once, and a key's is one join (a third of the time of a line each).
        blocks = {
            chosen: [
                f'",{label}="{_escape(c)}"}} {"1.0" if c == chosen else "0.0"}\n'
                for c in self.choices
            ]
            for chosen in (*self.choices, None)
        }
        with self.lock:
            snapshot = self.chosen.copy()
        for key, chosen in snapshot.items():
            start = head + _escape(key)
            out.append(start + start.join(blocks[chosen]))


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
