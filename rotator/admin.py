"""The admin HTTP API: see keys, and rotate, verify or roll back one now.

Operations go through the daemon's own :class:`~rotator.service.KeyService`, the code the
scheduler runs. Each runs in a task of its own: the answer waits for its outcome up to
``wait_s``, then says 202 and where to look, and the operation carries on (a delivery is
never cut short because a client gave up).

One admin operation per key at a time: a second one gets 409 at once. The scheduler's own
short work on the key (a poll, a verification) is waited for, up to ``SCHEDULER_GRACE_S``,
so that ops do not get a 409 for a routine check that happened to be running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rotator import __version__
from rotator.admin_auth import require_token
from rotator.admin_models import (
    Accepted,
    Health,
    KeyList,
    KeyOut,
    Problem,
    Readiness,
    RotateRequest,
    RotationOut,
)
from rotator.errors import RotatorError, VaultError
from rotator.keyview import KeyView
from rotator.logs import get_logger
from rotator.rotation import RotationResult
from rotator.service import KeyBusy

if TYPE_CHECKING:
    from rotator.daemon import App

log = get_logger(__name__)

WAIT_S = 30.0
READY_TIMEOUT_S = 5.0
SCHEDULER_GRACE_S = 10.0
T = TypeVar("T")


@dataclass
class AdminState:
    core: App
    token: str | None
    stop: asyncio.Event | None = None
    wait_s: float = WAIT_S
    operations: set[asyncio.Task[Any]] = field(default_factory=set)
    in_flight: dict[str, str] = field(default_factory=dict)
    """Key name -> the admin operation under way on it."""


def _state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


def _caller(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "-"


def _key_out(view: KeyView) -> KeyOut:
    return KeyOut.model_validate(view.as_dict(datetime.now(UTC)))


def _rotation_out(result: RotationResult, fingerprint: str | None) -> RotationOut:
    return RotationOut(
        result=result.result,
        active_version=result.active_version,
        reason=result.reason,
        version=result.version,
        status=result.status,
        fingerprint=fingerprint,
    )


# --- probes --------------------------------------------------------------------------------

probes = APIRouter(tags=["probes"])


@probes.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """200 while the process runs."""
    return Health(status="ok")


@probes.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness}},
    summary="Readiness",
)
async def readyz(request: Request) -> Readiness | JSONResponse:
    """200 when the scheduler runs and Vault is reachable and authenticated; 503 and why not."""
    ready, reason = await _readiness(_state(request))
    if ready:
        return Readiness(ready=True, reason=reason)
    return JSONResponse(Readiness(ready=False, reason=reason).model_dump(), status_code=503)


async def _readiness(state: AdminState) -> tuple[bool, str]:
    if state.stop is not None and state.stop.is_set():
        return False, "stopping"
    scheduler = state.core.scheduler
    if scheduler is None or not scheduler.running:
        return False, "scheduler not running"
    try:
        return await asyncio.wait_for(state.core.store.ready(), READY_TIMEOUT_S)
    except TimeoutError:
        return False, f"vault did not answer within {READY_TIMEOUT_S:.0f}s"


# --- keys ----------------------------------------------------------------------------------

Responses = dict[int | str, dict[str, Any]]
_UNKNOWN: Responses = {404: {"model": Problem, "description": "No managed key has that name."}}
_AUTH: Responses = {
    401: {"model": Problem, "description": "No bearer token."},
    403: {"model": Problem, "description": "Wrong bearer token."},
}
_OPERATION: Responses = {
    **_UNKNOWN,
    202: {"model": Accepted, "description": "Still under way after the wait; see location."},
    409: {"model": Problem, "description": "Another operation on this key is under way."},
    413: {"model": Problem, "description": "Request body too large."},
    503: {"model": Problem, "description": "Vault or the key's secret is unusable right now."},
}

keys = APIRouter(prefix="/api/v1", tags=["keys"], dependencies=[Depends(require_token)])


@keys.get("/keys", response_model=KeyList, responses=_AUTH, summary="List keys")
async def list_keys(request: Request) -> KeyList:
    """Every managed key."""
    core = _state(request).core
    return KeyList(
        keys=[_key_out(v) for v in core.service.views()],
        warn_days=core.settings.expiry.warn_days,
        critical_days=core.settings.expiry.critical_days,
    )


@keys.get("/keys/{name}", response_model=KeyOut, responses={**_AUTH, **_UNKNOWN}, summary="One key")
async def get_key(name: str, request: Request) -> KeyOut:
    """One key, with the same fields as in the list."""
    service = _state(request).core.service
    if name not in service.names():
        raise HTTPException(404, f"unknown key: {name}")
    return _key_out(service.view(name))


@keys.post(
    "/keys/{name}/rotate",
    response_model=RotationOut,
    responses={**_AUTH, **_OPERATION},
    summary="Rotate now",
)
async def rotate(
    name: str, request: Request, body: Annotated[RotateRequest | None, Body()] = None
) -> RotationOut | JSONResponse:
    """Promote the newest Vault version (or ``version``) after verifying it; ``force``
    re-delivers the active version to every sink."""
    body = body or RotateRequest()
    service = _state(request).core.service

    async def work() -> RotationOut:
        result = await service.rotate(name, version=body.version, force=body.force)
        return _rotation_out(result, service.view(name).fingerprint)

    extra = {"requested_version": body.version, "force": body.force}
    return await _operate(request, "rotate", name, work, extra)


@keys.post(
    "/keys/{name}/verify",
    response_model=KeyOut,
    responses={**_AUTH, **_OPERATION},
    summary="Verify now",
)
async def verify(name: str, request: Request) -> KeyOut | JSONResponse:
    """Verify the active key against Mistral now; answers the key's fields."""
    service = _state(request).core.service

    async def work() -> KeyOut:
        return _key_out(await service.verify(name, wait=False))

    return await _operate(request, "verify", name, work, {})


