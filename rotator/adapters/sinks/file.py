"""The ``file`` sink: an atomic, never-world-readable write of the key, then an optional reload.

Formats (each ends with a newline, as text files do; most tools strip it):

- ``raw``: the key alone, ``<key>\\n``;
- ``env``: ``MISTRAL_API_KEY=<key>\\n`` (systemd ``EnvironmentFile=``, ``docker --env-file``);
- ``json``: ``{"api_key": ..., "expires_at": ISO or null, "version": N, "key": name}\\n``.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.sinks import atomic
from rotator.adapters.sinks.base import BaseSink
from rotator.adapters.sinks.reload import build_reload
from rotator.config.sinks import FileSinkSettings
from rotator.domain.model import Delivery
from rotator.errors import ConfigError, SinkError

# Characters that need no quoting in any env-file dialect; Mistral keys are letters and digits.
_ENV_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]+")


def render(fmt: str, delivery: Delivery) -> bytes:
    """The exact bytes the file holds for ``delivery`` in format ``fmt``."""
    if fmt == "env":
        if not _ENV_SAFE.fullmatch(delivery.api_key):
            raise SinkError("the key has characters that cannot be written in env format")
        return f"MISTRAL_API_KEY={delivery.api_key}\n".encode()
    if fmt == "json":
        document = {
            "api_key": delivery.api_key,
            "expires_at": delivery.expires_at.isoformat() if delivery.expires_at else None,
            "version": delivery.version,
            "key": delivery.key,
        }
        return (json.dumps(document) + "\n").encode()
    return f"{delivery.api_key}\n".encode()


class FileSink(BaseSink):
    def __init__(self, spec: FileSinkSettings, *, metrics: Metrics | None = None) -> None:
        super().__init__(metrics=metrics)
        self.spec = spec
        self._id = f"file:{spec.path}"
        if not spec.path.is_absolute():
            raise ConfigError([f"{self._id}: path must be absolute"])
        self.reload = build_reload(spec.reload, where=self._id)

    @property
    def id(self) -> str:
        return self._id

    @property
    def path(self) -> Path:
        return self.spec.path

    async def _write(self, delivery: Delivery) -> None:
        data = render(self.spec.format, delivery)
        await asyncio.to_thread(
            atomic.write_atomically,
            self.path,
            data,
            mode=self.spec.mode,
            owner=self.spec.owner,
            group=self.spec.group,
        )
        if self.reload is not None:
            await self.reload.run(delivery)

    async def holds(self, delivery: Delivery) -> bool | None:
        try:
            expected = render(self.spec.format, delivery)
        except SinkError:
            return False
        return await asyncio.to_thread(atomic.has_content, self.path, expected)

    async def aclose(self) -> None:
        if self.reload is not None:
            await self.reload.aclose()
