"""What a reminder says, and the shape every channel has."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from rotator.errors import RotatorError


class NotifyError(RotatorError):
    """A reminder could not be handed over; the message names why, never a link or key."""


@dataclass(frozen=True)
class Reminder:
    key: str
    integration: str
    threshold: str
    """``warn`` or ``critical``."""
    days_left: int
    expires_at: datetime
    url: str = field(repr=False)
    """The one-time link: a secret, kept out of repr and every log line."""
    link_expires_at: datetime
    email: str | None
    language: str
    id: str
    """The same for every send of one threshold to one key generation (a resend after a
    crash between send and record included): the e-mail's Message-ID and the webhook's
    ``id``, so that a mail client or a receiver can drop the duplicate."""


def reminder_id(key: str, version: int, threshold: str) -> str:
    """Stable and opaque: names no key value, no link, nothing the owner types."""
    return hashlib.sha256(f"{key}\0{version}\0{threshold}".encode()).hexdigest()[:32]


class Channel(Protocol):
    @property
    def name(self) -> str:
        """``email`` or ``webhook``: the ``channel`` label."""
        ...

    def applies(self, reminder: Reminder) -> bool:
        """Whether this channel can reach the owner (e-mail needs an address)."""
        ...

    async def send(self, reminder: Reminder) -> None:
        """Hand the reminder over. Raises NotifyError."""
        ...
