"""``expiry:``: key lifetime and the warn/critical bands."""

from __future__ import annotations

from pydantic import Field, model_validator

from rotator.config.common import Section


class ExpirySettings(Section):
    max_lifetime_days: int = Field(default=365, ge=1, le=3650)
    warn_days: int = Field(default=30, ge=0)
    critical_days: int = Field(default=7, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ExpirySettings:
        if self.critical_days > self.warn_days:
            raise ValueError("critical_days must not exceed warn_days")
        return self
