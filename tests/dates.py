"""Expiry dates for tests that read at any hour and on any date.

A date alone means its midnight (UTC): "200 days ahead" written as a date is 199.4 days
away at 14:00 and the table shows 199 (issue 11, defect 14). A full timestamp a quarter of a
day past the whole days shows the same whole number of days whenever the test runs, and
its date (``[:10]``) is the date the table prints.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def expiry_in(days: int) -> str:
    """ISO 8601 timestamp ``days`` whole days (and six hours) from now, in UTC."""
    return (datetime.now(UTC) + timedelta(days=days, hours=6)).isoformat(timespec="seconds")
