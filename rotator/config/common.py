"""What every section shares: the strict base model, durations, listen addresses, URLs."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from rotator.listen import split_listen

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_DURATION = timedelta(days=3650)
"""Longer than any interval, lease or backoff that makes sense; beyond it date arithmetic
overflows (``99999999999d`` ended in an OverflowError traceback)."""


def parse_duration(value: object) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``7d``; a bare number is seconds. Never negative, infinite
    or longer than ten years."""
    if isinstance(value, timedelta):
        return value
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None:
        raise ValueError(f"not a duration (use e.g. 30s, 15m, 1h, 7d): {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a duration of 0s or more, got {value!r}")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"must be at most {MAX_DURATION.days}d, got {value!r}")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _loadable_ca(path: Path | None) -> Path | None:
    """A CA file that TLS can load now; a missing one is a configuration error, not a
    failure of every call later (an OSError per request, a traceback every poll)."""
    if path is None:
        return None
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as exc:
        raise ValueError(f"cannot read CA certificate {path}: {exc.strerror or exc}") from None
    except ssl.SSLError as exc:
        raise ValueError(f"no CA certificate in {path}: {exc.reason or exc}") from None
    return path


CaCert = Annotated[Path | None, AfterValidator(_loadable_ca)]
"""A ``ca_cert`` setting: checked when the configuration is read (``config validate``)."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def from_env(name: str, default: str | None = None) -> Any:
    return lambda: os.environ.get(name) or default


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


def _listen(v: str) -> str:
    split_listen(v)
    return v


Listen = Annotated[str, BeforeValidator(_listen)]
