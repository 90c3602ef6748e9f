"""The intake's and the reminders' series (contract: Key intake), beside the daemon's own."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

from rotator.adapters.metrics.registry import Metrics

SUBMISSION_RESULTS = ("accepted", "rejected", "refused_link")
UNKNOWN_KEY = "(unknown)"
"""The ``key`` label of a refused link that names no managed key: a label from a visitor's
input would let anyone create series."""


class IntakeMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.submissions = Counter(
            "mistral_intake_submissions",
            "Intake form submissions and refused links, by result.",
            ["key", "result"],
            registry=None,
        )
        self.open_links = Gauge(
            "mistral_intake_open_links",
            "Intake links not used, expired or withdrawn.",
            ["key"],
            registry=None,
        )
        self.link_expiry = Gauge(
            "mistral_intake_link_expiry_timestamp_seconds",
            "When the key's newest open intake link expires (Unix seconds).",
            ["key"],
            registry=None,
        )
        self.reminders = Counter(
            "mistral_key_reminders",
            "Reminders to a key's owner, by channel (email, webhook) and result (sent, failed).",
            ["key", "channel", "result"],
            registry=None,
        )
        collectors = (self.submissions, self.open_links, self.link_expiry, self.reminders)
        for collector in collectors:
            metrics.registry.register(collector)
        metrics.add_fleet(*collectors)

    def set_open(self, key: str, count: int, newest_expiry: float | None) -> None:
        self.open_links.labels(key=key).set(count)
        if newest_expiry is None:
            with contextlib.suppress(KeyError):
                self.link_expiry.remove(key)
        else:
            self.link_expiry.labels(key=key).set(newest_expiry)
