"""``schedule:``: how often Vault is polled and each key verified."""

from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator

from rotator.config.common import Duration, Section


class ScheduleSettings(Section):
    # 5 s: on OpenBao a poll is one detailed-metadata list a page of 1,000 keys (11 requests
    # at 10,000 keys) and a new version arrives in about 3 s (docs/performance.md).
    poll_interval: Duration = timedelta(seconds=5)
    verify_interval: Duration = timedelta(hours=1)

    @field_validator("poll_interval", "verify_interval")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return v
