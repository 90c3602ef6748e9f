"""The Prometheus series of the contract, in a registry of their own (one per daemon)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from rotator import __version__
from rotator.adapters.metrics.keyseries import KeyFamily, OneOfFamily
from rotator.domain.model import Outcome, Status

ROTATION_RESULTS = (Outcome.ROTATED, Outcome.REJECTED, Outcome.FAILED, Outcome.ROLLED_BACK)
COMPONENTS = ("vault", "mistral", "sink", "scheduler", "state")


STATUS_CODES = {
    Status.VALID: 0,
    Status.INVALID: 1,
    Status.BILLING_BLOCKED: 2,
    Status.FORBIDDEN: 3,
    Status.MODEL_UNAVAILABLE: 4,
    Status.RATE_LIMITED: 5,
    Status.UNREACHABLE: 6,
    Status.UNKNOWN: 7,
}
"""``mistral_key_status_code`` in compact mode; 5 and above say nothing about the key.
Fixed numbers: alert rules depend on them."""


class Metrics:
    """``compact``: a key's status as one ``mistral_key_status_code`` series instead of one
    ``mistral_key_status`` series per status, and rotation counters other than
    ``rejected`` (the alerted one) only once they count something: 11 series a key, not 21
    (``server.metrics_per_key``, for fleets of thousands of keys)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, compact: bool = False) -> None:
        self.registry = registry or CollectorRegistry()
        self.compact = compact
        r = self.registry
        self._per_key: list[KeyFamily] = []
        self.expiry = self._key_gauge(
            "mistral_key_expiry_timestamp_seconds", "Expiry of the active version (Unix seconds)."
        )
        self.expiry_assumed = self._key_gauge(
            "mistral_key_expiry_assumed",
            "1 when no expiry was recorded and creation + max_lifetime_days was assumed.",
        )
        self.valid = self._key_gauge(
            "mistral_key_valid", "1 when the last definite verification said valid."
        )
        status = OneOfFamily(
            "mistral_key_status",
            "1 for the key's current status.",
            "status",
            tuple(s.value for s in Status),
        )
        code = KeyFamily(
            "mistral_key_status_code",
            "The key's current status as a number: 0 valid, 1 invalid, 2 billing_blocked, "
            "3 forbidden, 4 model_unavailable, 5 rate_limited, 6 unreachable, 7 unknown.",
            ("key",),
            "gauge",
        )
        self.status = status if compact else self._key_family(status)
        self.status_code = self._key_family(code) if compact else code
        self.last_check = self._key_gauge(
            "mistral_key_last_check_timestamp_seconds", "Last verification attempt (Unix seconds)."
        )
        self.active_version = self._key_gauge(
            "mistral_key_active_version", "Vault version delivered to the sinks."
        )
        self.latest_version = self._key_gauge(
            "mistral_key_latest_version", "Newest live version in Vault."
        )
        self.rotations = self._key_family(
            KeyFamily("mistral_key_rotations", "Rotations by result.", ("key", "result"), "counter")
        )
        self.last_rotation = self._key_gauge(
            "mistral_key_last_rotation_timestamp_seconds", "When the active version last changed."
        )
        self.previous_still_valid = self._key_gauge(
            "mistral_key_previous_still_valid",
            "1 while the replaced key still works: delete it in Mistral's console.",
        )
        self.secret_error = self._key_gauge(
            "mistral_key_secret_error",
            "1 while the key's Vault secret is missing, unreadable or malformed.",
        )
        self.verify_duration = Histogram(
            "mistral_key_verify_duration_seconds",
            "Mistral round trips.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.vault_up = Gauge(
            "rotator_vault_up", "1 when the last Vault call succeeded.", registry=r
        )
        self.vault_token_expiry = Gauge(
            "rotator_vault_token_expiry_timestamp_seconds",
            "When the daemon's Vault token expires (0: never).",
            registry=r,
        )
        self.errors = Counter("rotator_errors", "Errors by component.", ["component"], registry=r)
        self.web_config_reload_errors = Counter(
            "rotator_web_config_reload_errors",
            "Changed web config files (server.web_config_file) that could not be used.",
            registry=r,
        )
        self.web_config_ok = Gauge(
            "rotator_web_config_last_reload_successful",
            "0 while a changed web config file (or its certificates) cannot be used.",
            registry=r,
        )
        self.web_config_ok.set(1)
        self.keys_managed = Gauge("rotator_keys_managed", "Keys under management.", registry=r)
        self.lease_takeovers = Counter(
            "rotator_lease_takeovers",
            "Leases of other instances taken over: run out, too far ahead, or broken by ops.",
            registry=r,
        )
        self.discover_skipped = Gauge(
            "rotator_discover_skipped",
            "Secrets under discover.prefix not managed, by reason.",
            ["reason"],
            registry=r,
        )
        self.build_info = Gauge("rotator_build_info", "Build.", ["version"], registry=r)
        self.build_info.labels(version=__version__).set(1)
        for component in COMPONENTS:
            self.errors.labels(component=component)
        self._fleet: list[Collector] = [
            self.verify_duration,
            self.vault_up,
            self.vault_token_expiry,
            self.errors,
            self.web_config_reload_errors,
            self.web_config_ok,
            self.keys_managed,
            self.lease_takeovers,
            self.discover_skipped,
            self.build_info,
        ]

    def add_fleet(self, *collectors: Collector) -> None:
        """Series registered elsewhere (e.g. the Admin API's) that ``/metrics`` shows too."""
        self._fleet.extend(collectors)

    def _key_gauge(self, name: str, documentation: str, *more: str) -> KeyFamily:
        return self._key_family(KeyFamily(name, documentation, ("key", *more), "gauge"))

    def _key_family(self, family: KeyFamily) -> KeyFamily:
        self.registry.register(family)
        self._per_key.append(family)
        return family

    def exposition(self) -> bytes:
        """``/metrics`` in the text format: what :func:`generate_latest` of the registry
        gives, in a fraction of the time at thousands of keys."""
        out = [generate_latest(_Collectors(self._fleet)).decode()]
        for family in self._per_key:
            family.render(out)
        return "".join(out).encode()

    def web_config_reloaded(self, ok: bool) -> None:
        """A changed web config file was taken (``ok``) or refused."""
        self.web_config_ok.set(1 if ok else 0)
        if not ok:
            self.web_config_reload_errors.inc()

    def add_key(self, key: str) -> None:
        """Create the key's series so that alerts see zeros, not absence."""
        for result in (Outcome.REJECTED,) if self.compact else ROTATION_RESULTS:
            self.rotations.labels(key=key, result=result).inc(0)
        self.set_status(key, Status.UNKNOWN)
        self.secret_error.labels(key=key).set(0)

    def remove_key(self, key: str) -> None:
        for gauge in (
            self.expiry,
            self.expiry_assumed,
            self.valid,
            self.last_check,
            self.active_version,
            self.latest_version,
            self.last_rotation,
            self.previous_still_valid,
            self.secret_error,
            self.status_code,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(key)
        for status in Status:
            _remove(self.status, key, status.value)
        for result in ROTATION_RESULTS:
            _remove(self.rotations, key, result)

    def set_status(self, key: str, status: Status) -> None:
        if self.compact:
            self.status_code.labels(key=key).set(STATUS_CODES[status])
        else:
            for s in Status:
                self.status.labels(key=key, status=s.value).set(1 if s is status else 0)
        if not status.is_transient:
            self.valid.labels(key=key).set(1 if status is Status.VALID else 0)


class _Collectors:
    """The fleet-wide metrics alone, for :func:`generate_latest`."""

    def __init__(self, collectors: list[Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def _remove(metric: KeyFamily, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
