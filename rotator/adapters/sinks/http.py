"""The ``http`` sink: push the key to the integration's own endpoint (2xx = taken).

Redirects are never followed, so the key cannot be forwarded to a host nobody configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import httpx

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.sinks.base import BaseSink, scrub
from rotator.adapters.sinks.templates import register_references, render_body, resolve_headers
from rotator.adapters.tls import client_tls
from rotator.config.common import check_plain_http
from rotator.config.sinks import HttpSinkSettings
from rotator.domain.model import Delivery
from rotator.errors import ConfigError, SinkError

_BODY_TAIL = 200


class HttpSink(BaseSink):
    def __init__(self, spec: HttpSinkSettings, *, metrics: Metrics | None = None) -> None:
        super().__init__(metrics=metrics)
        self.spec = spec
        self._id = f"http:{spec.method.upper()} {safe_url(spec.url)}"
        check_url(spec.url, spec.allow_insecure, where=self._id)
        self._verify = client_tls(spec.ca_cert, where=self._id)
        register_references(spec.headers.values())
        self._client: httpx.AsyncClient | None = None

    @property
    def id(self) -> str:
        return self._id

    async def _write(self, delivery: Delivery) -> None:
        headers = await resolve_headers(self.spec.headers)
        body = render_body(self.spec.body, delivery)
        if body.lstrip().startswith(("{", "[")) and not _has(headers, "content-type"):
            headers["Content-Type"] = "application/json"
        response = await send(
            self._http(),
            self.spec.method,
            self.spec.url,
            headers=headers,
            content=body.encode(),
            seconds=self.spec.timeout_seconds,
        )
        raise_for_answer(response, api_key=delivery.api_key)

    async def holds(self, delivery: Delivery) -> bool | None:
        return None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self._verify, self.spec.timeout_seconds)
        return self._client


def _has(headers: dict[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)


def new_client(verify: ssl.SSLContext | bool, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=verify, follow_redirects=False, timeout=timeout)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    seconds: float,
    content: bytes | None = None,
    prefix: str = "",
) -> httpx.Response:
    """One request, bounded as a whole (httpx's timeout only bounds each read or write)."""
    # Raised after the block, so that the timeout (whose request holds the key) is not
    # attached to the error as its context.
    with contextlib.suppress(TimeoutError, httpx.TimeoutException):
        async with asyncio.timeout(seconds):
            return await client.request(method, url, headers=headers, content=content)
    raise SinkError(f"{prefix}no answer within {seconds:g}s")


def raise_for_answer(response: httpx.Response, *, api_key: str, prefix: str = "") -> None:
    """Accept 2xx; anything else is a SinkError with the status and a scrubbed body tail."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise SinkError(
            f"{prefix}answered HTTP {status} (redirect); redirects are not followed "
            "so that the key never goes to another address"
        )
    # Scrubbed whole, then cut: a key cut in half by the tail is no longer recognised.
    text = scrub(" ".join(response.text.split()), api_key)[-_BODY_TAIL:]
    detail = f": {text}" if text else ""
    raise SinkError(f"{prefix}answered HTTP {status}{detail}")


def check_url(url: str, allow_insecure: bool, *, where: str) -> None:
    try:
        check_plain_http(url, allow_insecure)
    except ValueError as exc:
        raise ConfigError([f"{where}: {exc}"]) from None


def safe_url(url: str) -> str:
    """The URL without user info, query or fragment: those may hold credentials."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(invalid URL)"
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
