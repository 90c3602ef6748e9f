"""``basic_auth_users``: HTTP basic auth against bcrypt hashes, for ``/metrics``.

Every check that is not already known good costs one bcrypt comparison, for an unknown user
too (against a hash of the same cost), so the time of a refusal says nothing about which
user names exist. A success is remembered under an HMAC of user and password (a key made at
start, never stored) so that a scrape every few seconds does not pay bcrypt each time; as
in exporter-toolkit. bcrypt runs in a worker thread: the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable

import bcrypt
from starlette.types import ASGIApp, Receive, Scope, Send

from rotator.logs import get_logger

log = get_logger(__name__)

MAX_PASSWORD_BYTES = 72
"""bcrypt looks at no more; a longer password is refused, as Go's bcrypt does."""
MAX_REMEMBERED = 64


class BasicAuthUsers:
    def __init__(self, hashes: dict[str, str]) -> None:
        self._hashes = {user: hashed.encode() for user, hashed in hashes.items()}
        cost = max((int(h.split("$")[2]) for h in hashes.values()), default=4)
        self._stand_in = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._key = secrets.token_bytes(32)
        self._good: set[bytes] = set()

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def check(self, user: str, password: str) -> bool:
        """Blocking (bcrypt): call it from a worker thread."""
        raw = password.encode()
        digest = hmac.new(self._key, user.encode() + b"\0" + raw, hashlib.sha256).digest()
        if digest in self._good:
            return True
        hashed = self._hashes.get(user)
        matched = bcrypt.checkpw(raw[:MAX_PASSWORD_BYTES], hashed or self._stand_in)
        ok = matched and hashed is not None and len(raw) <= MAX_PASSWORD_BYTES
        if ok:
            if len(self._good) >= MAX_REMEMBERED:
                self._good.clear()
            self._good.add(digest)
        return ok


def credentials(header: bytes | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header, None if absent or malformed."""
    if not header or header[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class BasicAuth:
    """401 unless the request carries a known user and password; ``users()`` is read per
    request, so a reloaded web config applies at once. No users: everyone passes."""

    def __init__(self, app: ASGIApp, users: Callable[[], BasicAuthUsers | None]) -> None:
        self.app = app
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        users = self.users()
        if scope["type"] != "http" or not users:
            await self.app(scope, receive, send)
            return
        given = credentials(dict(scope["headers"]).get(b"authorization"))
        if given is not None and await asyncio.to_thread(users.check, *given):
            await self.app(scope, receive, send)
            return
        # As the admin API's refusals: who, where; never what was sent (a mistyped password).
        caller = (scope.get("client") or ("-",))[0]
        event = "metrics.auth_missing" if given is None else "metrics.auth_refused"
        log.warning(event, caller=caller, path=scope["path"])
        body = b"Unauthorized\n"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", b'Basic realm="mistral-key-rotator"'),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
