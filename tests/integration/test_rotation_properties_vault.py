"""The rotation property test (tests/unit/test_rotation_properties.py), small, against the
real OpenBao: versions written, soft-deleted and destroyed through the KV v2 API, the state
and its lease written with real check-and-set. Mistral and the sinks stay scripted, so that
every failure and crash can be placed anywhere.

Each example has its own secret path and state path; a few short examples keep it to
seconds (deterministic, like the in-memory one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.vault.gateway import VaultStore
from rotator.domain.model import KeyState
from tests.fixtures.openbao import OpenBaoServer, settings_for
from tests.unit.test_rotation_properties import NAME, RotationMachine

_SERVER: dict[str, Any] = {}


class VaultRotationMachine(RotationMachine):
    def _new_store(self) -> Any:
        server: OpenBaoServer = _SERVER["openbao"]
        self.prefix = f"mistral/properties-{uuid.uuid4().hex[:10]}"
        self.salt = uuid.uuid4().hex[:24]
        vault = settings_for(
            server, _SERVER["tmp"], state_path=f"mistral-rotator/state/{self.prefix}"
        )
        self.kv = server.client().secrets.kv.v2
        self.path = f"{self.prefix}/k"
        return VaultStore(vault, Metrics())

    def teardown(self) -> None:
        self.store.close()
        super().teardown()

    def _put(self, value: str) -> int:
        answer = self.kv.create_or_update_secret(path=self.path, secret={"api_key": value})
        return int(answer["data"]["version"])

    def _delete(self, version: int) -> None:
        if version % 2:
            self.kv.delete_secret_versions(path=self.path, versions=[version])
        else:
            self.kv.destroy_secret_versions(path=self.path, versions=[version])

    def _live(self, version: int) -> bool:
        if not self.keys:
            return False  # nothing written yet: no metadata either
        meta = self.kv.read_secret_metadata(path=self.path)["data"]["versions"].get(str(version))
        return bool(meta) and not meta["deletion_time"] and not meta["destroyed"]

    def _state(self) -> KeyState | None:
        state, cas = self.loop.run_until_complete(self.store.read_state(NAME))
        return state if cas else None


@pytest.fixture(autouse=True)
def _server(openbao: OpenBaoServer, tmp_path: Path) -> Iterator[None]:
    _SERVER.update(openbao=openbao, tmp=tmp_path)
    yield
    _SERVER.clear()


VaultRotationMachine.TestCase.settings = settings(
    max_examples=12,
    derandomize=True,
    stateful_step_count=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRotationPropertiesOnOpenBao = VaultRotationMachine.TestCase
