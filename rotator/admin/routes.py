"""The admin HTTP API: see keys, and rotate, verify or roll back one now.

Operations go through the daemon's own :class:`~rotator.core.service.KeyService`, the code
the scheduler runs, by way of :func:`rotator.admin.operations.run_operation`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from rotator import __version__
from rotator.admin.auth import require_token
from rotator.admin.limits import BodyLimit
from rotator.admin.mint_routes import router as mint_routes
from rotator.admin.models import (
    Accepted,
    Health,
    KeyList,
    KeyOut,
    Problem,
    Readiness,
    RotateRequest,
    RotationOut,
)
from rotator.admin.operations import run_operation
from rotator.admin.state import AdminDeps, AdminState, state_of
from rotator.core.rotation import RotationResult
from rotator.domain.keyview import KeyView
from rotator.intake import admin_routes as intake_routes

READY_TIMEOUT_S = 5.0


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
    ready, reason = await _readiness(state_of(request).deps)
    if ready:
        return Readiness(ready=True, reason=reason)
    return JSONResponse(Readiness(ready=False, reason=reason).model_dump(), status_code=503)


async def _readiness(deps: AdminDeps) -> tuple[bool, str]:
    if deps.stop is not None and deps.stop.is_set():
        return False, "stopping"
    if not deps.scheduler_running():
        return False, "scheduler not running"
    try:
        return await asyncio.wait_for(deps.vault_ready(), READY_TIMEOUT_S)
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
    409: {
        "model": Problem,
        "description": "Another operation on this key is under way; or not possible as asked "
        "(a version that does not exist, nothing older to roll back to, force of a key never "
        "delivered): the detail says which.",
    },
    500: {"model": Problem, "description": "A bug: see the daemon's log."},
    413: {"model": Problem, "description": "Request body too large."},
    503: {"model": Problem, "description": "Vault or the key's secret is unusable right now."},
}

keys = APIRouter(prefix="/api/v1", tags=["keys"], dependencies=[Depends(require_token)])


@keys.get("/keys", response_model=KeyList, responses=_AUTH, summary="List keys")
async def list_keys(request: Request) -> KeyList:
    """Every managed key."""
    deps = state_of(request).deps
    return KeyList(
        keys=[_key_out(v) for v in deps.service.views()],
        warn_days=deps.warn_days,
        critical_days=deps.critical_days,
    )


@keys.get("/keys/{name}", response_model=KeyOut, responses={**_AUTH, **_UNKNOWN}, summary="One key")
async def get_key(name: str, request: Request) -> KeyOut:
    """One key, with the same fields as in the list."""
    service = state_of(request).deps.service
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
    service = state_of(request).deps.service

    async def work() -> RotationOut:
        result = await service.rotate(
            name, version=body.version, force=body.force, break_lease=body.break_lease
        )
        return _rotation_out(result, service.view(name).fingerprint)

    extra = {"requested_version": body.version, "force": body.force}
    if body.break_lease:
        extra["break_lease"] = True
    return await run_operation(request, "rotate", name, work, extra)


@keys.post(
    "/keys/{name}/verify",
    response_model=KeyOut,
    responses={**_AUTH, **_OPERATION},
    summary="Verify now",
)
async def verify(name: str, request: Request) -> KeyOut | JSONResponse:
    """Verify the active key against Mistral now; answers the key's fields."""
    service = state_of(request).deps.service

    async def work() -> KeyOut:
        return _key_out(await service.verify(name, wait=False))

    return await run_operation(request, "verify", name, work, {})


@keys.post(
    "/keys/{name}/rollback",
    response_model=RotationOut,
    responses={**_AUTH, **_OPERATION},
    summary="Roll back",
)
async def rollback(name: str, request: Request) -> RotationOut | JSONResponse:
    """Make the previous version active again, only if it still verifies."""
    service = state_of(request).deps.service

    async def work() -> RotationOut:
        result = await service.rollback(name)
        return _rotation_out(result, service.view(name).fingerprint)

    return await run_operation(request, "rollback", name, work, {})


# --- the application -----------------------------------------------------------------------


def _malformed(detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (not UTF-8, say): malformed input, like the rest.
        return _malformed([{"loc": ["body"], "msg": "not JSON text", "type": "json_invalid"}])
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; a path with a
        # route per method (POST and DELETE .../intake) must name them all.
        exc.headers = {"Allow": ", ".join(sorted(_methods_at(request)))}
    return await http_exception_handler(request, exc)


def _methods_at(request: Request) -> set[str]:
    scope = {**request.scope, "method": "GET"}
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return methods


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 listing what was wrong, without echoing the input back."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _malformed([{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in errors])


def create_app(state: AdminState | None) -> FastAPI:
    """The admin API over ``state``; ``None`` only to produce the OpenAPI document."""
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
    api.include_router(mint_routes)
    api.include_router(intake_routes.router)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    api.add_middleware(BodyLimit)
    return api


def openapi_document() -> dict[str, Any]:
    return create_app(None).openapi()
