"""What the admin API accepts and answers: precise models, so the OpenAPI document is exact."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from rotator.domain.model import RotationOutcome, Status

MAX_VERSION = 2**31 - 1


def _whole_number(value: object) -> object:
    """JSON's ``2.0`` is the integer 2 (JSON Schema agrees); ``2.5``, ``"2"``, ``true`` are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class KeyOut(BaseModel):
    """One managed key as the daemon last saw it. Never the key itself."""

    name: str = Field(description="The key's name in the configuration.")
    status: Status = Field(description="Mistral's last verdict on the active version.")
    active_version: int | None = Field(description="Vault version delivered to the sinks.")
    latest_version: int | None = Field(description="Newest live version in Vault.")
    expires_at: datetime | None = Field(description="When Mistral stops accepting the key.")
    expiry_assumed: bool | None = Field(
        description="True when no expiry was recorded and creation + max_lifetime_days is used."
    )
    days_left: float | None = Field(description="Days until expires_at (negative: expired).")
    last_check_at: datetime | None = Field(description="Last verification against Mistral.")
    last_rotation_at: datetime | None = Field(description="When the active version changed.")
    fingerprint: str | None = Field(
        description="Last four characters of the active key, as Mistral's console shows them."
    )
    problem: str | None = Field(description="Why the key cannot be read or verified, if so.")
    last_result: str | None = Field(description="Outcome of the last rotation attempt.")
    previous_still_valid: bool | None = Field(
        description="True while the replaced key still works: delete it in Mistral's console."
    )


class KeyList(BaseModel):
    keys: list[KeyOut]
    warn_days: int = Field(description="The daemon's expiry.warn_days.")
    critical_days: int = Field(description="The daemon's expiry.critical_days.")


class RotateRequest(BaseModel):
    """Optional body of ``POST /api/v1/keys/{name}/rotate``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: Annotated[int | None, BeforeValidator(_whole_number)] = Field(
        default=None,
        ge=1,
        le=MAX_VERSION,
        description="Promote this Vault version (even an older one); default: the newest.",
    )
    force: bool = Field(
        default=False,
        description="Re-deliver the active version to every sink (for a sink that lost it).",
    )
    break_lease: bool = Field(
        default=False,
        description=(
            "Take over another instance's lease on the key (only when that instance is "
            "known to be dead): logged as key.lease_broken."
        ),
    )


class RotationOut(BaseModel):
    """The outcome of a rotate or a rollback."""

    result: RotationOutcome = Field(
        description="rotated / rolled_back: that version is now active in every sink; "
        "noop: nothing to do, or the active key re-delivered (force), reason says which; "
        "rejected: Mistral refused the candidate, which was not delivered; "
        "failed: a sink refused it and every sink is back on the old key; "
        "postponed: Mistral gave no definite answer, the daemon tries again."
    )
    active_version: int | None = Field(description="The version active after the operation.")
    reason: str = Field(description="Why, when nothing was rotated.")
    version: int | None = Field(description="The version that was considered.")
    status: Status | None = Field(description="Mistral's verdict on that version, if asked.")
    fingerprint: str | None = Field(description="Last four characters of the active key.")


class Accepted(BaseModel):
    """The operation outlived the wait; it goes on, and ``location`` shows its outcome."""

    detail: str = Field(description="What is still under way.")
    location: str = Field(description="Where the key's state shows the outcome.")


class Problem(BaseModel):
    """Why the request was not carried out."""

    detail: str = Field(description="For a person; never holds a key.")


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always `ok`: the process answers.")


class Readiness(BaseModel):
    ready: bool
    reason: str = Field(description="`ok`, or what is missing: Vault, the scheduler.")
