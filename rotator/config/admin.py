"""``mistral.admin`` (Mistral's Admin API) and ``mint`` (``keys[].mint``, ``discover.mint``);
contract: "Mistral's Admin API".

The admin key is a secret: it is never in this file, but read from ``key_file`` or
``$MISTRAL_ADMIN_API_KEY`` by :func:`read_admin_key`, and registered with the log scrubber.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rotator.config.common import CaCert, Duration, Section, check_plain_http
from rotator.errors import ConfigError
from rotator.logs import REDACTOR
from rotator.secretfile import SecretFileError, read_secret_file

ADMIN_KEY_ENV = "MISTRAL_ADMIN_API_KEY"
TEMPLATE_FIELDS = frozenset({"date", "name"})


class AdminApiSettings(Section):
    """``mistral.admin``: absent means no Admin API, and nothing changes."""

    base_url: str = "https://api.mistral.ai/v1/admin"
    key_file: Path | None = None
    """File holding the admin key; without it ``$MISTRAL_ADMIN_API_KEY``."""
    auth_header: Literal["authorization", "x-api-key"] = "authorization"
    inventory_interval: Duration = timedelta(hours=1)
    timeout_seconds: float = Field(default=15, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    """Extra attempts after 429, 5xx or no answer."""
    max_requests_per_second: float = Field(default=1, gt=0)
    """The Admin API's own budget, apart from verification's."""
    page_size: int = Field(default=100, ge=1, le=100)
    ca_cert: CaCert = None
    allow_insecure: bool = False

    @field_validator("inventory_interval")
    @classmethod
    def _at_least_a_second(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return v

    @model_validator(mode="after")
    def _tls_unless_loopback(self) -> AdminApiSettings:
        check_plain_http(self.base_url, self.allow_insecure)
        return self


class MintSettings(Section):
    """``keys[].mint`` / ``discover.mint``: create the replacement in Mistral."""

    workspace_uuid: str = Field(min_length=1)
    user_id: str | None = None
    name: str = "{name} {date}"
    """The new key's name; ``{date}`` is the creation date, ``{name}`` the managed key's."""
    lifetime_days: int = Field(default=365, ge=1, le=3650)
    before_expiry: Duration = timedelta(days=30)
    revoke_previous_after: Duration | None = timedelta(days=7)
    verify_warmup: Duration = timedelta(seconds=60)
    """How long a new key may answer 401 while Mistral activates it."""

    @field_validator("name")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        unknown = fields - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{date}} or {{name}}"
            )
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("before_expiry")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be positive")
        return v

    @model_validator(mode="after")
    def _before_within_lifetime(self) -> MintSettings:
        if self.before_expiry >= timedelta(days=self.lifetime_days):
            # Every new key would be due for replacement at once: a mint loop.
            raise ValueError("before_expiry must be shorter than lifetime_days")
        return self

    def key_name(self, managed: str, today: date) -> str:
        return self.name.format(date=today.isoformat(), name=managed)

    def expiration(self, today: date) -> date:
        return today + timedelta(days=self.lifetime_days)


def check_mint_needs_admin(
    admin: AdminApiSettings | None, mints: Sequence[tuple[str, object]]
) -> None:
    """``mint`` anywhere without ``mistral.admin``: every place named in one error."""
    if admin is not None:
        return
    places = [where for where, m in mints if m]
    if places:
        raise ValueError(f"mint needs mistral.admin (the Admin API); set in {', '.join(places)}")


def read_admin_key(settings: AdminApiSettings) -> str:
    """The admin key from ``key_file`` or ``$MISTRAL_ADMIN_API_KEY``; registered for scrubbing."""
    if settings.key_file is not None:
        where = "mistral.admin.key_file"
        try:
            text = read_secret_file(settings.key_file)
        except SecretFileError as exc:
            if exc.reason is not None:
                problem = f"{where}: cannot read {settings.key_file} ({exc.reason})"
                raise ConfigError([problem]) from None
            text = ""  # the same answer as an unset variable, below
    else:
        text = os.environ.get(ADMIN_KEY_ENV, "")
        where = f"${ADMIN_KEY_ENV}"
    REDACTOR.add(text)
    key = text.strip()
    if not key:
        raise ConfigError(
            [f"{where}: no admin key (give mistral.admin.key_file or ${ADMIN_KEY_ENV})"]
        )
    if any(ch.isspace() for ch in key) or not key.isascii() or not key.isprintable():
        raise ConfigError([f"{where}: the admin key holds whitespace or unprintable characters"])
    REDACTOR.add(key)
    return key


def today_utc() -> date:
    return datetime.now(UTC).date()
