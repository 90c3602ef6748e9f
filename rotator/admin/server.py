"""Serving the admin API with uvicorn inside the daemon's own event loop.

The socket is bound before the daemon starts anything else, so a port in use or a missing
token stops start-up with a clear error instead of a daemon without its control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from rotator.admin.auth import load_token
from rotator.admin.routes import create_app
from rotator.admin.state import AdminDeps, AdminState
from rotator.config.server import ServerSettings
from rotator.errors import ConfigError
from rotator.listen import split_listen
from rotator.logs import get_logger

log = get_logger(__name__)

GRACEFUL_S = 5


class _EmbeddedServer(uvicorn.Server):
    """The daemon owns SIGTERM/SIGINT; uvicorn must not take them over."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(listen: str) -> socket.socket:
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([f"server.admin_listen: cannot listen on {listen} ({reason})"]) from None


class AdminServer:
    """A bound socket and the token; ``serve`` runs the API until ``stop`` is set."""

    def __init__(self, token: str | None, sock: socket.socket) -> None:
        self.token = token
        self.sock = sock

    @classmethod
    def open(cls, settings: ServerSettings) -> AdminServer:
        """Read the token and bind; ConfigError when either is impossible."""
        token = load_token(settings)
        return cls(token, bind(settings.admin_listen))

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def close(self) -> None:
        self.sock.close()

    async def serve(self, deps: AdminDeps, stop: asyncio.Event) -> None:
        api = create_app(AdminState(deps))
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
