"""Inventory: the organization's keys next to the managed ones. Pure functions over values.

A managed key is matched to its Mistral record by ``mistral_key_id``, else by ``hidden_key``
when exactly one record fits (contract). For a matched key Mistral's ``expiration_date`` is
the expiry; a Vault ``expires_at`` more than a day away from it is a mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rotator.core.minting import match_record
from rotator.domain.expiry import parse_expires_at
from rotator.domain.model import SecretVersion
from rotator.domain.orgkeys import OrgKey
from rotator.errors import BadSecret

MISMATCH_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class KeyMatch:
    """What inventory learned about one managed key."""

    name: str
    record: OrgKey | None
    """None: no record matched for sure."""
    mismatch: bool = False
    """Vault's ``expires_at`` disagrees with Mistral's ``expiration_date`` by over a day."""

    @property
    def expires_at(self) -> datetime | None:
        return self.record.expires_at if self.record is not None else None


@dataclass(frozen=True)
class InventoryRow:
    record: OrgKey
    managed: str | None
    """The managed key it is, if any."""

    def as_dict(self) -> dict[str, Any]:
        """What ``rotator inventory`` and ``GET /api/v1/inventory`` show: never a value."""
        r = self.record
        hidden = r.hidden_key or ""
        return {
            "key_id": r.key_id,
            "name": r.name,
            "workspace": r.workspace_name or r.workspace_id,
            "fingerprint": hidden.rpartition("...")[2] if "..." in hidden else None,
            "created_at": r.created_at.isoformat() if r.created_at else None,
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            "last_used": r.last_used.isoformat() if r.last_used else None,
            "managed_key": self.managed,
        }


@dataclass(frozen=True)
class Inventory:
    rows: tuple[InventoryRow, ...]
    matches: tuple[KeyMatch, ...]
    taken_at: datetime


def reconcile(
    records: list[OrgKey], actives: Mapping[str, SecretVersion], now: datetime
) -> Inventory:
    """Match each managed key's active secret to the organization's records."""
    matches: list[KeyMatch] = []
    owner: dict[str, str] = {}
    for name in sorted(actives):
        secret = actives[name]
        record = match_record(secret, records)
        if record is not None and record.key_id in owner:
            record = None  # two managed keys on one record: neither is sure
        matches.append(KeyMatch(name, record, _disagrees(secret, record)))
        if record is not None:
            owner[record.key_id] = name
    rows = tuple(InventoryRow(r, owner.get(r.key_id)) for r in records)
    return Inventory(rows, tuple(matches), now)


def _disagrees(secret: SecretVersion, record: OrgKey | None) -> bool:
    if record is None or record.expires_at is None or not secret.expires_at:
        return False
    try:
        declared = parse_expires_at(secret.expires_at)
    except BadSecret:
        return True
    return abs(declared - record.expires_at) > MISMATCH_TOLERANCE
