"""``keys:`` (each managed key) and ``discover:`` (every secret under a prefix)."""

from __future__ import annotations

from pydantic import Field, field_validator

from rotator.config.admin import MintSettings
from rotator.config.common import Section
from rotator.config.intake import OwnerSettings
from rotator.config.sinks import SinkSettings
from rotator.domain.model import KEY_NAME


class KeySettings(Section):
    name: str = Field(pattern=KEY_NAME.pattern)
    vault_path: str
    sinks: list[SinkSettings] = Field(default_factory=list)
    mint: MintSettings | None = None
    owner: OwnerSettings | None = None
    """Key intake: who is reminded before expiry (else the secret's custom_metadata)."""

    @field_validator("vault_path")
    @classmethod
    def _path(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("must not be empty")
        return v


class DiscoverSettings(Section):
    prefix: str
    sinks: list[SinkSettings] = Field(default_factory=list)
    mint: MintSettings | None = None

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return v.strip("/") + "/"
