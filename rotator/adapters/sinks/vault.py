"""The vault sink: copies the key to a KV v2 path that the integration itself reads."""

from __future__ import annotations

import hmac
from typing import Protocol

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.sinks.base import BaseSink
from rotator.config.sinks import VaultSinkSettings
from rotator.domain.model import Delivery
from rotator.errors import RotatorError, SinkError
from rotator.logs import REDACTOR


class KvAccess(Protocol):
    """The part of ``rotator.adapters.vault.gateway.VaultStore`` this sink needs."""

    async def write_kv(self, mount: str, path: str, data: dict[str, str]) -> None: ...

    async def read_kv(self, mount: str, path: str) -> dict[str, str] | None: ...


class VaultSink(BaseSink):
    """Writes ``api_key``, ``expires_at``, ``version`` and ``key`` as a new KV v2 version."""

    def __init__(
        self,
        spec: VaultSinkSettings,
        key_name: str,
        kv: KvAccess,
        default_mount: str,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics=metrics)
        self._mount = (spec.mount or default_mount).strip("/")
        self._path = spec.path.strip("/")
        self._key_name = key_name
        self._kv = kv

    @property
    def id(self) -> str:
        return f"vault:{self._mount}/{self._path}"

    async def _write(self, delivery: Delivery) -> None:
        """Raises SinkError; Vault's errors carry paths, never the key."""
        data = {
            "api_key": delivery.api_key,
            "expires_at": delivery.expires_at.isoformat() if delivery.expires_at else "",
            "version": str(delivery.version),
            "key": self._key_name,
        }
        try:
            await self._kv.write_kv(self._mount, self._path, data)
        except RotatorError as exc:
            raise SinkError(f"{self.id}: {exc}") from None

    async def holds(self, delivery: Delivery) -> bool:
        """Whether the path's current version holds this key. Raises SinkError when Vault
        cannot say (unlike an HTTP sink, Vault can always tell once it answers)."""
        try:
            data = await self._kv.read_kv(self._mount, self._path)
        except RotatorError as exc:
            raise SinkError(f"{self.id}: {exc}") from None
        held = (data or {}).get("api_key", "")
        REDACTOR.add(held)
        return hmac.compare_digest(held.encode(), delivery.api_key.encode())
