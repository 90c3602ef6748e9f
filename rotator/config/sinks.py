"""A key's ``sinks:`` (file, http, vault) and their ``reload:`` actions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from rotator.config.common import CaCert, Section


class SignalReload(Section):
    signal: str = "HUP"
    pid_file: Path


class CommandReload(Section):
    command: list[str] = Field(min_length=1)
    pass_key_env: str | None = None
    """Name of an environment variable to hand the key to the command; none by default."""
    timeout_seconds: float = Field(default=30, gt=0)


class HttpReload(Section):
    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    ca_cert: CaCert = None
    allow_insecure: bool = False
    timeout_seconds: float = Field(default=10, gt=0)


Reload = SignalReload | CommandReload | HttpReload


class FileSinkSettings(Section):
    type: Literal["file"]
    path: Path
    format: Literal["raw", "env", "json"] = "raw"
    mode: int = 0o600
    owner: str | int | None = None
    group: str | int | None = None
    reload: Reload | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                return int(v, 8)
            except ValueError as exc:
                raise ValueError(f"mode must be octal like 0600, got {v!r}") from exc
        return v

    @field_validator("mode")
    @classmethod
    def _mode_range(cls, v: int) -> int:
        if not 0 <= v <= 0o777:
            raise ValueError("mode must be between 0000 and 0777")
        return v


class HttpSinkSettings(Section):
    type: Literal["http"]
    url: str
    method: str = "PUT"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = '{"api_key": "{api_key}"}'
    ca_cert: CaCert = None
    allow_insecure: bool = False
    timeout_seconds: float = Field(default=10, gt=0)


class VaultSinkSettings(Section):
    type: Literal["vault"]
    path: str
    mount: str | None = None
    """KV v2 mount; defaults to ``vault.kv_mount``."""


SinkSettings = Annotated[
    FileSinkSettings | HttpSinkSettings | VaultSinkSettings, Field(discriminator="type")
]
