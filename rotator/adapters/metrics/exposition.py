"""The metrics listener's ASGI app: ``/metrics`` (behind basic auth when the web config file
has users) and ``/healthz``; served by :func:`rotator.web.server.serve` like every listener.

``/metrics`` is :meth:`Metrics.exposition`, the fast direct text rendering (prometheus_client's
``generate_latest`` takes 2.4 s a scrape at 10,000 keys), gzipped at level 1 when the client
accepts it (a tenth of level 9's CPU for about the same ratio on this repetitive text). Both
run in a worker thread, as they did in the WSGI server this replaces, so a large scrape never
holds up the event loop. ``/healthz`` answers without auth: it says only that the listener
is up, and a kubelet probe carries no password.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.types import ASGIApp, Receive, Scope, Send

from rotator.web.auth import BasicAuth, BasicAuthUsers

Headers = list[tuple[bytes, bytes]]


def metrics_app(
    exposition: Callable[[], bytes], users: Callable[[], BasicAuthUsers | None]
) -> ASGIApp:
    """``exposition``: the text to serve (``Metrics.exposition``); ``users``: who may read it."""
    protected = BasicAuth(_Exposition(exposition), users)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, b"ok\n", [(b"content-type", b"text/plain; charset=utf-8")])
        elif scope["path"] == "/metrics":
            await protected(scope, receive, send)
        else:
            await _answer(send, 404, b"not found: try /metrics\n", [])

    return app


class _Exposition:
    def __init__(self, exposition: Callable[[], bytes]) -> None:
        self.exposition = exposition

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"", [(b"allow", b"GET, HEAD")])
            return
        accepts = dict(scope["headers"]).get(b"accept-encoding", b"")
        body, headers = await asyncio.to_thread(self._render, b"gzip" in accepts)
        await _answer(send, 200, body, headers, head=scope["method"] == "HEAD")

    def _render(self, compress: bool) -> tuple[bytes, Headers]:
        body = self.exposition()
        headers = [(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode())]
        if compress:
            body = gzip.compress(body, compresslevel=1)
            headers.append((b"content-encoding", b"gzip"))
        return body, headers


async def _answer(
    send: Send, status: int, body: bytes, headers: Headers, head: bool = False
) -> None:
    length = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + length})
    await send({"type": "http.response.body", "body": b"" if head else body})
