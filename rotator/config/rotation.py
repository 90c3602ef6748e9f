"""``rotation:``: sink attempts, backoff, the rotation lease."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from rotator.config.common import Duration, Section


class RotationSettings(Section):
    sink_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per sink before a rotation is undone."""
    retry_backoff: Duration = timedelta(seconds=1)
    """First wait between sink attempts and after a transient verification; doubles (each
    wait is drawn from its upper half: ``rotator.core.backoff``)."""
    max_backoff: Duration = timedelta(minutes=10)
    """The longest of those waits."""
    previous_check_for: Duration = timedelta(days=7)
    """How long the replaced key is still verified, to tell ops it is live."""
    lease: Duration = timedelta(seconds=60)
    """How long a rotation in progress locks the key for other instances."""

    @field_validator("lease", "retry_backoff")
    @classmethod
    def _not_zero(cls, v: timedelta) -> timedelta:
        if v.total_seconds() <= 0:
            raise ValueError("must be more than 0s")
        return v
