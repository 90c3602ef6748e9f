"""What the KV v2 secrets hold: a key's secret and the daemon's state, checked field by field.

Pure functions over the JSON Vault returns; no message names a value, only the field.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, get_args, get_type_hints

from rotator.domain.model import KeyState, SecretVersion
from rotator.errors import BadSecret
from rotator.logs import REDACTOR

_OPTIONAL_TEXT = ("expires_at", "key_name", "workspace", "mistral_key_id")


def parse_time(text: str) -> datetime:
    """Vault's RFC 3339 times (nanoseconds, ``Z``) as timezone-aware UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def is_live(version_meta: dict[str, Any], now: datetime) -> bool:
    """Neither destroyed nor deleted; a deletion time in the future (``delete_version_after``)
    is only scheduled, so that version still counts."""
    if version_meta.get("destroyed"):
        return False
    deletion = version_meta.get("deletion_time") or ""
    return not deletion or parse_time(deletion) > now


def live_versions(metadata: dict[str, Any]) -> list[int]:
    now = datetime.now(UTC)
    versions = metadata.get("versions") or {}
    return sorted(int(number) for number, meta in versions.items() if is_live(meta, now))


def parse_secret(path: str, data: object, metadata: dict[str, Any]) -> SecretVersion:
    """Check a key's secret data.

    ``api_key`` loses surrounding whitespace: operators paste keys from Mistral's console
    into ``bao kv put`` or a UI, and a trailing newline is the common accident, never part of
    a key. Whitespace inside the value is refused: that is a broken paste, not a key.
    """
    if not isinstance(data, dict):
        raise BadSecret(path, "data", "is not a map of fields")
    raw = data.get("api_key")
    if raw is None:
        raise BadSecret(path, "api_key", "is missing")
    # Registered before any check: even a rejected value must never reach a log line.
    REDACTOR.add(str(raw))
    if not isinstance(raw, str):
        raise BadSecret(path, "api_key", "must be a string")
    api_key = raw.strip()
    if not api_key:
        raise BadSecret(path, "api_key", "is empty")
    if any(ch.isspace() for ch in api_key):
        raise BadSecret(path, "api_key", "contains whitespace")
    REDACTOR.add(api_key)
    extra: dict[str, str | None] = {}
    for name in _OPTIONAL_TEXT:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise BadSecret(path, name, "must be a string")
        extra[name] = (value.strip() or None) if value is not None else None
    return SecretVersion(
        path=path,
        version=int(metadata["version"]),
        created_at=parse_time(metadata["created_time"]),
        api_key=api_key,
        **extra,
    )


# --- State ---------------------------------------------------------------------------------
#
# Table-driven: each KeyState field has a decoder, chosen by its type unless
# ``STATE_DECODERS`` names one for it. A decoder returns the value or raises ValueError with
# what is wrong; nothing a tampered or corrupted state holds may crash the daemon (a
# ValueError from int("²"), an OverflowError from a date at the end of time).


def _whole_number(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    # ASCII digits only: str.isdigit() accepts "²", which int() then refuses.
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value.strip()):
        return int(value.strip())
    raise ValueError("must be a whole number")


def _truth(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("must be a string")


def _moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        return parse_time(value)
    except (ValueError, OverflowError):
        raise ValueError("must be an ISO 8601 date-time") from None


_BY_TYPE: dict[type, Callable[[object], object]] = {
    bool: _truth,
    int: _whole_number,
    datetime: _moment,
    str: _text,
}

STATE_DECODERS: dict[str, Callable[[object], object]] = {}
"""Decoders for fields whose type alone does not say enough; others go by their type."""


def _decoder(hint: object) -> Callable[[object], object]:
    kinds = get_args(hint) or (hint,)
    return next(_BY_TYPE[t] for t in (bool, int, datetime, str) if t in kinds)


@functools.cache
def _decoders_by_hint() -> dict[str, Callable[[object], object]]:
    # get_type_hints evaluates every annotation: once, not on each of 10,000 state reads
    # at a restart (it was 8 % of the daemon's CPU there).
    return {name: _decoder(hint) for name, hint in get_type_hints(KeyState).items()}


def _state_fields() -> dict[str, Callable[[object], object]]:
    return {
        name: STATE_DECODERS.get(name) or decode for name, decode in _decoders_by_hint().items()
    }


def encode_state(state: KeyState) -> dict[str, Any]:
    """JSON fields: ints, strings, ISO 8601 UTC times; unset fields are left out."""
    out: dict[str, Any] = {}
    for name, value in dataclasses.asdict(state).items():
        if value is None:
            continue
        out[name] = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
    return out


def decode_state(path: str, data: object) -> KeyState:
    """Read back what ``encode_state`` wrote; fields a newer release added are ignored.

    Raises BadSecret naming the first field that cannot be read, never anything else.
    """
    if not isinstance(data, dict):
        raise BadSecret(path, "data", "is not a map of fields")
    values: dict[str, Any] = {}
    for name, decode in _state_fields().items():
        value = data.get(name)
        if value is None or (value == "" and name not in _KEEP_EMPTY):
            continue
        try:
            values[name] = decode(value)
        except ValueError as exc:
            raise BadSecret(path, name, str(exc)) from None
    return KeyState(**values)


_KEEP_EMPTY = frozenset({"namespace"})
"""Fields where "" is a value (the root namespace), not "unset"."""
