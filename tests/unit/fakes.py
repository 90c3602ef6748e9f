"""In-memory implementations of the ports, for testing the rotation logic without servers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from rotator.domain.model import Delivery, KeyState, SecretVersion, Status, Verification
from rotator.errors import CasConflict, SecretNotFound, SinkError

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeStore:
    secrets: dict[str, dict[int, dict[str, str] | None]] = field(default_factory=dict)
    states: dict[str, tuple[KeyState, int]] = field(default_factory=dict)
    state_writes: int = 0

    def put(self, path: str, api_key: str, **extra: str) -> int:
        versions = self.secrets.setdefault(path, {})
        n = len(versions) + 1
        versions[n] = {"api_key": api_key, **extra}
        return n

    def delete(self, path: str, version: int) -> None:
        self.secrets[path][version] = None

    async def latest_version(self, path: str) -> int | None:
        live = await self.live_versions(path)
        return live[-1] if live else None

    async def live_versions(self, path: str) -> list[int]:
        return [n for n, d in sorted(self.secrets.get(path, {}).items()) if d is not None]

    async def read_secret(self, path: str, version: int | None = None) -> SecretVersion:
        version = version or await self.latest_version(path)
        data = self.secrets.get(path, {}).get(version or 0)
        if data is None or version is None:
            raise SecretNotFound(f"{path} v{version}")
        return SecretVersion(
            path,
            version,
            CREATED,
            data["api_key"],
            data.get("expires_at"),
            data.get("key_name"),
            mistral_key_id=data.get("mistral_key_id"),
        )

    async def write_secret(self, path: str, data: dict[str, str], cas: int | None) -> int:
        current = len(self.secrets.get(path, {}))
        if cas is not None and cas != current:
            raise CasConflict(path)
        return self.put(path, **data)

    async def secret_created(self, path: str) -> datetime | None:
        return CREATED if self.secrets.get(path) else None

    async def read_state(self, name: str) -> tuple[KeyState, int]:
        return self.states.get(name, (KeyState(), 0))

    async def write_state(self, name: str, state: KeyState, cas: int) -> int:
        current = self.states.get(name, (KeyState(), 0))[1]
        if cas != current:
            raise CasConflict(name)
        self.states[name] = (state, current + 1)
        self.state_writes += 1
        return current + 1


@dataclass
class FakeVerifier:
    verdicts: dict[str, list[Status]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def set(self, api_key: str, *statuses: Status) -> None:
        self.verdicts[api_key] = list(statuses)

    async def verify(self, api_key: str) -> Verification:
        self.calls.append(api_key)
        queue = self.verdicts.get(api_key, [Status.INVALID])
        status = queue.pop(0) if len(queue) > 1 else queue[0]
        return Verification(status, 200 if status is Status.VALID else 401)


@dataclass
class FakeSink:
    name: str
    held: str | None = None
    deliveries: list[int] = field(default_factory=list)
    fail_next: int = 0
    """How many deliveries fail before one succeeds; -1 fails for ever."""
    can_tell: bool = True

    @property
    def id(self) -> str:
        return f"fake:{self.name}"

    async def deliver(self, delivery: Delivery) -> None:
        if self.fail_next:
            self.fail_next -= 1 if self.fail_next > 0 else 0
            raise SinkError(f"{self.id} refused")
        self.held = delivery.api_key
        self.deliveries.append(delivery.version)

    async def holds(self, delivery: Delivery) -> bool | None:
        return self.held == delivery.api_key if self.can_tell else None
