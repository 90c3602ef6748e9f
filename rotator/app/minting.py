"""Wiring of the Admin API, inventory and minting into the daemon (only with ``mistral.admin``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rotator.adapters.metrics.admin import AdminMetrics
from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.mistral.admin import MistralAdminClient
from rotator.config import Settings
from rotator.config.admin import MintSettings, read_admin_key
from rotator.core.admin_keys import AdminKeys, run_admin_keys
from rotator.core.minting import Minter
from rotator.core.service import KeyService
from rotator.ports import SecretStore, Verifier


@dataclass(frozen=True)
class AdminKeysDeps:
    """What the daemon's Mistral Admin API task is given (built by ``rotator.app.bootstrap``)."""

    keys: AdminKeys
    client: MistralAdminClient
    """Closed with the daemon's other clients."""
    poll_s: float
    """Mint, recover and retire this often."""
    inventory_s: float
    """List the organization's keys this often."""


def build_admin_keys(
    settings: Settings,
    *,
    metrics: Metrics,
    store: SecretStore,
    verifier: Verifier,
    service: KeyService,
) -> AdminKeysDeps | None:
    """None without ``mistral.admin``. Raises ConfigError when the admin key is unreadable."""
    admin_settings = settings.mistral.admin
    if admin_settings is None:
        return None
    admin_metrics = AdminMetrics(metrics)
    client = MistralAdminClient(
        admin_settings, read_admin_key(admin_settings), on_up=admin_metrics.up
    )
    minter = Minter(
        store=store,
        verifier=verifier,
        admin=client,
        rotate=service.rotate_held,
        owner=service.rotator.owner,
        metrics=admin_metrics,
        intent_lease=settings.rotation.lease,
    )
    configured = {k.name: k.mint for k in settings.keys}
    discovered = settings.discover.mint if settings.discover is not None else None

    def mint_for(name: str) -> MintSettings | None:
        return configured.get(name, discovered)

    poll_s = settings.schedule.poll_interval.total_seconds()
    keys = AdminKeys(
        admin=client,
        service=service,
        minter=minter,
        metrics=admin_metrics,
        mint_for=mint_for,
        retry_base_s=max(poll_s, 1.0),
    )
    inventory_s = admin_settings.inventory_interval.total_seconds()
    return AdminKeysDeps(keys, client, poll_s=poll_s, inventory_s=inventory_s)


async def admin_keys_task(deps: AdminKeysDeps, stop: asyncio.Event) -> None:
    """For ``daemon.run``: inventory, mint, retire until ``stop``."""
    await run_admin_keys(deps.keys, stop, poll_s=deps.poll_s, inventory_s=deps.inventory_s)
