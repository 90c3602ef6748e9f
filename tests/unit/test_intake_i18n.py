"""The intake's words: every language says everything, with the same placeholders."""

from __future__ import annotations

import string

import pytest

from rotator.config import ExpirySettings
from rotator.intake import i18n
from rotator.intake.reminders import crossed, decode_sent, encode_sent, still_due


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", ["de", "it"])
def test_every_message_in_every_language(language: str) -> None:
    english, other = i18n.STRINGS["en"], i18n.STRINGS[language]
    assert set(other) == set(english)
    for key, text in english.items():
        assert _fields(other[key]) == _fields(text), key
        assert other[key] != text or key == "step_console", f"{key} is not translated"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("fr-FR,it;q=0.5,de;q=0.4", "it"),
        ("en;q=0.1, it;q=0.9", "it"),
        ("fr", "en"),
        ("de;q=bad", "en"),
    ],
)
def test_accept_language(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language


def test_dates_as_people_write_them() -> None:
    assert i18n.format_date("2026-12-24T00:00:00+00:00", "de") == "24.12.2026"
    assert i18n.format_date("2026-12-24", "it") == "24/12/2026"
    assert i18n.format_date("2026-12-24", "en") == "2026-12-24"


def test_thresholds_crossed_and_due_once_per_channel() -> None:
    expiry = ExpirySettings(warn_days=30, critical_days=7)
    assert crossed(31, ("warn", "critical"), expiry) == []
    assert crossed(25, ("warn", "critical"), expiry) == ["warn"]
    assert crossed(6, ("warn", "critical"), expiry) == ["warn", "critical"]
    assert crossed(6, ("critical",), expiry) == ["critical"]
    sent = decode_sent(encode_sent({"warn/email"}))
    assert not still_due(["warn"], sent, "email")
    assert still_due(["warn"], sent, "webhook")
    assert still_due(["warn", "critical"], sent, "email")
    assert encode_sent(set()) is None and decode_sent(None) == set()
