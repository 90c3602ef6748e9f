"""Intake link tokens and what the key's state keeps of them: pure functions, no I/O.

A token is ``<key name>.<43 URL-safe characters>`` (256 random bits). The key name in front
lets a request find its key's state with one Vault read instead of a search through every
key; it is no secret (the page names the integration anyway). Only the token's SHA-256 is
stored, so a reader of Vault (or of a backup) cannot use an open link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime

RANDOM_BYTES = 32
_TOKEN = re.compile(r"^([a-z0-9-]{1,63})\.([A-Za-z0-9_-]{43})$")
MAX_OPEN = 5
"""Open links kept per key; creating another drops the oldest."""


@dataclass(frozen=True)
class Link:
    sha256: str
    expires_at: datetime
    failures: int = 0


def new_token(name: str) -> str:
    return f"{name}.{secrets.token_urlsafe(RANDOM_BYTES)}"


def key_of(token: str) -> str | None:
    """The key a well-formed token names; None for anything else (never looked up)."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(token: str) -> str:
    """The form's ``csrf`` value: derived from the token, so any instance can check it and
    nobody without the link can make one."""
    return hmac.new(token.encode(), b"rotator-intake-csrf", hashlib.sha256).hexdigest()


def csrf_ok(token: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(csrf_for(token), given)


def find(links: list[Link], token: str) -> Link | None:
    wanted = digest(token)
    return next((link for link in links if hmac.compare_digest(link.sha256, wanted)), None)


def usable(links: list[Link], now: datetime, max_failures: int) -> list[Link]:
    """The links still open: not expired, not out of attempts."""
    return [link for link in links if link.expires_at > now and link.failures < max_failures]


def add(links: list[Link], token: str, expires_at: datetime) -> list[Link]:
    return [*links, Link(digest(token), expires_at)][-MAX_OPEN:]


def without(links: list[Link], link: Link) -> list[Link]:
    return [other for other in links if other.sha256 != link.sha256]


def failed(links: list[Link], link: Link) -> list[Link]:
    return [replace(o, failures=o.failures + 1) if o.sha256 == link.sha256 else o for o in links]


def encode(links: list[Link]) -> str | None:
    if not links:
        return None
    rows = [
        {"sha256": x.sha256, "expires_at": x.expires_at.isoformat(), "failures": x.failures}
        for x in links
    ]
    return json.dumps(rows, separators=(",", ":"))


def decode(text: str | None) -> list[Link]:
    """What :func:`encode` wrote; an entry that cannot be read is dropped (its link is dead),
    never a reason to fail the key's state."""
    if not text:
        return []
    try:
        rows = json.loads(text)
    except ValueError:
        return []
    links = []
    for row in rows if isinstance(rows, list) else []:
        try:
            at = datetime.fromisoformat(row["expires_at"])
            sha = str(row["sha256"])
            failures = int(row.get("failures", 0))
        except (TypeError, KeyError, ValueError, AttributeError):
            continue
        if re.fullmatch(r"[0-9a-f]{64}", sha):
            links.append(Link(sha, at if at.tzinfo else at.replace(tzinfo=UTC), failures))
    return links
