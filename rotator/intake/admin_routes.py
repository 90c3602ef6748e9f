"""``POST``/``DELETE /api/v1/keys/{name}/intake``: make a link (shown once), withdraw them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rotator.admin.auth import require_token
from rotator.admin.models import Problem
from rotator.admin.state import state_of
from rotator.config.common import parse_duration
from rotator.errors import RotatorError
from rotator.intake.service import IntakeService

MIN_TTL, MAX_TTL = timedelta(minutes=1), timedelta(days=90)
# Exactly the ttls taken, 1m to 90d as a whole number of one unit, so that the published
# schema promises no value the answer then refuses (Schemathesis found "000…0" accepted by
# the schema, refused with 422).
TTL_PATTERN = (
    r"^(?:(?:[6-9][0-9]|[1-9][0-9]{2,5}|[1-6][0-9]{6}|7[0-6][0-9]{5}|77[0-6][0-9]{4}"
    r"|777[0-5][0-9]{3}|7776000)s"
    r"|(?:[1-9][0-9]{0,4}|1[01][0-9]{4}|12[0-8][0-9]{3}|129[0-5][0-9]{2}|129600)m"
    r"|(?:[1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"
    r"|(?:[1-9]|[1-8][0-9]|90)d)$"
)
_TTL = re.compile(TTL_PATTERN)


class IntakeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl: str | None = Field(
        default=None,
        max_length=32,
        description="How long the link works, e.g. 7d (default intake.link_ttl); "
        "between 1m and 90d, a whole number of s, m, h or d.",
        json_schema_extra={"pattern": TTL_PATTERN},
    )

    @field_validator("ttl")
    @classmethod
    def _within_bounds(cls, value: str | None) -> str | None:
        # Said, not clamped: an operator who asks for 0s or 365d learns it at once (a clamped
        # answer went unnoticed), and a huge one is no longer a 500.
        if value is not None:
            ttl = parse_duration(value)
            if not MIN_TTL <= ttl <= MAX_TTL:
                raise ValueError(f"must be between 1m and 90d, got {value!r}")
            if not _TTL.match(value):
                raise ValueError(
                    f"must be a whole number of s, m, h or d (e.g. 36h), got {value!r}"
                )
        return value

    def duration(self) -> timedelta | None:
        return None if self.ttl is None else parse_duration(self.ttl)


class IntakeLink(BaseModel):
    url: str = Field(description="The one-time link; shown only in this answer.")
    expires_at: datetime


class IntakeRevoked(BaseModel):
    revoked: int = Field(description="How many open links were withdrawn.")


_ANSWERS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "No bearer token."},
    403: {"model": Problem, "description": "Wrong bearer token."},
    404: {"model": Problem, "description": "No managed key has that name, or no intake."},
    503: {"model": Problem, "description": "Vault cannot be reached; nothing changed."},
}

router = APIRouter(prefix="/api/v1", tags=["intake"], dependencies=[Depends(require_token)])


def _intake(request: Request, name: str) -> IntakeService:
    deps = state_of(request).deps
    service = deps.intake
    if service is None:
        raise HTTPException(404, "key intake is not configured (no 'intake' section)")
    if name not in deps.service.names():
        raise HTTPException(404, f"unknown key: {name}")
    return service


@router.post(
    "/keys/{name}/intake",
    response_model=IntakeLink,
    responses=_ANSWERS,
    summary="Make an intake link",
)
async def create_link(
    name: str, request: Request, body: Annotated[IntakeRequest | None, Body()] = None
) -> IntakeLink:
    """A fresh one-time link for the key's owner to hand over the next key."""
    service = _intake(request, name)
    try:
        url, expires = await service.create(name, body.duration() if body is not None else None)
    except RotatorError as exc:
        raise _unavailable(exc) from None
    return IntakeLink(url=url, expires_at=expires)


@router.delete(
    "/keys/{name}/intake",
    response_model=IntakeRevoked,
    responses=_ANSWERS,
    summary="Withdraw links",
)
async def revoke_links(name: str, request: Request) -> IntakeRevoked:
    """Every open link of the key stops working at once."""
    service = _intake(request, name)
    try:
        return IntakeRevoked(revoked=await service.revoke(name))
    except RotatorError as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: RotatorError) -> HTTPException:
    """Vault down or the key's state changing under us: a 503 that says so (it was a bare
    500 and a traceback), nothing changed."""
    return HTTPException(503, f"the key's links could not be changed: {exc}; try again")
