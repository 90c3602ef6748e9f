"""The Admin API's and minting's series (contract: "Mistral's Admin API"), in the daemon's
registry, shown on ``/metrics`` with the fleet-wide ones."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

from rotator.adapters.metrics.registry import Metrics
from rotator.core.inventory import Inventory

MINT_RESULTS = ("minted", "failed", "orphan_deleted")


class AdminMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.admin_up = Gauge(
            "mistral_admin_up", "1 when the Admin API accepted the admin key last time.", registry=r
        )
        self.org_expiry = Gauge(
            "mistral_org_key_expiry_timestamp_seconds",
            "Expiry of every key of the organization that has one (Unix seconds).",
            ["key_id", "name", "workspace", "managed"],
            registry=r,
        )
        self.expiry_mismatch = Gauge(
            "mistral_key_expiry_mismatch",
            "1 when Vault's expires_at disagrees with Mistral's expiration_date by over a day.",
            ["key"],
            registry=r,
        )
        self.mints = Counter("mistral_key_mints", "Mints by result.", ["key", "result"], registry=r)
        self.revoked = Counter(
            "mistral_key_previous_revoked",
            "Replaced keys deleted in Mistral.",
            ["key"],
            registry=r,
        )
        self._metrics = metrics
        # Unknown until the first answer: NaN, so that MistralAdminApiFailing (== 0) cannot
        # fire for a daemon that has not asked yet.
        self.admin_up.set(float("nan"))
        metrics.add_fleet(
            self.admin_up, self.org_expiry, self.expiry_mismatch, self.mints, self.revoked
        )

    def up(self, up: bool) -> None:
        self.admin_up.set(1 if up else 0)

    def add_key(self, key: str) -> None:
        """Zeros, so that alerts on increase() see the first failure."""
        for result in MINT_RESULTS:
            self.mints.labels(key=key, result=result).inc(0)
        self.revoked.labels(key=key).inc(0)

    def remove_key(self, key: str) -> None:
        for result in MINT_RESULTS:
            with contextlib.suppress(KeyError):
                self.mints.remove(key, result)
        for metric in (self.revoked, self.expiry_mismatch):
            with contextlib.suppress(KeyError):
                metric.remove(key)

    def mint(self, key: str, result: str) -> None:
        self.mints.labels(key=key, result=result).inc()

    def previous_revoked(self, key: str) -> None:
        self.revoked.labels(key=key).inc()
        self._metrics.previous_still_valid.labels(key=key).set(0)

    def inventory(self, inventory: Inventory) -> None:
        self.org_expiry.clear()
        for row in inventory.rows:
            at = row.record.expires_at
            if at is None:
                continue
            self.org_expiry.labels(
                key_id=row.record.key_id,
                name=row.record.name,
                workspace=row.record.workspace_name or row.record.workspace_id or "",
                managed="true" if row.managed else "false",
            ).set(at.timestamp())
        for match in inventory.matches:
            self.expiry_mismatch.labels(key=match.name).set(1 if match.mismatch else 0)
