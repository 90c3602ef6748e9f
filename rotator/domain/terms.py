"""The words the daemon and its command line share: what a key's name may be, what an
operation came to.

Apart from :mod:`rotator.domain.model` so that a client command (``rotator status``,
``rotate``) reads them without building the model's dataclasses at every start; the model
imports them from here.
"""

from __future__ import annotations

import enum
import re

KEY_NAME = re.compile(r"^[a-z0-9-]{1,63}$")
"""A key's name: configured, discovered, or typed on the command line."""


class Outcome(enum.StrEnum):
    """What a rotate, a rollback or a poll came to: the one list of outcomes (API, metrics,
    logs and the CLI all use these strings)."""

    ROTATED = "rotated"
    ROLLED_BACK = "rolled_back"
    NOOP = "noop"
    REJECTED = "rejected"
    FAILED = "failed"
    POSTPONED = "postponed"
    CONTENDED = "contended"
    """Another instance holds the key's lease (minting): nothing was decided here."""
