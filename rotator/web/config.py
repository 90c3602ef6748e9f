"""``server.web_config_file``: the web configuration format of Prometheus' exporter-toolkit.

The file every exporter reads with ``--web.config.file``: ``tls_server_config``,
``http_server_config`` and ``basic_auth_users``. What Python's ``ssl`` cannot do the way Go
does is refused with a sentence naming the field, never silently weakened:

- ``client_auth_type`` ``RequestClientCert`` and ``RequireAnyClientCert`` accept client
  certificates without verifying them; Python's ``ssl`` verifies every certificate it asks
  for, so only ``NoClientCert``, ``VerifyClientCertIfGiven`` and
  ``RequireAndVerifyClientCert`` are offered.
- ``curve_preferences``: Python's ``ssl`` cannot choose the key-exchange groups.
- ``cert``, ``key``, ``client_ca`` (PEM inline) and ``rate_limit``: not supported; use the
  ``*_file`` settings.
- ``cipher_suites`` takes the names Go's ``tls.CipherSuites()`` lists; the TLS 1.3 ones are
  accepted and, as in Go, change nothing (TLS 1.3 suites are not configurable).
- ``http_server_config.http2`` is accepted; the listeners speak HTTP/1.1.

Relative paths are relative to the web config file's directory, as in exporter-toolkit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rotator.errors import ConfigError

TlsVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
VERSION_ORDER = ("TLS10", "TLS11", "TLS12", "TLS13")

GO_CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
"""Go's secure TLS 1.0-1.2 suites (``tls.CipherSuites()``) and their OpenSSL names."""
GO_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)

SUPPORTED_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
UNVERIFIED_AUTH_TYPES = ("RequestClientCert", "RequireAnyClientCert")
HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
)
BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")
_INLINE = "inline PEM is not supported here: put it in a file and use {0}_file"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Model):
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: TlsVersionName = "TLS12"
    max_version: TlsVersionName = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()
    cert: None = None
    key: None = None
    client_ca: None = None

    @field_validator("cert", "key", "client_ca", mode="before")
    @classmethod
    def _no_inline(cls, v: object, info: Any) -> None:
        if v is not None:
            raise ValueError(_INLINE.format(info.field_name))

    @field_validator("client_auth_type")
    @classmethod
    def _auth_type(cls, v: str) -> str:
        if v == "":
            return "NoClientCert"
        if v in UNVERIFIED_AUTH_TYPES:
            raise ValueError(
                f"{v} (a client certificate taken without verifying it) is not supported: "
                "Python's ssl verifies every client certificate it asks for; use "
                "RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
            )
        if v not in SUPPORTED_AUTH_TYPES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_AUTH_TYPES)}, got {v!r}")
        return v

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, name in enumerate(v):
            if name not in GO_CIPHER_SUITES and name not in GO_TLS13_SUITES:
                raise ValueError(
                    f"[{i}] {name!r} is not a cipher suite this server can offer "
                    f"(one of: {', '.join(GO_CIPHER_SUITES)})"
                )
        return v

    @field_validator("curve_preferences")
    @classmethod
    def _curves(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if v:
            raise ValueError(
                "not supported: Python's ssl cannot choose the key-exchange groups; remove it "
                "(OpenSSL's defaults, X25519 first, are used)"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        verifying = self.client_auth_type != "NoClientCert"
        if verifying and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifying and self.client_ca_file is not None:
            raise ValueError(
                "client_ca_file is set but client_auth_type is NoClientCert: set "
                "client_auth_type: RequireAndVerifyClientCert"
            )
        if self.client_allowed_sans and self.client_auth_type != "RequireAndVerifyClientCert":
            raise ValueError(
                "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert"
            )
        if VERSION_ORDER.index(self.min_version) > VERSION_ORDER.index(self.max_version):
            raise ValueError(f"min_version {self.min_version} is above max_version")
        return self

    def resolved(self, base: Path) -> TlsServerConfig:
        """Relative paths taken from ``base`` (the web config file's directory)."""
        ca = self.client_ca_file
        return self.model_copy(
            update={
                "cert_file": base / self.cert_file,
                "key_file": base / self.key_file,
                "client_ca_file": None if ca is None else base / ca,
            }
        )

    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p)


class HttpServerConfig(_Model):
    http2: bool = True
    """Accepted for compatibility; the listeners speak HTTP/1.1."""
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if name not in HEADERS:
                raise ValueError(f"header {name!r} is not supported (one of: {', '.join(HEADERS)})")
            low = value.lower()
            if name == "X-Frame-Options" and value and low not in ("deny", "sameorigin"):
                raise ValueError(f"X-Frame-Options must be deny or sameorigin, got {value!r}")
            if name == "X-Content-Type-Options" and value and low != "nosniff":
                raise ValueError(f"X-Content-Type-Options must be nosniff, got {value!r}")
        return {name: value for name, value in v.items() if value}


class WebConfig(_Model):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    rate_limit: None = None

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _no_rate_limit(cls, v: object) -> None:
        if v is not None:
            raise ValueError("not supported: put a rate limit in front (a proxy) if you need one")

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt(cls, v: dict[str, str]) -> dict[str, str]:
        for user, hashed in v.items():
            if not user or ":" in user:
                raise ValueError(f"{user!r} is not a user name (empty or with ':')")
            if not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed):
                # Never the value: a hash is a secret too.
                raise ValueError(
                    f"{user}: not a bcrypt hash (make one with: htpasswd -nBC 10 '' | tr -d ':\\n')"
                )
        return v


def parse_web_config(data: object, base: Path) -> WebConfig:
    """Validate parsed YAML; ``ValueError`` listing every ``field: reason``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("(top level): must be a mapping")
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(_problems(exc))) from None
    if config.tls_server_config is not None:
        config = config.model_copy(
            update={"tls_server_config": config.tls_server_config.resolved(base)}
        )
    return config


def read_web_config(path: Path) -> WebConfig:
    """Read and validate ``path``; ``ValueError`` with a sentence naming the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read ({reason})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({_yaml_where(exc)})") from None
    return parse_web_config(data, path.parent)


def config_error(path: Path, exc: Exception) -> ConfigError:
    return ConfigError([f"server.web_config_file ({path}): {exc}"])


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    return f"{problem} at line {mark.line + 1}" if mark is not None else problem


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        problems.append(f"{where}: {msg}")
    return problems
