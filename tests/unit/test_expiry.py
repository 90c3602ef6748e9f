"""Expiry: declared or assumed, the beyond-maximum flag, warning bands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.config.expiry import ExpirySettings
from rotator.domain.expiry import Band, band, compute_expiry, parse_expires_at
from rotator.errors import BadSecret

CREATED = datetime(2026, 3, 1, 12, tzinfo=UTC)
S = ExpirySettings()


def test_assumed_is_creation_plus_max_lifetime() -> None:
    e = compute_expiry(None, CREATED, S)
    assert e.assumed and e.at == CREATED + timedelta(days=365)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-09-01", datetime(2026, 9, 1, tzinfo=UTC)),
        ("2026-09-01T10:00:00", datetime(2026, 9, 1, 10, tzinfo=UTC)),
        ("2026-09-01T10:00:00Z", datetime(2026, 9, 1, 10, tzinfo=UTC)),
        ("2026-09-01T12:00:00+02:00", datetime(2026, 9, 1, 10, tzinfo=UTC)),
    ],
)
def test_declared_dates_and_datetimes(text: str, expected: datetime) -> None:
    e = compute_expiry(text, CREATED, S)
    assert not e.assumed and e.at == expected and not e.beyond_max


def test_declared_beyond_maximum_is_kept_but_flagged() -> None:
    e = compute_expiry("2028-03-01", CREATED, S)
    assert e.beyond_max and e.at == datetime(2028, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["tomorrow", "2026-13-01", "01/09/2026"])
def test_malformed_expiry_names_the_field(bad: str) -> None:
    with pytest.raises(BadSecret) as err:
        parse_expires_at(bad, "mistral/a")
    assert err.value.field == "expires_at" and bad not in str(err.value)


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [
        (31, Band.OK),
        (30.5, Band.OK),
        (29, Band.WARN),
        (7.5, Band.WARN),
        (6, Band.CRITICAL),
        (0.01, Band.CRITICAL),
        (0, Band.EXPIRED),
        (-3, Band.EXPIRED),
    ],
)
def test_bands(days_left: float, expected: Band) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    e = compute_expiry((now + timedelta(days=days_left)).isoformat(), CREATED, S)
    assert band(e, now, S) is expected
