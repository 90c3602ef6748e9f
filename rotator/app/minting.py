"""Wiring of the Admin API, inventory and minting into the daemon (only with ``mistral.admin``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rotator.adapters.metrics.admin import AdminMetrics
from rotator.adapters.mistral.admin import MistralAdminClient
from rotator.config.admin import MintSettings, read_admin_key
from rotator.core.admin_keys import AdminKeys, run_admin_keys
from rotator.core.minting import Minter

if TYPE_CHECKING:
    from rotator.app.bootstrap import App


def build_admin_keys(app: App) -> tuple[AdminKeys, MistralAdminClient] | None:
    """None without ``mistral.admin``. Raises ConfigError when the admin key is unreadable."""
    settings = app.settings
    admin_settings = settings.mistral.admin
    if admin_settings is None:
        return None
    metrics = AdminMetrics(app.metrics)
    client = MistralAdminClient(admin_settings, read_admin_key(admin_settings), on_up=metrics.up)
    service = app.service
    minter = Minter(
        store=app.store,
        verifier=app.verifier,
        admin=client,
        rotate=service.rotate_held,
        owner=service.rotator.owner,
        metrics=metrics,
        intent_lease=settings.rotation.lease,
    )
    configured = {k.name: k.mint for k in settings.keys}
    discovered = settings.discover.mint if settings.discover is not None else None

    def mint_for(name: str) -> MintSettings | None:
        return configured.get(name, discovered)

    keys = AdminKeys(
        admin=client,
        service=service,
        minter=minter,
        metrics=metrics,
        mint_for=mint_for,
        retry_base_s=max(settings.schedule.poll_interval.total_seconds(), 1.0),
    )
    return keys, client


async def admin_keys_task(app: App, stop: asyncio.Event) -> None:
    """For ``daemon.run``: inventory, mint, retire until ``stop``."""
    admin = app.settings.mistral.admin
    if app.admin_keys is None or admin is None:
        return
    await run_admin_keys(
        app.admin_keys,
        stop,
        poll_s=app.settings.schedule.poll_interval.total_seconds(),
        inventory_s=admin.inventory_interval.total_seconds(),
    )
