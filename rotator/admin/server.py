"""Serving the admin API in the daemon's own event loop, with the listeners' one runner
(:func:`rotator.web.server.serve`: TLS from the web config file, deadlines for idle and slow
clients, no connection cap).

The socket is bound before the daemon starts anything else, so a port in use or a missing
token stops start-up with a clear error instead of a daemon without its control plane.
"""

from __future__ import annotations

import asyncio
import socket

from rotator.admin.auth import load_token
from rotator.admin.routes import create_app
from rotator.admin.state import AdminDeps, AdminState
from rotator.config.server import ServerSettings
from rotator.logs import get_logger
from rotator.web.server import address, bind, serve
from rotator.web.watch import WebConfigWatcher

log = get_logger(__name__)


class AdminServer:
    """A bound socket and the token; ``serve`` runs the API until ``stop`` is set."""

    def __init__(self, token: str | None, sock: socket.socket) -> None:
        self.token = token
        self.sock = sock

    @classmethod
    def open(cls, settings: ServerSettings) -> AdminServer:
        """Read the token and bind; ConfigError when either is impossible."""
        token = load_token(settings)
        return cls(token, bind(settings.admin_listen, "server.admin_listen"))

    @property
    def address(self) -> str:
        return address(self.sock)

    def close(self) -> None:
        self.sock.close()

    async def serve(self, deps: AdminDeps, web: WebConfigWatcher, stop: asyncio.Event) -> None:
        api = create_app(AdminState(deps))
        log.info(
            "admin.listening",
            address=self.address,
            url=f"{web.scheme}://{self.address}",
            auth="token" if self.token else "none",
        )
        try:
            await serve(api, self.sock, web, stop, name="admin")
        finally:
            self.close()
