"""The daemon's settings: one typed object, one section per concern (contract: Configuration).

Secrets never live in this file: tokens and ids are read from files or the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rotator.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/rotator/rotator.yaml")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``7d``; a bare number is seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"not a duration (use e.g. 30s, 15m, 1h, 7d): {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _env(name: str, default: str | None = None) -> Any:
    return lambda: os.environ.get(name) or default


# --- Vault ---------------------------------------------------------------------------------


class TokenAuth(_Model):
    method: Literal["token"] = "token"
    token_file: Path | None = None
    """File holding the token; without it ``$VAULT_TOKEN`` is used."""


class AppRoleAuth(_Model):
    method: Literal["approle"]
    role_id_file: Path
    secret_id_file: Path
    mount_path: str = "approle"


class KubernetesAuth(_Model):
    method: Literal["kubernetes"]
    role: str
    jwt_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    mount_path: str = "kubernetes"


VaultAuth = Annotated[TokenAuth | AppRoleAuth | KubernetesAuth, Field(discriminator="method")]


class VaultSettings(_Model):
    address: str = Field(default_factory=_env("VAULT_ADDR", "http://127.0.0.1:8200"))
    namespace: str | None = Field(default_factory=_env("VAULT_NAMESPACE"))
    ca_cert: Path | None = Field(default_factory=_env("VAULT_CACERT"))
    auth: VaultAuth = Field(default_factory=TokenAuth)
    kv_mount: str = "secret"
    state_path: str = "mistral-rotator/state"
    timeout_seconds: float = Field(default=10, gt=0)

    @field_validator("address")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("kv_mount", "state_path")
    @classmethod
    def _strip_slashes(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("must not be empty")
        return v


# --- Mistral -------------------------------------------------------------------------------


class MistralSettings(_Model):
    base_url: str = "https://api.mistral.ai"
    model: str = "mistral-large-latest"
    timeout_seconds: float = Field(default=10, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    """Extra attempts after a transient answer (429, 5xx, timeout) within one verification."""
    max_concurrency: int = Field(default=8, ge=1, le=256)
    max_requests_per_second: float = Field(default=5, gt=0)
    ca_cert: Path | None = None
    allow_insecure: bool = False
    """Permit plain http:// to a host other than loopback."""

    @model_validator(mode="after")
    def _tls_unless_loopback(self) -> MistralSettings:
        check_plain_http(self.base_url, self.allow_insecure)
        return self


