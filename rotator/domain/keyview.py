"""What the API, the CLI and the metrics show of one key: a value, rebuilt as things happen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rotator.domain.model import Status


@dataclass(frozen=True)
class KeyView:
    """The last known state of one key, as the API, the CLI and the metrics show it."""

    name: str
    status: Status = Status.UNKNOWN
    active_version: int | None = None
    latest_version: int | None = None
    expires_at: datetime | None = None
    expiry_assumed: bool | None = None
    last_check_at: datetime | None = None
    last_rotation_at: datetime | None = None
    fingerprint: str | None = None
    problem: str | None = None
    """Why the key cannot be read or verified, when it cannot (never the key itself)."""
    last_result: str | None = None
    previous_still_valid: bool | None = None

    def days_left(self, now: datetime) -> float | None:
        if self.expires_at is None:
            return None
        return round((self.expires_at - now).total_seconds() / 86400, 2)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "name": self.name,
            "status": self.status.value,
            "active_version": self.active_version,
            "latest_version": self.latest_version,
            "expires_at": iso(self.expires_at),
            "expiry_assumed": self.expiry_assumed,
            "days_left": self.days_left(now),
            "last_check_at": iso(self.last_check_at),
            "last_rotation_at": iso(self.last_rotation_at),
            "fingerprint": self.fingerprint,
            "problem": self.problem,
            "last_result": self.last_result,
            "previous_still_valid": self.previous_still_valid,
        }
