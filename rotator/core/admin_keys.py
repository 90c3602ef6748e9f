"""What the daemon does with Mistral's Admin API: inventory, minting when due, retiring.

The scheduler calls :meth:`AdminKeys.inventory` every ``inventory_interval`` and
:meth:`AdminKeys.tend` every poll; ops call :meth:`AdminKeys.mint_now`. Minting holds the
key's lock in :class:`~rotator.service.KeyService` from intent to rotation, so that a poll or
an admin operation never interleaves with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from rotator.adapters.metrics.admin import AdminMetrics
from rotator.config.admin import MintSettings
from rotator.core.backoff import Backoff, BackoffPolicy
from rotator.core.inventory import Inventory, reconcile
from rotator.core.minting import Minter, MintResult, MintTarget, mint_due
from rotator.core.service import KeyBusy, KeyService, UnknownKey
from rotator.domain.model import Outcome
from rotator.domain.orgkeys import AdminApi, AdminApiError
from rotator.errors import RotatorError, SecretNotFound, VaultError
from rotator.logs import get_logger

log = get_logger(__name__)

INVENTORY_RETRY_S = 30.0
STARTING_STEP_S = 0.5


class NoMint(RotatorError):
    """The key has no ``mint`` settings (or the Admin API is not configured)."""


def _now() -> datetime:
    return datetime.now(UTC)


class AdminKeys:
    def __init__(
        self,
        *,
        admin: AdminApi,
        service: KeyService,
        minter: Minter,
        metrics: AdminMetrics,
        mint_for: Callable[[str], MintSettings | None],
        retry_base_s: float = 30.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.admin = admin
        self.service = service
        self.minter = minter
        self.metrics = metrics
        self.mint_for = mint_for
        self.clock = clock
        self.last: Inventory | None = None
        self._retry_base_s = retry_base_s
        self._backoff: dict[str, Backoff] = {}
        self._mismatch_logged: set[tuple[str, int]] = set()
        self._seen: set[str] = set()

    # --- inventory ------------------------------------------------------------------------

    async def inventory(self) -> Inventory:
        """List the organization's keys, match the managed ones, export what was learned."""
        records = await self.admin.list_keys()
        actives = {}
        for name in self.service.names():
            with contextlib.suppress(UnknownKey):
                secret = self.service.active_secret(name)
                if secret is not None:
                    actives[name] = secret
        found = reconcile(records, actives, self.clock())
        self.metrics.inventory(found)
        for match in found.matches:
            secret = actives[match.name]
            if match.expires_at is not None:
                self.service.use_mistral_expiry(match.name, secret.version, match.expires_at)
            if match.mismatch and (match.name, secret.version) not in self._mismatch_logged:
                self._mismatch_logged.add((match.name, secret.version))
                log.warning(
                    "key.expiry_mismatch",
                    key=match.name,
                    version=secret.version,
                    vault_expires_at=secret.expires_at,
                    mistral_expiration_date=match.expires_at.isoformat()
                    if match.expires_at
                    else None,
                    mistral_key_id=match.record.key_id if match.record else None,
                )
        unmanaged = sum(1 for r in found.rows if r.managed is None)
        log.info("inventory.listed", keys=len(found.rows), unmanaged=unmanaged)
        self.last = found
        return found

    async def inventory_quietly(self) -> bool:
        """The daemon's periodic inventory: a failure is logged, never raised."""
        try:
            await self.inventory()
        except AdminApiError as exc:
            log.warning("inventory.failed", reason=str(exc), http_status=exc.status)
            return False
        return True

    def keys_loaded(self) -> bool:
        """Every key's first poll is done (else inventory would call managed keys unmanaged)."""
        views = self.service.views()
        return all(v.active_version is not None or v.problem or v.last_result for v in views)

    # --- minting and retiring ---------------------------------------------------------------

    def target(self, name: str) -> MintTarget | None:
        mint = self.mint_for(name)
        if mint is None:
            return None
        return MintTarget(name, self.service.key(name).vault_path, mint)

    async def tend(self) -> bool:
        """Every poll: finish or undo a dead mint, mint what is due, retire what is done.
        True when something changed in Mistral."""
        acted = False
        for name in self.service.names():
            with contextlib.suppress(UnknownKey):
                target = self.target(name)
                if target is not None:
                    if name not in self._seen:
                        self._seen.add(name)
                        self.metrics.add_key(name)
                    acted = await self._tend(target) or acted
        return acted

    async def _tend(self, target: MintTarget) -> bool:
        lock = self.service.lock(target.name)
        if lock.locked():
            return False  # a poll or an operation is under way: next time
        async with lock:
            try:
                return await self._tend_locked(target)
            except (AdminApiError, VaultError, SecretNotFound) as exc:
                log.warning("key.mint_postponed", key=target.name, reason=str(exc))
            except Exception:
                log.exception("key.mint_unexpected_error", key=target.name)
        return False

    async def _tend_locked(self, target: MintTarget) -> bool:
        name = target.name
        acted = False
        state, _ = await self.minter.store.read_state(name)
        if state.mint_intent is not None:
            recovered = await self.minter.recover(target)
            acted = recovered.result is not Outcome.CONTENDED
        backoff = self._backoff.setdefault(name, Backoff(BackoffPolicy(self._retry_base_s, 3600.0)))
        view = self.service.view(name)
        expiry = self.service.expiry(name)
        due = mint_due(
            target.mint,
            expires_at=expiry.at if expiry else None,
            now=self.clock(),
            active_version=view.active_version,
            latest_version=view.latest_version,
        )
        if due and backoff.ready():
            result = await self.minter.mint(target, replacing=view.active_version)
            acted = acted or result.result in (Outcome.ROTATED, Outcome.FAILED)
            if result.result is Outcome.FAILED:
                wait = backoff.failed()
                log.info("key.mint_retry_scheduled", key=name, in_s=round(wait, 1))
            elif result.result is Outcome.ROTATED:
                backoff.succeeded()
        return await self.minter.retire(target) is not None or acted

    async def mint_now(self, name: str) -> MintResult:
        """Ops: mint a replacement now. KeyBusy if another operation holds the key."""
        target = self.target(name)
        if target is None:
            raise NoMint(f"key {name!r} has no mint settings")
        lock = self.service.lock(name)
        if lock.locked():
            raise KeyBusy(name)
        async with lock:
            return await self.minter.mint(target)


async def run_admin_keys(
    keys: AdminKeys,
    stop: asyncio.Event,
    *,
    poll_s: float,
    inventory_s: float,
) -> None:
    """The daemon's task: inventory once every key is loaded, then every ``inventory_s``
    (and soon after a mint); mint, recover and retire every ``poll_s``."""
    next_inventory = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_inventory and keys.keys_loaded():
            ok = await keys.inventory_quietly()
            next_inventory = now + (inventory_s if ok else min(inventory_s, INVENTORY_RETRY_S))
        acted = await keys.tend()
        if acted:
            next_inventory = 0.0  # see the new key in Mistral's list at once
        wait = poll_s if keys.keys_loaded() else STARTING_STEP_S
        wait = max(0.05, min(wait, next_inventory - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