@keys.post(
    "/keys/{name}/rollback",
    response_model=RotationOut,
    responses={**_AUTH, **_OPERATION},
    summary="Roll back",
)
async def rollback(name: str, request: Request) -> RotationOut | JSONResponse:
    """Make the previous version active again, only if it still verifies."""
    service = _state(request).core.service

    async def work() -> RotationOut:
        result = await service.rollback(name)
        return _rotation_out(result, service.view(name).fingerprint)

    return await _operate(request, "rollback", name, work, {})


# --- running an operation ------------------------------------------------------------------


async def _operate(
    request: Request,
    action: str,
    name: str,
    work: Callable[[], Awaitable[T]],
    extra: dict[str, Any],
) -> T | JSONResponse:
    state = _state(request)
    caller = _caller(request)
    if name not in state.core.service.names():
        log.warning(f"admin.{action}", key=name, caller=caller, outcome="unknown_key", **extra)
        raise HTTPException(404, f"unknown key: {name}")
    if name in state.in_flight:
        log.warning(f"admin.{action}", key=name, caller=caller, outcome="busy", **extra)
        raise HTTPException(409, f"a {state.in_flight[name]} of {name} is under way; try later")
    state.in_flight[name] = action
    service = state.core.service

    async def when_idle() -> T:
        deadline = time.monotonic() + SCHEDULER_GRACE_S
        # KeyService has no "idle" event to wait on; a short poll, bounded, will do.
        while service.busy(name) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return await work()

    task = asyncio.create_task(_audited(action, name, caller, when_idle, extra))
    state.operations.add(task)

    def finished(task: asyncio.Task[Any]) -> None:
        state.operations.discard(task)
        state.in_flight.pop(name, None)

    task.add_done_callback(finished)
    done, _ = await asyncio.wait({task}, timeout=state.wait_s)
    if not done:
        where = f"/api/v1/keys/{name}"
        detail = f"{action} of {name} still under way after {state.wait_s:g}s; see {where}"
        return JSONResponse(
            Accepted(detail=detail, location=where).model_dump(),
            status_code=202,
            headers={"Location": where},
        )
    outcome = task.result()
    if isinstance(outcome, KeyBusy):
        raise HTTPException(409, f"{name} stayed busy for {SCHEDULER_GRACE_S:g}s; try later")
    if isinstance(outcome, VaultError):
        raise HTTPException(503, f"vault: {outcome}")
    if isinstance(outcome, RotatorError):
        raise HTTPException(503, str(outcome))
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def _audited(
    action: str,
    name: str,
    caller: str,
    work: Callable[[], Awaitable[T]],
    extra: dict[str, Any],
) -> T | Exception:
    """Run ``work`` and log the audit event; errors are returned, so none goes unretrieved."""
    started = time.monotonic()
    event = f"admin.{action}"
    fields = {"key": name, "caller": caller, **extra}
    try:
        answer = await work()
    except KeyBusy as exc:
        log.warning(event, outcome="busy", **fields)
        return exc
    except RotatorError as exc:
        log.error(event, outcome="error", reason=str(exc), **fields)
        return exc
    except Exception as exc:
        log.exception(event, outcome="error", **fields)
        return exc
    duration_ms = round((time.monotonic() - started) * 1000)
    if isinstance(answer, RotationOut):
        log.info(
            event,
            outcome=answer.result,
            active_version=answer.active_version,
            version=answer.version,
            reason=answer.reason or None,
            duration_ms=duration_ms,
            **fields,
        )
    elif isinstance(answer, KeyOut):
        log.info(
            event,
            outcome=answer.status.value,
            version=answer.active_version,
            fingerprint=answer.fingerprint,
            duration_ms=duration_ms,
            **fields,
        )
    return answer


# --- the application -----------------------------------------------------------------------


def _malformed(detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (not UTF-8, say): malformed input, like the rest.
        return _malformed([{"loc": ["body"], "msg": "not JSON text", "type": "json_invalid"}])
    return await http_exception_handler(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 listing what was wrong, without echoing the input back."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _malformed([{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in errors])


def create_app(state: AdminState | None) -> FastAPI:
    """The admin API over ``state``; ``None`` only to produce the OpenAPI document."""
    from rotator.admin_server import BodyLimit

    api = FastAPI(
        title="mistral-key-rotator admin API",
        version=__version__,
        description="See and act on the daemon's Mistral keys. Everything under /api/v1/ "
        "needs `Authorization: Bearer <admin token>`. The full key never appears in an answer.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=lambda route: route.name,
    )
    api.state.admin = state
    api.include_router(probes)
    api.include_router(keys)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_middleware(BodyLimit)
    return api


def openapi_document() -> dict[str, Any]:
    return create_app(None).openapi()
