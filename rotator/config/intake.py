"""``intake:`` (the key intake page and reminders) and a key's ``owner:``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from rotator.config.common import Duration, Listen, Section, check_plain_http

EMAIL = r"^[^@\s]+@[^@\s]+$"


class OwnerSettings(Section):
    """Who hands over the key's next generation: reminders go to them, in their language."""

    email: str | None = Field(default=None, pattern=EMAIL)
    language: Literal["en", "de", "it"] | None = None


class SmtpSettings(Section):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, populate_by_name=True
    )

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    from_: str = Field(alias="from", pattern=EMAIL)
    username_file: Path | None = None
    password_file: Path | None = None
    """Read at every send, so renewed credentials need no restart."""
    ca_cert: Path | None = None
    timeout_seconds: float = Field(default=20, gt=0)


class WebhookSettings(Section):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    """``${env:NAME}`` and ``${file:PATH}`` are replaced at each send."""
    ca_cert: Path | None = None
    allow_insecure: bool = False
    timeout_seconds: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _tls_unless_loopback(self) -> WebhookSettings:
        check_plain_http(self.url, self.allow_insecure)
        return self


class NotifySettings(Section):
    at: tuple[Literal["warn", "critical"], ...] = ("warn", "critical")
    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None
    check_interval: Duration = timedelta(minutes=5)
    retry_backoff: Duration = timedelta(minutes=1)
    """First wait after a failed reminder; doubles up to ``max_backoff``."""
    max_backoff: Duration = timedelta(hours=1)


class IntakeSettings(Section):
    listen: Listen = "127.0.0.1:8090"
    public_url: str | None = None
    """Links are ``{public_url}/intake/{token}``; default ``http://`` + the bound address."""
    link_ttl: Duration = timedelta(days=7)
    max_failed_attempts: int = Field(default=5, ge=1, le=100)
    notify: NotifySettings | None = None

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v

    @field_validator("link_ttl")
    @classmethod
    def _ttl(cls, v: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= v <= timedelta(days=90):
            raise ValueError("must be between 1m and 90d")
        return v
