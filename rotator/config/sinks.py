"""A key's ``sinks:`` (file, http, vault) and their ``reload:`` actions."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from rotator.config.common import CaCert, Section, check_plain_http


class SignalReload(Section):
    signal: str = "HUP"
    pid_file: Path


def signal_number(name: str) -> signal.Signals:
    """``HUP``, ``SIGHUP``, ``hup`` or a number; ValueError naming it when unknown."""
    text = name.strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text))
        return signal.Signals["SIG" + text.removeprefix("SIG")]
    except (KeyError, ValueError):
        raise ValueError(f"unknown signal {name!r}") from None


def _plain_http_check(url: str, info: ValidationInfo) -> str:
    check_plain_http(url, bool(info.data.get("allow_insecure", False)))
    return url


class CommandReload(Section):
    command: list[str] = Field(min_length=1)
    pass_key_env: str | None = None
    """Name of an environment variable to hand the key to the command; none by default."""
    timeout_seconds: float = Field(default=30, gt=0)


class HttpReload(Section):
    # Before url: the url's check reads it.
    allow_insecure: bool = False
    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    ca_cert: CaCert = None

    _url = field_validator("url")(_plain_http_check)
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

    @field_validator("reload")
    @classmethod
    def _known_signal(cls, v: Reload | None) -> Reload | None:
        # Here, not on SignalReload: a failure there would make pydantic report every
        # other kind of reload's complaints too.
        if isinstance(v, SignalReload):
            try:
                signal_number(v.signal)
            except ValueError as exc:
                raise ValueError(f"signal: {exc}") from None
        return v

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        if not v.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(v)!r}")
        return v

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
    # Before url: the url's check reads it.
    allow_insecure: bool = False
    url: str
    method: str = "PUT"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = '{"api_key": "{api_key}"}'
    ca_cert: CaCert = None

    _url = field_validator("url")(_plain_http_check)
    timeout_seconds: float = Field(default=10, gt=0)


class VaultSinkSettings(Section):
    type: Literal["vault"]
    path: str
    mount: str | None = None
    """KV v2 mount; defaults to ``vault.kv_mount``."""


SinkSettings = Annotated[
    FileSinkSettings | HttpSinkSettings | VaultSinkSettings, Field(discriminator="type")
]