def check_plain_http(url: str, allow_insecure: bool) -> None:
    """Refuse ``http://`` to anything but loopback unless ``allow_insecure`` says so."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} must start with http:// or https://")
    if url.startswith("https://") or allow_insecure:
        return
    # The host as the HTTP client will see it: ``http://127.0.0.1:80@evil.example/`` goes to
    # evil.example, whatever a hand-written pattern would make of it.
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        raise ValueError("not a valid URL") from None
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError("plain http:// is only allowed to loopback; set allow_insecure: true")


# --- Schedule, expiry, server, rotation ----------------------------------------------------


class ScheduleSettings(_Model):
    poll_interval: Duration = timedelta(seconds=30)
    verify_interval: Duration = timedelta(hours=1)

    @field_validator("poll_interval", "verify_interval")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return v


class ExpirySettings(_Model):
    max_lifetime_days: int = Field(default=365, ge=1)
    warn_days: int = Field(default=30, ge=0)
    critical_days: int = Field(default=7, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ExpirySettings:
        if self.critical_days > self.warn_days:
            raise ValueError("critical_days must not exceed warn_days")
        return self


def _listen(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT, got {v!r}")
    return v


Listen = Annotated[str, BeforeValidator(_listen)]


class ServerSettings(_Model):
    metrics_listen: Listen = "0.0.0.0:9102"
    admin_listen: Listen = "127.0.0.1:8080"
    admin_token_file: Path | None = None
    """Without it, ``$ROTATOR_ADMIN_TOKEN``."""
    admin_insecure_loopback: bool = False
    metrics_per_key: Literal["full", "compact"] = "full"
    """``compact`` (for thousands of keys): status as one ``mistral_key_status_code`` series;
    load deploy/prometheus/alerts-compact.yml instead of alerts.yml."""


class RotationSettings(_Model):
    sink_attempts: int = Field(default=3, ge=1, le=10)
    """Tries per sink before a rotation is undone."""
    retry_backoff: Duration = timedelta(seconds=1)
    """First wait between sink attempts and after a transient verification; doubles."""
    max_backoff: Duration = timedelta(minutes=10)
    previous_check_for: Duration = timedelta(days=7)
    """How long the replaced key is still verified, to tell ops it is live."""
    lease: Duration = timedelta(seconds=60)
    """How long a rotation in progress locks the key for other instances."""


# --- Sinks ---------------------------------------------------------------------------------


class SignalReload(_Model):
    signal: str = "HUP"
    pid_file: Path


class CommandReload(_Model):
    command: list[str] = Field(min_length=1)
    pass_key_env: str | None = None
    """Name of an environment variable to hand the key to the command; none by default."""
    timeout_seconds: float = Field(default=30, gt=0)


class HttpReload(_Model):
    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    ca_cert: Path | None = None
    allow_insecure: bool = False
    timeout_seconds: float = Field(default=10, gt=0)


Reload = SignalReload | CommandReload | HttpReload


class FileSinkSettings(_Model):
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


class HttpSinkSettings(_Model):
    type: Literal["http"]
    url: str
    method: str = "PUT"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = '{"api_key": "{api_key}"}'
    ca_cert: Path | None = None
    allow_insecure: bool = False
    timeout_seconds: float = Field(default=10, gt=0)


class VaultSinkSettings(_Model):
    type: Literal["vault"]
    path: str
    mount: str | None = None
    """KV v2 mount; defaults to ``vault.kv_mount``."""


SinkSettings = Annotated[
    FileSinkSettings | HttpSinkSettings | VaultSinkSettings, Field(discriminator="type")
]

# --- Keys ----------------------------------------------------------------------------------

KEY_NAME = re.compile(r"^[a-z0-9-]{1,63}$")


class KeySettings(_Model):
    name: str = Field(pattern=KEY_NAME.pattern)
    vault_path: str
    sinks: list[SinkSettings] = Field(default_factory=list)

    @field_validator("vault_path")
    @classmethod
    def _path(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("must not be empty")
        return v


class DiscoverSettings(_Model):
    prefix: str
    sinks: list[SinkSettings] = Field(default_factory=list)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return v.strip("/") + "/"


class Settings(_Model):
    vault: VaultSettings = Field(default_factory=VaultSettings)
    mistral: MistralSettings = Field(default_factory=MistralSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    expiry: ExpirySettings = Field(default_factory=ExpirySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    rotation: RotationSettings = Field(default_factory=RotationSettings)
    keys: list[KeySettings] = Field(default_factory=list)
    discover: DiscoverSettings | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[str] = set()
        for key in self.keys:
            if key.name in seen:
                raise ValueError(f"key name {key.name!r} appears more than once")
            seen.add(key.name)
        if not self.keys and self.discover is None:
            raise ValueError("no keys: give 'keys' or 'discover'")
        return self


# --- Loading -------------------------------------------------------------------------------


def config_path(explicit: str | Path | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("ROTATOR_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        # Pydantic puts a tagged union's tag into the location: not a field the user wrote.
        if (
            i > 0
            and isinstance(part, str)
            and part in ("file", "http", "vault")
            and (isinstance(loc[i - 1], int))
        ):
            continue
        if isinstance(part, str) and (part.startswith(("function-", "tagged-union["))):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        problems.append(f"{_where(err['loc'])}: {msg}")
    return problems


def parse_settings(data: object) -> Settings:
    """Validate already-parsed YAML; raise ConfigError listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping of sections"])
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate the YAML file at ``path`` (or the default location)."""
    where = config_path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: not valid YAML ({exc})"]) from None
    return parse_settings(data)
