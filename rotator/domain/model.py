"""Values the rest of the daemon passes around. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# Defined with the CLI's other words (terms.py); here too for the rest of the daemon.
from rotator.domain.terms import KEY_NAME as KEY_NAME
from rotator.domain.terms import Outcome as Outcome


class Status(enum.StrEnum):
    """What Mistral's answer says about a key (see docs: context table)."""

    VALID = "valid"
    INVALID = "invalid"
    BILLING_BLOCKED = "billing_blocked"
    FORBIDDEN = "forbidden"
    MODEL_UNAVAILABLE = "model_unavailable"
    RATE_LIMITED = "rate_limited"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"

    @property
    def is_transient(self) -> bool:
        """True when the answer says nothing about the key itself: try again later."""
        return self in _TRANSIENT

    @property
    def rejects(self) -> bool:
        """True when a candidate key with this status must never be delivered."""
        return self in _REJECTING


_TRANSIENT = frozenset({Status.RATE_LIMITED, Status.UNREACHABLE, Status.UNKNOWN})
_REJECTING = frozenset(
    {Status.INVALID, Status.BILLING_BLOCKED, Status.FORBIDDEN, Status.MODEL_UNAVAILABLE}
)


RotationOutcome = Literal[
    Outcome.ROTATED,
    Outcome.ROLLED_BACK,
    Outcome.NOOP,
    Outcome.REJECTED,
    Outcome.FAILED,
    Outcome.POSTPONED,
]
"""What a rotate or a rollback can come to (a contended one is a noop, ``contended=True``)."""


def fingerprint(api_key: str) -> str:
    """The last four characters, as Mistral's console shows a key."""
    return api_key[-4:] if len(api_key) >= 8 else "****"


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a key's KV v2 secret. ``api_key`` is kept out of repr."""

    path: str
    version: int
    created_at: datetime
    api_key: str = field(repr=False)
    expires_at: str | None = None
    key_name: str | None = None
    workspace: str | None = None
    mistral_key_id: str | None = None
    """The key's ``key_id`` in Mistral's Admin API (written by minting, or by hand)."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.api_key)


@dataclass(frozen=True)
class Verification:
    """The outcome of asking Mistral about a key. ``detail`` never holds the key."""

    status: Status
    http_status: int | None = None
    detail: str = ""
    duration_s: float = 0.0
    retry_after_s: float | None = None


@dataclass(frozen=True)
class KeyState:
    """What the daemon has done with one key, kept in Vault under ``vault.state_path``."""

    active_version: int | None = None
    previous_version: int | None = None
    activated_at: datetime | None = None
    last_result: str | None = None
    rejected_version: int | None = None
    """A candidate that failed verification; not retried until a newer one or ops force it."""
    pending_version: int | None = None
    pending_owner: str | None = None
    pending_until: datetime | None = None
    """While set and in the future, another instance is delivering ``pending_version``."""
    mint_intent: str | None = None
    """A mint under way (uuid hex); the new key's name in Mistral ends with `` #`` + its first 8."""
    mint_owner: str | None = None
    mint_until: datetime | None = None
    """While in the future, ``mint_owner`` is minting; afterwards its intent is abandoned."""
    revoked_version: int | None = None
    """The previous version whose key was already deleted in Mistral."""
    vault_path: str | None = None
    """Which secret this state describes: a state of another (two deployments sharing one
    ``vault.state_path``) is refused, never acted on."""
    mount: str | None = None
    namespace: str | None = None
    """The KV mount and Vault namespace it was written in ("" for the root namespace)."""
    secret_created: datetime | None = None
    """The secret's ``created_time``: a secret deleted and created again (numbered from 1
    again) is another secret, and this state is not its own."""
    expiry_band: str | None = None
    expiry_band_version: int | None = None
    """The last expiry band logged (warn, critical, expired) and for which version: logged
    once per crossing and key generation, not again after a restart."""
    intake_links: str | None = None
    """The key's open intake links as JSON (``rotator.intake.links``): token digests,
    expiry, failed attempts. Never a token."""
    reminded_version: int | None = None
    reminded: str | None = None
    """Reminders already sent for ``reminded_version``: ``threshold/channel`` entries."""


@dataclass(frozen=True)
class Delivery:
    """What a sink is handed: one version of one key."""

    key: str
    version: int
    api_key: str = field(repr=False)
    expires_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.api_key)
