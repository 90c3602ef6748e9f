"""Change detection in bulk: OpenBao's detailed-metadata list.

OpenBao (2.2 and later) answers ``LIST <mount>/detailed-metadata/<folder>/`` with the
metadata of every secret in the folder, paged with ``after`` and ``limit``. One page of
:data:`LIST_PAGE` entries replaces as many KV v2 metadata reads: at 10,000 tenants a poll is
ten requests instead of 10,000, and only a secret whose newest live version moved is read.

HashiCorp Vault has no such endpoint; a policy without ``list`` on the detailed-metadata path
refuses it. Either way the caller falls back to one metadata read per key
(:class:`FolderUnsupported`).

Pure parsing here; :meth:`rotator.adapters.vault.gateway.VaultStore.scan_folder` makes the calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import hvac

from rotator.adapters.vault.codec import live_versions
from rotator.adapters.vault.direct import DirectReads, raise_for_answer

LIST_PAGE = 1000
"""Entries a page: about 400 KB of JSON from OpenBao, parsed in one worker thread."""


class FolderUnsupported(Exception):  # a verdict, not a failure
    """The server has no detailed-metadata list (HashiCorp Vault, OpenBao before 2.2)."""


class Listed(NamedTuple):
    """One secret as the list shows it."""

    version: int
    """The newest live version; 0 when none is live."""
    created: str | None = None
    """The secret's ``created_time`` (RFC 3339, as Vault wrote it): the identity a key's state
    is checked against (a name deleted and written again is another secret), so that a
    restart need not read each secret's metadata for it."""


@dataclass(frozen=True)
class Page:
    latest: dict[str, Listed]
    """Secret name (directly in the folder) -> its newest live version and creation time."""
    last: str | None
    """The page's last entry, sub-folders included: ``after`` for the next page."""
    full: bool
    """As many entries as asked for: there may be more."""


def newest_live(metadata: dict[str, Any]) -> int:
    """The newest version neither deleted nor destroyed, 0 if none.

    The usual case (the current version is live) costs two dict lookups, no date parsing:
    this runs for every tenant on every poll.
    """
    current = int(metadata.get("current_version") or 0)
    top = (metadata.get("versions") or {}).get(str(current))
    if top is not None and not top.get("destroyed") and not top.get("deletion_time"):
        return current
    live = live_versions(metadata)
    return live[-1] if live else 0


def _listed(metadata: dict[str, Any]) -> Listed:
    created = metadata.get("created_time")
    return Listed(newest_live(metadata), created if isinstance(created, str) else None)


def parse_page(answer: dict[str, Any], limit: int) -> Page:
    data = answer.get("data") or {}
    keys: list[str] = data.get("keys") or []
    info: dict[str, Any] = data.get("key_info") or {}
    latest = {name: _listed(info.get(name) or {}) for name in keys if not name.endswith("/")}
    return Page(latest, keys[-1] if keys else None, len(keys) >= limit)


def page_request(
    reads: DirectReads, mount: str, folder: str, limit: int, after: str | None
) -> Callable[[hvac.Client], Page]:
    """One LIST call, for :meth:`VaultStore._call` (which logs in, retries a dead token and
    maps transport failures), sent on the urllib3 pool by ``reads`` (a page every few seconds
    per thousand keys: see :mod:`rotator.adapters.vault.direct`). Raises FolderUnsupported
    when the endpoint does not exist."""
    url = f"/v1/{mount}/detailed-metadata/{folder}"
    params: dict[str, str | int] = {"limit": limit}
    if after is not None:
        params["after"] = after

    def call(_client: hvac.Client) -> Page:
        answer = reads.request("list", url, params, raise_exception=False)
        if isinstance(answer, dict):
            return parse_page(answer, limit)
        status = answer.status_code
        body = _json(answer)
        if status == 404 and not body.get("warnings") and not body.get("errors"):
            return Page({}, None, False)  # an empty or absent folder
        if status in (404, 405):
            # Vault's KV v2 answers paths it does not know with 404 and a warning ("Invalid
            # path for a versioned K/V secrets engine"), some proxies with 405.
            raise FolderUnsupported(f"{mount}/detailed-metadata: HTTP {status}")
        raise_for_answer("LIST", url, answer)
        raise FolderUnsupported(f"{mount}/detailed-metadata: HTTP {status}")  # not reached

    return call


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
