"""``schedule:``: how often Vault is polled and each key verified."""

from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator

from rotator.config.common import Duration, Section


class ScheduleSettings(Section):
    # 3 s: a new version arrives in about 1.7 s (half the interval, plus verification and
    # delivery); 5 s put the median at the 3 s goal, met or missed by chance. What a poll
    # costs is bounded by its CPU pace whatever the fleet (app/scheduler.py), and on OpenBao
    # it is one detailed-metadata list a page of 1,000 keys (docs/performance.md).
    poll_interval: Duration = timedelta(seconds=3)
    verify_interval: Duration = timedelta(hours=1)

    @field_validator("poll_interval", "verify_interval")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return v
