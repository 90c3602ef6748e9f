"""Intake tokens and what the key's state keeps of them (no I/O)."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

from rotator.intake import links as L

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def test_token_has_256_random_bits_and_names_its_key() -> None:
    tokens = {L.new_token("acme") for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        name, _, secret = token.partition(".")
        assert name == "acme" and len(secret) == 43
        assert set(secret) <= set(string.ascii_letters + string.digits + "-_")
        assert L.key_of(token) == "acme"


def test_only_well_formed_tokens_name_a_key() -> None:
    assert L.key_of("acme." + "A" * 42) is None
    assert L.key_of("ACME." + "A" * 43) is None
    assert L.key_of("../etc." + "A" * 43) is None
    assert L.key_of("") is None


def test_state_keeps_digests_never_tokens() -> None:
    token = L.new_token("acme")
    text = L.encode(L.add([], token, NOW + timedelta(days=7)))
    assert text is not None and token not in text and token.partition(".")[2] not in text
    assert re.search(r'"sha256":"[0-9a-f]{64}"', text)
    assert L.find(L.decode(text), token) is not None
    assert L.find(L.decode(text), L.new_token("acme")) is None


def test_expired_and_exhausted_links_are_not_usable() -> None:
    a, b, c = (L.new_token("k") for _ in range(3))
    links = L.add(
        L.add(L.add([], a, NOW - timedelta(seconds=1)), b, NOW + timedelta(hours=1)),
        c,
        NOW + timedelta(hours=1),
    )
    for _ in range(3):
        links = L.failed(links, L.find(links, c))  # type: ignore[arg-type]
    usable = L.usable(links, NOW, max_failures=3)
    assert [L.find(usable, t) is not None for t in (a, b, c)] == [False, True, False]


def test_at_most_five_open_links_the_oldest_dropped() -> None:
    tokens = [L.new_token("k") for _ in range(7)]
    links: list[L.Link] = []
    for token in tokens:
        links = L.add(links, token, NOW + timedelta(days=1))
    assert len(links) == L.MAX_OPEN
    assert L.find(links, tokens[0]) is None and L.find(links, tokens[-1]) is not None


def test_csrf_belongs_to_its_token() -> None:
    a, b = L.new_token("k"), L.new_token("k")
    assert L.csrf_ok(a, L.csrf_for(a))
    assert not L.csrf_ok(a, L.csrf_for(b))
    assert not L.csrf_ok(a, None) and not L.csrf_ok(a, "")


def test_unreadable_state_entries_are_dropped_not_fatal() -> None:
    assert L.decode("not json") == []
    assert L.decode('{"a": 1}') == []
    good = L.encode(L.add([], L.new_token("k"), NOW))
    assert good is not None
    mixed = good[:-1] + ',{"sha256": "zz"},{"expires_at": 3},"x"]'
    assert len(L.decode(mixed)) == 1
