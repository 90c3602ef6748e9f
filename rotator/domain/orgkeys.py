"""The organization's keys as Mistral's Admin API describes them, the port to that API, and
its errors. Values only; the HTTP adapter is ``rotator.adapters.mistral.admin``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from rotator.domain.model import fingerprint
from rotator.errors import RotatorError


class AdminApiError(RotatorError):
    """The Admin API did not do what was asked. ``status``: the HTTP status, if any."""

    def __init__(self, operation: str, detail: str, status: int | None = None) -> None:
        self.operation = operation
        self.status = status
        self.detail = detail
        super().__init__(f"Mistral Admin API {operation}: {detail}")


class AdminAuthError(AdminApiError):
    """401/403: the admin key is wrong, revoked, or lacks the rights."""


class AdminRefused(AdminApiError):
    """4xx other than 401/403/429: the request itself was refused (nothing was done)."""


class AdminUnavailable(AdminApiError):
    """429, 5xx, no answer: try again later. A create may or may not have happened."""

    def __init__(
        self,
        operation: str,
        detail: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(operation, detail, status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class OrgKey:
    """One key of the organization as the Admin API lists it (never its value)."""

    key_id: str
    name: str
    hidden_key: str | None = None
    created_at: datetime | None = None
    expiration_date: date | None = None
    workspace_id: str | None = None
    workspace_name: str | None = None
    created_by: str | None = None
    product: str | None = None
    last_used: date | None = None
    can_delete: bool | None = None

    @property
    def expires_at(self) -> datetime | None:
        """Mistral's date, taken as 00:00 UTC of that day (contract)."""
        if self.expiration_date is None:
            return None
        return datetime(
            self.expiration_date.year,
            self.expiration_date.month,
            self.expiration_date.day,
            tzinfo=UTC,
        )

    def matches(self, api_key: str) -> bool:
        """Whether ``hidden_key`` (first and last four characters) fits ``api_key``."""
        if not self.hidden_key or "..." not in self.hidden_key or len(api_key) < 8:
            return False
        head, _, tail = self.hidden_key.partition("...")
        return api_key.startswith(head) and api_key.endswith(tail) and bool(head and tail)


@dataclass(frozen=True)
class MintedKey:
    """A key just created: its record and its value, shown this once."""

    record: OrgKey
    api_key: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.api_key)


@dataclass(frozen=True)
class Workspace:
    uuid: str
    name: str


class AdminApi(Protocol):
    """What minting and inventory need from the Admin API."""

    async def list_keys(self, name: str | None = None) -> list[OrgKey]:
        """Every key of the organization. Raises AdminApiError."""
        ...

    async def create_key(
        self, *, name: str, workspace_uuid: str, expiration: date | None, user_id: str | None
    ) -> MintedKey:
        """Create a key (never retried). Raises AdminApiError."""
        ...

    async def delete_key(self, key_id: str) -> bool:
        """Delete a key; False when it was already gone. Raises AdminApiError."""
        ...
