"""The intake page's own listener (``intake.listen``), served by the listeners' one runner
(:func:`rotator.web.server.serve`: TLS from ``server.web_config_file``, deadlines for idle
and slow clients).

Bound before the daemon starts anything else, like the admin API: a port in use stops
start-up with a clear error. The page is public by design, so its listener is separate from
the admin API's; no basic auth applies to it.
"""

from __future__ import annotations

import asyncio
import socket

from rotator.config.intake import IntakeSettings
from rotator.intake.service import IntakeService
from rotator.intake.web import create_app
from rotator.logs import get_logger
from rotator.web.server import address, bind, serve
from rotator.web.watch import WebConfigWatcher

log = get_logger(__name__)

MAX_HEAD_BYTES = 16 * 1024


class IntakeServer:
    def __init__(self, settings: IntakeSettings, sock: socket.socket, scheme: str) -> None:
        self.settings = settings
        self.sock = sock
        self.scheme = scheme

    @classmethod
    def open(cls, settings: IntakeSettings, web: WebConfigWatcher) -> IntakeServer:
        """Bind ``intake.listen``; ConfigError when impossible."""
        return cls(settings, bind(settings.listen, "intake.listen"), web.scheme)

    @property
    def address(self) -> str:
        return address(self.sock)

    @property
    def public_url(self) -> str:
        return self.settings.public_url or f"{self.scheme}://{self.address}"

    async def serve(
        self, service: IntakeService, web: WebConfigWatcher, stop: asyncio.Event
    ) -> None:
        log.info(
            "intake.listening",
            address=self.address,
            url=f"{web.scheme}://{self.address}",
            public_url=self.public_url,
        )
        try:
            # Access logs stay off in the runner: the path carries the link's token.
            await serve(
                create_app(service),
                self.sock,
                web,
                stop,
                name="intake",
                max_head_bytes=MAX_HEAD_BYTES,
            )
        finally:
            self.close()

    def close(self) -> None:
        self.sock.close()
