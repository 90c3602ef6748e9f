"""The daemon's settings: one typed object, one section per concern (contract: Configuration).

Each section is a module of this package; this one holds the root :class:`Settings` and
loading. Secrets never live in the file: tokens and ids are read from files or the
environment.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from rotator.config.admin import check_mint_needs_admin
from rotator.config.common import Section
from rotator.config.expiry import ExpirySettings
from rotator.config.intake import IntakeSettings
from rotator.config.keys import DiscoverSettings, KeySettings
from rotator.config.mistral import MistralSettings
from rotator.config.rotation import RotationSettings
from rotator.config.schedule import ScheduleSettings
from rotator.config.server import ServerSettings
from rotator.config.vault import VaultSettings
from rotator.errors import ConfigError
from rotator.listen import split_listen

DEFAULT_CONFIG_PATH = Path("/etc/rotator/rotator.yaml")


class Settings(Section):
    vault: VaultSettings = Field(default_factory=VaultSettings)
    mistral: MistralSettings = Field(default_factory=MistralSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    expiry: ExpirySettings = Field(default_factory=ExpirySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    rotation: RotationSettings = Field(default_factory=RotationSettings)
    keys: list[KeySettings] = Field(default_factory=list)
    discover: DiscoverSettings | None = None
    intake: IntakeSettings | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        seen: set[str] = set()
        for key in self.keys:
            if key.name in seen:
                raise ValueError(f"key name {key.name!r} appears more than once")
            seen.add(key.name)
        if not self.keys and self.discover is None:
            raise ValueError("no keys: give 'keys' or 'discover'")
        mints = [(f"keys[{i}].mint", k.mint) for i, k in enumerate(self.keys)]
        mints.append(("discover.mint", self.discover.mint if self.discover else None))
        check_mint_needs_admin(self.mistral.admin, mints)
        self._distinct_listeners()
        return self

    def _distinct_listeners(self) -> None:
        """Two listeners on one port would pass validation and fail only at ``run``."""
        listens = [
            ("server.metrics_listen", self.server.metrics_listen),
            ("server.admin_listen", self.server.admin_listen),
        ]
        if self.intake is not None:
            listens.append(("intake.listen", self.intake.listen))
        for i, (field, listen) in enumerate(listens):
            host, port = split_listen(listen)
            for other_field, other in listens[:i]:
                other_host, other_port = split_listen(other)
                either_all = _unspecified(host) or _unspecified(other_host)
                if port and port == other_port and (host == other_host or either_all):
                    raise ValueError(f"{other_field} and {field} both listen on port {port}")


def _unspecified(host: str) -> bool:
    """0.0.0.0 or ::, which take the port on every address."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # a host name


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
