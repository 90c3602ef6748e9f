"""Every page of the intake and every outcome it can answer, in every language: the one list
that the browser test screenshots (docs/img/intake-{language}-{page}.png), the operator guide
shows and tests/unit/test_intake_screenshots.py checks, so that none goes missing unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "img"
GUIDE = ROOT / "docs" / "operator-guide.md"
LANGUAGES = ("en", "de", "it")


@dataclass(frozen=True)
class IntakePage:
    id: str
    """In the file name, numbered in the order the browser test reaches it."""
    label: str
    """The operator guide's row."""
    messages: tuple[str, ...]
    """The i18n keys of what the page says (title and message)."""
    status: int


PAGES = (
    IntakePage("1-form", "the form", ("title", "steps_title", "form_title"), 200),
    IntakePage("2-key-whitespace", "the key contains a space", ("key_whitespace",), 422),
    IntakePage("3-expiry-past", "expiry in the past", ("expiry_past",), 422),
    IntakePage("4-expiry-beyond", "expiry beyond the maximum", ("expiry_beyond",), 422),
    IntakePage("5-invalid", "not valid (401)", ("invalid",), 422),
    IntakePage("6-billing", "billing not set up (402)", ("billing",), 422),
    IntakePage("7-plan", "model not on the plan (403)", ("plan",), 422),
    IntakePage("8-busy", "Mistral busy (429, 5xx)", ("busy",), 503),
    IntakePage("9-accepted", "accepted, live", ("accepted_title", "accepted"), 200),
    IntakePage("10-gone", "link no longer valid (410)", ("gone_title", "gone"), 410),
    IntakePage("11-stored", "stored, not live yet", ("stored_title", "accepted_not_live"), 200),
    IntakePage(
        "12-forbidden",
        "form not from this page (403)",
        ("forbidden_title", "forbidden"),
        403,
    ),
    IntakePage("13-too-large", "form over 8 KiB (413)", ("too_large_title", "too_large"), 413),
    IntakePage(
        "14-last-attempt",
        "the link's last attempt failed (410)",
        ("gone_title", "invalid", "gone"),
        410,
    ),
)

NOT_SHOWN = {
    "key_missing": "the browser's required field stops an empty key",
    "expiry_missing": "the browser's required field stops an empty date",
    "expiry_format": "the date field sends only YYYY-MM-DD",
    "conflict": "only when another write to Vault wins the race",
    "unavailable": "only while Vault cannot be reached (tests/security/test_intake_red_team.py)",
    "key_characters": "2-key-whitespace's page with other words (an invisible character)",
}
"""Outcomes without a screenshot, and why: a browser does not get there."""


def image(language: str, page: IntakePage) -> Path:
    return IMAGES / f"intake-{language}-{page.id}.png"
