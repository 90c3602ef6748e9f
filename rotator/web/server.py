"""The one HTTP server runner of every listener (metrics, admin API, intake page).

    sock = bind("0.0.0.0:9102", "server.metrics_listen")     # ConfigError if impossible
    web = WebConfigWatcher(settings.server.web_config_file)  # ConfigError if the file is bad
    await serve(asgi_app, sock, web, stop, name="metrics")   # returns once ``stop`` is set

In the daemon one ``WebConfigWatcher`` serves every listener (``bootstrap.open_web_config``;
``web.scheme`` says ``http`` or ``https`` for the URL a listener logs in its ``*.listening``
event, where tests/web/test_daemon_listeners.py finds every listener).

``serve`` runs an ASGI app on an already bound socket in the running event loop, with TLS
when the web config file asks for it (``web.ssl_context``; certificates renewed on disk are
used from the next connection on once ``web.watch(stop)`` runs somewhere, once per daemon)
and the configured ``http_server_config.headers`` on every answer. Basic auth is not applied
here: wrap the app in :class:`rotator.web.auth.BasicAuth` where it belongs (``/metrics``).

HTTP/1.1 with keep-alive (uvicorn's h11 protocol). No listener can be starved:

- there is no connection cap (uvicorn's ``limit_concurrency`` answers 503 to everyone once
  enough sockets sit idle);
- a TLS handshake must finish within ``HANDSHAKE_TIMEOUT_S``;
- from the moment the server waits for a request (a new connection, or the last answer
  sent on a kept-alive one), the whole request, head and body, must arrive within
  ``read_timeout`` (default ``READ_TIMEOUT_S``): a client that sends nothing, or a byte at a
  time, is cut off then, whatever it sends meanwhile. uvicorn's own keep-alive timeout is
  reset by every byte, so it alone would let a slow client stay for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from email.utils import formatdate
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from rotator.errors import ConfigError
from rotator.listen import split_listen
from rotator.logs import get_logger
from rotator.web.tls import peer_allowed
from rotator.web.watch import WebConfigWatcher

log = get_logger(__name__)

READ_TIMEOUT_S = 5.0
HANDSHAKE_TIMEOUT_S = 5.0
GRACEFUL_S = 5.0
"""On stop: how long answers under way may take before their tasks are cancelled."""


def bind(listen: str, field: str) -> socket.socket:
    """A listening socket for ``HOST:PORT`` (``[::1]:PORT`` too); ConfigError naming ``field``."""
    try:
        host, port = split_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([f"{field}: cannot listen on {listen} ({reason})"]) from None


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for reading each request (see module doc)."""

    web: WebConfigWatcher
    read_timeout: float
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not peer_allowed(transport.get_extra_info("peercert"), self.web.state.allowed_sans):
            transport.abort()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        waiting = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
        if not waiting or self.transport.is_closing():
            self._disarm()
        elif self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout, self._cut)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _cut(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.abort()


async def serve(
    app: ASGIApp,
    sock: socket.socket,
    web: WebConfigWatcher,
    stop: asyncio.Event,
    *,
    name: str = "http",
    read_timeout: float = READ_TIMEOUT_S,
    max_head_bytes: int | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until ``stop`` is set; then finish answers under way (for
    ``GRACEFUL_S`` at most) and close the socket. ``max_head_bytes``: a request line and
    headers larger than this are refused (h11's default, 16 KiB, without it)."""
    config = uvicorn.Config(
        _quiet_when_cut(app, stop, name),
        http=_GuardedH11,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=max(1, int(read_timeout)),
        h11_max_incomplete_event_size=max_head_bytes,
    )
    config.load()
    state = ServerState()

    def protocol() -> asyncio.Protocol:
        conn = _GuardedH11(config=config, server_state=state, app_state={})
        conn.web = web
        conn.read_timeout = read_timeout
        return conn

    tls: Any = web.ssl_context
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        protocol,
        sock=sock,
        ssl=tls,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if tls is not None else None,
        backlog=1024,
    )
    log.debug("web.serving", listener=name, address=address(sock), scheme=web.scheme)
    try:
        while not stop.is_set():
            # What uvicorn's own loop does every second: the Date header, plus ours.
            date = (b"date", formatdate(usegmt=True).encode())
            state.default_headers = [date, *web.state.headers]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1)
    finally:
        await _shutdown(server, state)


def _quiet_when_cut(app: ASGIApp, stop: asyncio.Event, name: str) -> ASGIApp:
    """``app``, ending quietly when the stop cuts an answer short (past ``GRACEFUL_S``):
    uvicorn logged that cancellation as "Exception in ASGI application" with a traceback,
    though it is the daemon stopping, not the application failing. The connection is
    already closed under it (see :func:`_shutdown`), so nothing more is sent."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            log.warning("web.answer_cut", listener=name, reason="the daemon stopped")

    return wrapped


async def _shutdown(server: asyncio.Server, state: ServerState) -> None:
    server.close()
    for conn in list(state.connections):
        conn.shutdown()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_drained(state), GRACEFUL_S)
    # The connections first: a cut answer's task then finds its client gone, and uvicorn
    # has nothing to complain about when it ends.
    for conn in list(state.connections):
        transport = getattr(conn, "transport", None)
        if transport is not None:
            transport.abort()
    await asyncio.sleep(0)
    for task in list(state.tasks):
        task.cancel()


async def _drained(state: ServerState) -> None:
    # uvicorn keeps plain sets, nothing to wait on: poll, as uvicorn's own shutdown does.
    while state.connections or state.tasks:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
