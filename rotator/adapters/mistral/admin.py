"""Mistral's Admin API (Enterprise, in preview): list, create and delete the organization's keys.

The one adapter for it; the API may still change, so this stays small and reads only the
fields it needs, ignoring any others. Its own HTTP client, pacer and request budget, so that
inventory and minting never take turns from verification. Errors:

* :class:`AdminAuthError` for 401/403: the admin key is bad or lacks rights (``up`` false);
* :class:`AdminRefused` for any other 4xx (e.g. 422): this request was wrong;
* :class:`AdminUnavailable` for 429, 5xx and no answer, after retries with backoff.

No message carries the admin key or a key value: bodies are summarized and scrubbed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx

from rotator import __version__
from rotator.adapters.mistral.verifier import Closing, RequestPacer, parse_retry_after, summarize
from rotator.adapters.tls import client_tls
from rotator.config.admin import AdminApiSettings
from rotator.core.backoff import BackoffPolicy
from rotator.domain.orgkeys import (
    AdminAuthError,
    AdminRefused,
    AdminUnavailable,
    MintedKey,
    OrgKey,
    Workspace,
)
from rotator.logs import REDACTOR, get_logger

log = get_logger(__name__)

MAX_BODY_BYTES = 4 << 20
MAX_PAGES = 1000
"""100,000 keys: far beyond any organization; a server that never sends a short page stops here."""
MAX_RETRY_WAIT_S = 60.0


class MistralAdminClient(Closing):
    """The Admin API over HTTP. ``on_up(bool)`` hears whether the admin key was accepted."""

    def __init__(
        self,
        settings: AdminApiSettings,
        admin_key: str,
        *,
        on_up: Callable[[bool], None] | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        REDACTOR.add(admin_key)
        self._settings = settings
        self._base = settings.base_url.rstrip("/")
        self._on_up = on_up
        self._backoff = BackoffPolicy(backoff_base, backoff_cap)
        self._sleep = sleep
        self._pacer = RequestPacer(settings.max_requests_per_second)
        # One request at a time: listing is paged and rare; minting is one key at a time.
        self._slot = asyncio.Semaphore(1)
        auth = (
            {"x-api-key": admin_key}
            if settings.auth_header == "x-api-key"
            else {"Authorization": f"Bearer {admin_key}"}
        )
        self._client = httpx.AsyncClient(
            timeout=settings.timeout_seconds,
            verify=client_tls(settings.ca_cert, where="mistral.admin"),
            follow_redirects=False,  # a redirect would carry the admin key elsewhere
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers={
                "Accept": "application/json",
                "User-Agent": f"mistral-key-rotator/{__version__}",
                **auth,
            },
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- operations -----------------------------------------------------------------------

    async def list_keys(self, name: str | None = None) -> list[OrgKey]:
        """Every key of the organization (or those whose name contains ``name``), paged."""
        size = self._settings.page_size
        out: list[OrgKey] = []
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            params: dict[str, str | int] = {"limit": size, "offset": page * size}
            if name:
                params["name"] = name
            answer = await self._call("list", "GET", "/api-keys", params=params)
            items = answer.get("keys") if isinstance(answer, dict) else None
            if not isinstance(items, list):
                raise AdminUnavailable("list", "answer has no list of keys", 200)
            for item in items:
                record = _org_key(item)
                # A key created between two pages shifts the offsets: never count one twice.
                if record is not None and record.key_id not in seen:
                    seen.add(record.key_id)
                    out.append(record)
            if len(items) < size:
                return out
        raise AdminUnavailable("list", f"more than {MAX_PAGES} pages; stopped", 200)

    async def create_key(
        self, *, name: str, workspace_uuid: str, expiration: date | None, user_id: str | None
    ) -> MintedKey:
        """Create a key; its value is in the answer only. Never retried: a retry after a
        lost answer would create a second key (the caller finds the first by its tag)."""
        body: dict[str, Any] = {"name": name, "workspace_uuid": workspace_uuid}
        if expiration is not None:
            body["expiration"] = expiration.isoformat()
        if user_id:
            body["user_id"] = user_id
        answer = await self._call("create", "POST", "/api-keys", json_body=body, retry=False)
        plaintext = answer.get("key") if isinstance(answer, dict) else None
        record = _org_key(answer)
        if not isinstance(plaintext, str) or not plaintext.strip() or record is None:
            raise AdminUnavailable("create", "answer has no key_id or key value", 200)
        REDACTOR.add(plaintext)
        REDACTOR.add(plaintext.strip())
        return MintedKey(record, plaintext.strip())

    async def delete_key(self, key_id: str) -> bool:
        """Delete the key; False when Mistral no longer has it (404): the aim is met."""
        try:
            await self._call("delete", "DELETE", f"/api-keys/{_path_id(key_id)}")
        except AdminRefused as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def workspaces(self) -> list[Workspace]:
        answer = await self._call("workspaces", "GET", "/workspaces")
        items = answer.get("items") if isinstance(answer, dict) else None
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("uuid"), str):
                out.append(Workspace(item["uuid"], str(item.get("name") or "")))
        return out

    # --- the exchange ---------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json_body: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Any:
        attempt = 0
        while True:
            try:
                return await self._once(operation, method, path, params, json_body)
            except AdminUnavailable as exc:
                if not retry or attempt >= self._settings.retries:
                    raise
                wait = self._wait(attempt, exc.retry_after)
                log.info(
                    "mistral_admin.retry",
                    operation=operation,
                    attempt=attempt + 1,
                    http_status=exc.status,
                    in_s=round(wait, 2),
                    detail=exc.detail,
                )
                await self._sleep(wait)
                attempt += 1

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_WAIT_S)
        return self._backoff.wait(attempt)

    async def _once(
        self,
        operation: str,
        method: str,
        path: str,
        params: dict[str, str | int] | None,
        json_body: dict[str, Any] | None,
    ) -> Any:
        timeout = self._settings.timeout_seconds
        started = time.monotonic()
        async with self._slot:
            await self._pacer.wait()
            try:
                async with asyncio.timeout(timeout):
                    response = await self._client.request(
                        method, self._base + path, params=params, json=json_body
                    )
                    body = response.content[:MAX_BODY_BYTES]
            except (TimeoutError, httpx.TimeoutException):
                raise AdminUnavailable(operation, f"no answer within {timeout:g}s") from None
            except httpx.HTTPError as exc:
                detail = REDACTOR.scrub(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
                raise AdminUnavailable(operation, detail[:200]) from None
        code = response.status_code
        log.debug(
            "mistral_admin.request",
            operation=operation,
            http_status=code,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        if 200 <= code < 300:
            self._up(True)
            try:
                return json.loads(body) if body else {}
            except ValueError:
                raise AdminUnavailable(
                    operation, f"HTTP {code}: answer is not JSON", code
                ) from None
        detail = f"HTTP {code}: {summarize(body)}"
        if code in (401, 403):
            self._up(False)
            raise AdminAuthError(operation, detail, code)
        if code == 429 or code >= 500:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise AdminUnavailable(operation, detail, code, wait)
        if 300 <= code < 400:
            raise AdminUnavailable(operation, f"HTTP {code}: redirect not followed", code)
        self._up(True)  # the key was accepted; the request was not
        raise AdminRefused(operation, detail, code)

    def _up(self, up: bool) -> None:
        if self._on_up is not None:
            self._on_up(up)


# --- reading answers ------------------------------------------------------------------------


def _org_key(item: object) -> OrgKey | None:
    """An item as far as it can be read; None without a ``key_id`` (unusable)."""
    if not isinstance(item, dict):
        return None
    key_id = item.get("key_id")
    if not isinstance(key_id, str) or not key_id:
        return None
    return OrgKey(
        key_id=key_id,
        name=_text(item.get("name")) or "",
        hidden_key=_text(item.get("hidden_key")),
        created_at=_moment(item.get("created_at")),
        expiration_date=_day(item.get("expiration_date")),
        workspace_id=_text(item.get("workspace_id")),
        workspace_name=_text(item.get("workspace_name")),
        created_by=_text(item.get("created_by")),
        product=_text(item.get("product")),
        last_used=_day(item.get("last_used")),
        can_delete=item.get("can_delete") if isinstance(item.get("can_delete"), bool) else None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _day(value: object) -> date | None:
    """A date, or the date of a date-time (the preview API has shown both)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _path_id(key_id: str) -> str:
    """A key id as one path segment: nothing that could walk to another endpoint."""
    if not key_id or any(not (c.isalnum() or c in "-_") for c in key_id):
        raise AdminRefused("delete", "key_id is not a plain identifier")
    return key_id
