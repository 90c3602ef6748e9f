"""A listener of :func:`rotator.web.server.serve` in a thread with an event loop of its own,
so tests talk to it with blocking clients (httpx, ssl sockets), as real clients do."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from rotator.web.server import bind, serve
from rotator.web.watch import WebConfigWatcher


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers ``hello PATH``."""
    if scope["type"] != "http":
        return
    body = f"hello {scope['path']}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Listener:
    """``with Listener(app, web_config_file) as listener:``; ``listener.url``."""

    def __init__(
        self,
        app: ASGIApp = hello,
        web_config_file: Path | None = None,
        *,
        poll_interval: float = 0.2,
        read_timeout: float | None = None,
    ) -> None:
        self.errors = 0
        self.web = WebConfigWatcher(web_config_file, on_reload=self._count)
        self.sock = bind("127.0.0.1:0", "test.listen")
        self.port = self.sock.getsockname()[1]
        self.url = f"{self.web.scheme}://127.0.0.1:{self.port}"
        self._app = app
        self._poll = poll_interval
        self._options: dict[str, Any] = {}
        if read_timeout is not None:
            self._options["read_timeout"] = read_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _count(self, ok: bool) -> None:
        self.errors += 0 if ok else 1

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await asyncio.gather(
            serve(self._app, self.sock, self.web, self._stop, name="test", **self._options),
            self.web.watch(self._stop, self._poll),
        )

    def __enter__(self) -> Listener:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the listener did not stop"

    def get(self, path: str = "/", **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 5)
        return httpx.get(self.url + path, **kwargs)

    def served_certificate(self, ca: Path) -> bytes:
        """The DER certificate a new TLS connection is served."""
        context = ssl.create_default_context(cafile=str(ca))
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der
