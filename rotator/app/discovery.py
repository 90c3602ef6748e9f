"""Discovery: every secret under a KV v2 prefix is a managed key (one per tenant).

Re-listed at every poll: a secret added under the prefix becomes a key with its own sinks
(``{name}`` in the sink settings is the secret's name); one whose metadata is deleted stops
being managed and its metric series go away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from rotator.adapters.sinks.registry import close_sinks
from rotator.core.rotation import ManagedKey
from rotator.core.service import KeyService
from rotator.domain.model import KEY_NAME
from rotator.errors import ConfigError, VaultError
from rotator.logs import get_logger
from rotator.ports import NameLister

log = get_logger(__name__)

ADDED_ONE_BY_ONE = 20
"""Up to this many tenants new in one listing are logged one by one at info."""

KeyFactory = Callable[[str], ManagedKey]
"""A managed key, with its sinks, for a discovered name; ConfigError for a sink that can
never work."""


class Discovery:
    def __init__(
        self,
        prefix: str,
        *,
        lister: NameLister,
        service: KeyService,
        static: Iterable[str],
        new_key: KeyFactory,
    ) -> None:
        self.prefix = prefix
        self.lister = lister
        self.service = service
        self.static = set(static)
        self.new_key = new_key
        self.managed: set[str] = set()
        self._warned: set[str] = set()
        self._skipped: dict[str, set[str]] = {}
        """Names not managed at the last listing, by reason (rotator_discover_skipped)."""

    async def check_conflicts(self) -> None:
        """At start-up, the rule of every later poll: a tenant named like a configured key
        is skipped and reported, the configured key wins. Anyone who can write under the
        prefix must not be able to stop the daemon (and every key) at its next start."""
        try:
            names = await self.lister.list_names(self.prefix)
        except VaultError as exc:
            log.warning("discover.unchecked", prefix=self.prefix, reason=str(exc))
            return
        for name in sorted(set(names)):
            self._acceptable(name)

    async def refresh(self) -> None:
        try:
            listed = await self.lister.list_names(self.prefix)
        except VaultError:
            return  # keep managing what we had; the adapter logged it
        await self.update(listed)

    async def update(self, listed: Iterable[str]) -> None:
        """Manage exactly the acceptable names of ``listed`` (the secrets under the prefix)."""
        # Counted afresh at every listing: a tenant renamed or deleted is skipped no more.
        self._skipped = {}
        wanted = {n for n in listed if not n.endswith("/") and self._acceptable(n)}
        for why in ("conflict", "bad_name", "bad_sink"):
            skipped = len(self._skipped.get(why, ()))
            self.service.metrics.discover_skipped.labels(reason=why).set(skipped)
        new = sorted(wanted - self.managed)
        if new:
            # Building sinks may read files (header references): not on the event loop, and
            # in one hop for them all (10,000 hops at a first listing took seconds).
            quiet = len(new) > ADDED_ONE_BY_ONE
            built = await asyncio.to_thread(self._build, new)
            added = sum(self._add(name, key, quiet=quiet) for name, key in built)
            if quiet and added:
                # A first listing of 10,000 tenants: one line, not 10,000 (about a twentieth
                # of a restart's CPU went into them); each name is in the debug log.
                log.info("discover.added", count=added, prefix=self.prefix)
        for name in sorted(self.managed - wanted):
            gone = self.service.remove(name, clear_state=True)
            self.managed.discard(name)
            if gone is not None:
                await close_sinks(gone.sinks)
            log.info("discover.removed", key=name)

    def _acceptable(self, name: str) -> bool:
        if name in self.static:
            self._skip(
                name, "conflict", "discover.conflict", "also in keys; the configured one wins"
            )
            return False
        if not KEY_NAME.match(name):
            self._skip(name, "bad_name", "discover.skipped", "name must match [a-z0-9-]{1,63}")
            return False
        return True

    def _skip(self, name: str, why: str, event: str, reason: str) -> None:
        self._warn_once(name, event, reason)
        self._skipped.setdefault(why, set()).add(name)
        self.service.metrics.discover_skipped.labels(reason=why).set(len(self._skipped[why]))

    def _build(self, names: list[str]) -> list[tuple[str, ManagedKey | ConfigError]]:
        built: list[tuple[str, ManagedKey | ConfigError]] = []
        for name in names:
            try:
                built.append((name, self.new_key(name)))
            except ConfigError as exc:
                built.append((name, exc))
        return built

    def _add(self, name: str, key: ManagedKey | ConfigError, *, quiet: bool) -> bool:
        if isinstance(key, ConfigError):
            self._skip(name, "bad_sink", "discover.bad_sink", "; ".join(key.problems))
            return False
        self.service.add(key)
        self.managed.add(name)
        (log.debug if quiet else log.info)("discover.added", key=name, vault_path=key.vault_path)
        return True

    def _warn_once(self, name: str, event: str, reason: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning(event, name=name, reason=reason)
