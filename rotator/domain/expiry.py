"""When a key stops working, and which warning band it is in. Pure functions over values."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from rotator.config.expiry import ExpirySettings
from rotator.errors import BadSecret


class Band(enum.IntEnum):
    """Ordered so that crossing a threshold means moving to a higher band."""

    OK = 0
    WARN = 1
    CRITICAL = 2
    EXPIRED = 3


@dataclass(frozen=True, slots=True)
class Expiry:
    at: datetime
    assumed: bool
    beyond_max: bool = False
    """Declared more than max_lifetime_days after creation: kept, but almost always a typo."""

    def days_left(self, now: datetime) -> float:
        return (self.at - now).total_seconds() / 86400


def parse_expires_at(value: str, path: str = "") -> datetime:
    """ISO 8601 date (end of that day is not assumed: midnight UTC) or date-time; UTC if naive."""
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadSecret(path, "expires_at", "is not an ISO 8601 date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def compute_expiry(
    declared: str | None, created_at: datetime, settings: ExpirySettings, path: str = ""
) -> Expiry:
    limit = created_at + timedelta(days=settings.max_lifetime_days)
    if not declared:
        return Expiry(at=limit, assumed=True)
    at = parse_expires_at(declared, path)
    return Expiry(at=at, assumed=False, beyond_max=at > limit + timedelta(days=1))


def band(expiry: Expiry, now: datetime, settings: ExpirySettings) -> Band:
    left = expiry.days_left(now)
    if left <= 0:
        return Band.EXPIRED
    if left < settings.critical_days:
        return Band.CRITICAL
    if left < settings.warn_days:
        return Band.WARN
    return Band.OK
