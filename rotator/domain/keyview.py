"""What the API, the CLI and the metrics show of one key: a value, rebuilt as things happen."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from rotator.domain.model import Status


@dataclass(frozen=True, slots=True)
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
        """Every field, JSON-ready (ISO dates, enum values), with ``days_left`` as of ``now``
        after ``expiry_assumed``: the shape of the API's ``KeyOut`` and of ``check --json``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            out[f.name] = value
            if f.name == "expiry_assumed":
                out["days_left"] = self.days_left(now)
        return out
