"""The vault sink through VaultStore against a real OpenBao."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.sinks.vault import VaultSink
from rotator.adapters.vault.gateway import VaultStore
from rotator.config.sinks import VaultSinkSettings
from rotator.domain.model import Delivery
from rotator.errors import SinkError
from tests.fixtures.openbao import OpenBaoServer, create_approle, free_port_pair, settings_for

KEY = "mk-sink-test-0123456789abEFGH"
NEXT = "mk-sink-next-0123456789abIJKL"


def sink_at(store: VaultStore, path: str, mount: str | None = None) -> VaultSink:
    spec = VaultSinkSettings(type="vault", path=path, mount=mount)
    return VaultSink(spec, "live-agent", store, default_mount="secret")


async def test_deliver_then_holds(
    openbao: OpenBaoServer, vault_store: VaultStore, kv_prefix: str
) -> None:
    path = f"portal/{kv_prefix.removeprefix('mistral/')}"
    sink = sink_at(vault_store, f"/{path}/")
    expires = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)

    assert sink.id == f"vault:secret/{path}"
    assert await sink.holds(Delivery("live-agent", 3, KEY, expires)) is False
    await sink.deliver(Delivery("live-agent", 3, KEY, expires))

    written = openbao.client().secrets.kv.v2.read_secret_version(
        path=path, raise_on_deleted_version=True
    )["data"]["data"]
    assert written == {
        "api_key": KEY,
        "expires_at": "2026-06-30T12:00:00+00:00",
        "version": "3",
        "key": "live-agent",
    }
    assert await sink.holds(Delivery("live-agent", 3, KEY, expires)) is True
    assert await sink.holds(Delivery("live-agent", 4, NEXT)) is False

    await sink.deliver(Delivery("live-agent", 4, NEXT))
    assert await sink.holds(Delivery("live-agent", 4, NEXT)) is True
    assert await vault_store.read_kv("secret", path) == {
        "api_key": NEXT,
        "expires_at": "",
        "version": "4",
        "key": "live-agent",
    }


async def test_other_mount(openbao: OpenBaoServer, vault_store: VaultStore, kv_prefix: str) -> None:
    mount = "kv-" + kv_prefix[-8:]
    openbao.client().sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    sink = sink_at(vault_store, "portal/mistral", mount=mount)
    assert sink.id == f"vault:{mount}/portal/mistral"
    await sink.deliver(Delivery("live-agent", 1, KEY))
    assert await sink.holds(Delivery("live-agent", 1, KEY)) is True


async def test_refused_or_unreachable_vault_is_a_sink_error_without_the_key(
    openbao: OpenBaoServer, tmp_path: Path, kv_prefix: str
) -> None:
    store = VaultStore(
        settings_for(openbao, tmp_path, auth=create_approle(openbao, tmp_path)), Metrics()
    )
    try:
        # The shipped policy grants sinks under portal/ only.
        sink = sink_at(store, f"elsewhere/{kv_prefix[-8:]}")
        with pytest.raises(SinkError) as caught:
            await sink.deliver(Delivery("live-agent", 1, KEY))
        assert str(caught.value) == (
            f"{sink.id}: permission denied on secret/data/elsewhere/{kv_prefix[-8:]}"
        )
        with pytest.raises(SinkError, match="permission denied"):
            await sink.holds(Delivery("live-agent", 1, KEY))
    finally:
        store.close()

    down = VaultStore(
        settings_for(openbao, tmp_path, address=f"http://127.0.0.1:{free_port_pair()}"), Metrics()
    )
    try:
        with pytest.raises(SinkError, match="cannot connect") as caught:
            await sink_at(down, "portal/x").deliver(Delivery("live-agent", 1, KEY))
        assert KEY not in str(caught.value) and "EFGH" not in str(caught.value)
    finally:
        down.close()
