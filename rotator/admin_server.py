"""Serving the admin API with uvicorn inside the daemon's own event loop.

The socket is bound before the daemon starts anything else, so a port in use or a missing
token stops start-up with a clear error instead of a daemon without its control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rotator.admin import AdminState, create_app
from rotator.admin_auth import load_token
from rotator.config import Settings
from rotator.errors import ConfigError
from rotator.logs import get_logger

if TYPE_CHECKING:
    from rotator.daemon import App

log = get_logger(__name__)

MAX_BODY_BYTES = 4096
GRACEFUL_S = 5


class BodyLimit:
    """413 for a request body over ``max_bytes``, whether or not Content-Length says so."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body over {self.max_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _EmbeddedServer(uvicorn.Server):
    """The daemon owns SIGTERM/SIGINT; uvicorn must not take them over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, int(port)), family=family)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([f"server.admin_listen: cannot listen on {listen} ({reason})"]) from None


class AdminServer:
    """A bound socket and the token; ``serve`` runs the API until ``stop`` is set."""

    def __init__(self, token: str | None, sock: socket.socket) -> None:
        self.token = token
        self.sock = sock

    @classmethod
    def open(cls, settings: Settings) -> AdminServer:
        """Read the token and bind; ConfigError when either is impossible."""
        token = load_token(settings.server)
        return cls(token, bind(settings.server.admin_listen))

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def close(self) -> None:
        self.sock.close()

    async def serve(self, core: App, stop: asyncio.Event) -> None:
        api = create_app(AdminState(core, self.token, stop))
        config = uvicorn.Config(
            api,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            limit_concurrency=64,
            timeout_graceful_shutdown=GRACEFUL_S,
        )
        server = _EmbeddedServer(config)
        serving = asyncio.create_task(server.serve(sockets=[self.sock]), name="admin-uvicorn")
        log.info("admin.listening", address=self.address, auth="token" if self.token else "none")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Even when cancelled: uvicorn then finishes on its own, within the daemon's wait.
            server.should_exit = True
            stopping.cancel()
        await serving
        self.close()
