"""What changed in Vault since the last poll, in as few requests as the server allows.

Each poll cycle lists the discover prefix, and every folder holding two or more configured
keys, with OpenBao's detailed-metadata list (one request a page of entries). That gives each
key's newest live version: a key whose version is the one already settled is not polled at
all, and only a key that moved has its secret read. Where the list is not offered (HashiCorp
Vault, a policy without ``detailed-metadata``, a folder with one key), the key is polled as
before, with one metadata read of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from rotator.adapters.vault.listing import Listed
from rotator.app.discovery import Discovery
from rotator.errors import VaultError
from rotator.logs import get_logger

log = get_logger(__name__)

_GONE = Listed(0)


class FolderScanner(Protocol):
    async def scan_folder(self, folder: str) -> dict[str, Listed] | None:
        """Name -> newest live version (0: none) and creation time under ``folder``; None
        when not offered."""
        ...


def shared_folders(paths: Iterable[str]) -> dict[str, list[str]]:
    """Folder (with a trailing ``/``, or "" for the mount's root) -> the paths in it, for
    folders that hold more than one of ``paths``."""
    folder_of = {p: p.rpartition("/")[0] + "/" if "/" in p else "" for p in paths}
    counts = Counter(folder_of.values())
    shared: dict[str, list[str]] = {}
    for path, folder in folder_of.items():
        if counts[folder] > 1:
            shared.setdefault(folder, []).append(path)
    return shared


class Watch:
    """One poll cycle's listing: key name -> newest live version (and the secret's creation
    time), for the keys it covers."""

    def __init__(
        self,
        store: FolderScanner,
        configured: dict[str, str],
        discovery: Discovery | None = None,
    ) -> None:
        """``configured``: each configured key's Vault path -> its name."""
        self._store = store
        self._discovery = discovery
        self._configured = configured
        self._folders = shared_folders(configured)

    async def cycle(self) -> dict[str, Listed]:
        """Refresh the discovered keys; the versions listed (keys missing: poll them alone)."""
        latest: dict[str, Listed] = {}
        if self._discovery is not None:
            latest.update(await self._discover(self._discovery))
        for folder, paths in self._folders.items():
            try:
                listed = await self._store.scan_folder(folder)
            except VaultError:
                continue  # logged by the adapter; each key's own poll meets it too
            if listed is None:
                continue
            for path in paths:
                # Absent from the list: the secret is gone (its metadata deleted).
                latest[self._configured[path]] = listed.get(path.rpartition("/")[2], _GONE)
        return latest

    async def _discover(self, discovery: Discovery) -> dict[str, Listed]:
        try:
            listed = await self._store.scan_folder(discovery.prefix)
        except VaultError:
            return {}  # keep managing what we had; the adapter logged it
        if listed is None:
            await discovery.refresh()
            return {}
        await discovery.update(listed)
        return {name: v for name, v in listed.items() if name in discovery.managed}
