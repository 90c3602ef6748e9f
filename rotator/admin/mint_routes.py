"""Admin API routes for Mistral's Admin API: mint a key now, list the organization's keys.

``POST /api/v1/keys/{name}/mint`` answers like ``rotate`` plus ``mistral_key_id``;
``GET /api/v1/inventory`` answers ``{"keys": [...]}``, never a key value.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rotator.admin.auth import require_token
from rotator.admin.models import Accepted, Problem
from rotator.admin.operations import run_operation
from rotator.admin.state import state_of
from rotator.core.minting import MintOutcome
from rotator.domain.orgkeys import AdminApiError

router = APIRouter(prefix="/api/v1", tags=["mistral-admin"], dependencies=[Depends(require_token)])

Responses = dict[int | str, dict[str, Any]]
_AUTH: Responses = {
    401: {"model": Problem, "description": "No bearer token."},
    403: {"model": Problem, "description": "Wrong bearer token."},
}
_OPERATION: Responses = {
    202: {"model": Accepted, "description": "Still under way after the wait; see location."},
    409: {"model": Problem, "description": "Another operation on this key is under way."},
    503: {"model": Problem, "description": "Vault or the key's state is unusable right now."},
}
_NOT_CONFIGURED: Responses = {
    404: {"model": Problem, "description": "Unknown key, or no Admin API / mint settings."},
}


class MintOut(BaseModel):
    """The outcome of a mint."""

    result: MintOutcome = Field(
        description="rotated: a new key was created, verified, stored and is active in every "
        "sink; failed: see reason (nothing half-done is left in Mistral); contended: another "
        "instance is minting this key; noop: nothing to do."
    )
    active_version: int | None = Field(description="The version active after the mint.")
    reason: str = Field(description="Why, when nothing was rotated.")
    version: int | None = Field(description="The new Vault version, if one was written.")
    fingerprint: str | None = Field(description="Last four characters of the active key.")
    mistral_key_id: str | None = Field(description="The new key's key_id in Mistral.")


class OrgKeyOut(BaseModel):
    key_id: str
    name: str
    workspace: str | None
    fingerprint: str | None = Field(description="Last four characters, as Mistral shows.")
    created_at: str | None
    expires_at: str | None
    last_used: str | None
    managed_key: str | None = Field(description="The managed key it is, if any.")


class InventoryOut(BaseModel):
    keys: list[OrgKeyOut]


@router.post(
    "/keys/{name}/mint",
    response_model=MintOut,
    responses={**_AUTH, **_OPERATION, **_NOT_CONFIGURED},
    summary="Mint a replacement now",
)
async def mint(name: str, request: Request) -> MintOut | JSONResponse:
    """Create a new key in Mistral (Admin API), verify it, store it in Vault and rotate to it."""
    deps = state_of(request).deps
    keys = deps.admin_keys
    if keys is None:
        raise HTTPException(404, "the Admin API is not configured (mistral.admin)")
    if name in deps.service.names() and keys.mint_for(name) is None:
        raise HTTPException(404, f"key {name} has no mint settings")

    async def work() -> MintOut:
        result = await keys.mint_now(name)
        view = deps.service.view(name)
        return MintOut(
            result=result.result,
            active_version=view.active_version,
            reason=result.reason,
            version=result.version,
            fingerprint=view.fingerprint,
            mistral_key_id=result.mistral_key_id,
        )

    return await run_operation(request, "mint", name, work, {})


@router.get(
    "/inventory",
    response_model=InventoryOut,
    responses={
        **_AUTH,
        **_NOT_CONFIGURED,
        503: {"model": Problem, "description": "The Admin API did not answer or refused."},
    },
    summary="The organization's keys",
)
async def inventory(request: Request) -> InventoryOut:
    """Every key of the organization (Admin API), and which managed key it is."""
    keys = state_of(request).deps.admin_keys
    if keys is None:
        raise HTTPException(404, "the Admin API is not configured (mistral.admin)")
    try:
        found = await keys.inventory()
    except AdminApiError as exc:
        raise HTTPException(503, str(exc)) from None
    return InventoryOut(keys=[OrgKeyOut.model_validate(r.as_dict()) for r in found.rows])
