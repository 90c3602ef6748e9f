"""The small interfaces the rotation logic is written against (ports): Protocols only.

Adapters (``rotator.adapters``): ``vault.gateway`` (SecretStore), ``mistral.verifier``
(Verifier), ``sinks`` (Sink). Unit tests use in-memory fakes of the same shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from rotator.domain.model import Delivery, KeyState, SecretVersion, Verification


class SecretStore(Protocol):
    async def latest_version(self, path: str) -> int | None:
        """Newest version that is neither deleted nor destroyed; None if the secret is gone.

        Reads metadata only, so a poll costs one request per key.
        Raises VaultError, VaultPermissionDenied.
        """
        ...

    async def read_secret(self, path: str, version: int | None = None) -> SecretVersion:
        """One version (latest if None). Raises SecretNotFound, BadSecret, VaultError."""
        ...

    async def live_versions(self, path: str) -> list[int]:
        """Every version not deleted or destroyed, oldest first."""
        ...

    async def write_secret(self, path: str, data: dict[str, str], cas: int | None) -> int:
        """Write a new version with check-and-set; returns its number. Raises CasConflict."""
        ...

    async def secret_created(self, path: str) -> datetime | None:
        """When the secret was created (None if there is none): its identity, as a name
        deleted and written again starts again at version 1."""
        ...

    async def read_state(self, name: str) -> tuple[KeyState, int]:
        """The key's state and the state secret's version for check-and-set (0: none yet)."""
        ...

    async def write_state(self, name: str, state: KeyState, cas: int) -> int:
        """Record ``state`` if nobody wrote since version ``cas``. Raises CasConflict."""
        ...


class Verifier(Protocol):
    async def verify(self, api_key: str) -> Verification:
        """Ask Mistral about the key. Never raises for what Mistral or the network does."""
        ...


class Sink(Protocol):
    @property
    def id(self) -> str:
        """A stable, secret-free description, e.g. ``file:/run/mistral/api-key``."""
        ...

    async def deliver(self, delivery: Delivery) -> None:
        """Hand the key to the integration (and reload it). Raises SinkError."""
        ...

    async def holds(self, delivery: Delivery) -> bool | None:
        """Whether the sink already has this key; None when it cannot tell (HTTP)."""
        ...


class StagingStore(Protocol):
    """What ``rotator stage`` needs of Vault."""

    async def current_version(self, path: str) -> int:
        """The newest version number, deleted or not (0 if none): the check-and-set value."""
        ...

    async def write_secret(self, path: str, data: dict[str, str], cas: int | None) -> int:
        """Write a new version with check-and-set; returns its number. Raises CasConflict."""
        ...


class NameLister(Protocol):
    """What discovery needs of Vault."""

    async def list_names(self, prefix: str) -> list[str]:
        """The secret names directly under ``prefix``. Raises VaultError."""
        ...
