"""The web config file in force, re-read when it or a file it names changes.

:class:`WebConfigWatcher` loads the file at start (a bad file: :class:`ConfigError`, exit 2
naming the field) and then, from :meth:`watch`, compares every few seconds the bytes of the
file and of the certificate, key and CA files it names. Changed and good: the new settings
apply to the next connection (TLS) or request (basic auth, headers). Changed and broken: the
old settings stay, the problem is logged once. ``on_reload(ok)`` hears of each attempt (the
daemon counts ``rotator_web_config_reload_errors_total`` and sets
``rotator_web_config_last_reload_successful``). Switching TLS on or off needs a restart (the
listeners' sockets are TLS or not from the start), so such a change is refused the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rotator.logs import get_logger
from rotator.web.auth import BasicAuthUsers
from rotator.web.config import WebConfig, config_error, read_web_config
from rotator.web.tls import SwitchingContext, server_context

log = get_logger(__name__)

RELOAD_INTERVAL_S = 3.0


@dataclass(frozen=True)
class WebState:
    """One consistent set of settings: replaced as a whole, never changed in place."""

    config: WebConfig = field(default_factory=WebConfig)
    tls: ssl.SSLContext | None = None
    users: BasicAuthUsers | None = None

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        items = self.config.http_server_config.headers.items()
        return [(k.lower().encode(), v.encode()) for k, v in items]

    @property
    def allowed_sans(self) -> tuple[str, ...]:
        tls = self.config.tls_server_config
        return tls.client_allowed_sans if tls else ()


def build_state(path: Path) -> WebState:
    """Read ``path`` and build what it asks for; ``ValueError`` naming the field."""
    config = read_web_config(path)
    tls = None if config.tls_server_config is None else server_context(config.tls_server_config)
    users = BasicAuthUsers(config.basic_auth_users) if config.basic_auth_users else None
    return WebState(config, tls, users)


class WebConfigWatcher:
    """``state``: the settings in force; ``ssl_context``: what listeners hand to asyncio
    (None: plain HTTP). ``path`` None: plain HTTP, no auth, nothing to watch."""

    def __init__(
        self, path: Path | None, *, on_reload: Callable[[bool], None] | None = None
    ) -> None:
        self.path = path
        self.on_reload = on_reload or (lambda ok: None)
        self.state = WebState()
        self._seen = b""
        if path is not None:
            self._seen = fingerprint(path)
            try:
                self.state = build_state(path)
            except ValueError as exc:
                raise config_error(path, exc) from None
        self.ssl_context = None if self.state.tls is None else SwitchingContext(self.state.tls)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def poll(self) -> bool:
        """Re-read if anything changed; True when new settings were taken."""
        if self.path is None:
            return False
        seen = fingerprint(self.path)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            state = build_state(self.path)
            if (state.tls is None) != (self.ssl_context is None):
                raise ValueError("switching TLS on or off needs a restart of the daemon")
        except ValueError as exc:
            log.error(
                "web_config.reload_failed",
                path=str(self.path),
                problem=str(exc),
                action="fix the file; the settings read before stay in force",
            )
            self.on_reload(False)
            return False
        self.state = state
        if self.ssl_context is not None and state.tls is not None:
            self.ssl_context.current = state.tls
        log.info("web_config.reloaded", path=str(self.path), tls=state.tls is not None)
        self.on_reload(True)
        return True

    async def watch(self, stop: asyncio.Event, interval: float = RELOAD_INTERVAL_S) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if not stop.is_set():
                await asyncio.to_thread(self.poll)


def fingerprint(path: Path) -> bytes:
    """A digest of the file and of every file it names (missing ones count as empty)."""
    digest = hashlib.sha256(_read(path))
    try:
        names = build_paths(path)
    except ValueError:
        names = ()
    for name in names:
        digest.update(b"\0" + str(name).encode() + b"\0" + _read(name))
    return digest.digest()


def build_paths(path: Path) -> tuple[Path, ...]:
    tls = read_web_config(path).tls_server_config
    return tls.files() if tls else ()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
