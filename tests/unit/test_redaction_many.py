"""The scrubber with thousands of tenants' keys registered (its indexed path)."""

from __future__ import annotations

import secrets

from rotator.logs import Redactor


def _many(count: int = 2000) -> tuple[Redactor, list[str]]:
    redactor = Redactor()
    values = [secrets.token_hex(16) for _ in range(count)]
    for value in values:
        redactor.add(value)
    return redactor, values


def test_every_registered_key_is_scrubbed_wherever_it_sits() -> None:
    redactor, values = _many()
    text = f"{values[0]} start, middle {values[1234]}; adjacent {values[5]}{values[6]} {values[-1]}"
    scrubbed = redactor.scrub(text)
    assert all(v not in scrubbed for v in (values[0], values[1234], values[5], values[6]))
    assert values[-1] not in scrubbed
    assert scrubbed == (
        "[REDACTED] start, middle [REDACTED]; adjacent [REDACTED][REDACTED] [REDACTED]"
    )


def test_text_without_keys_is_unchanged_apart_from_bearer_tokens() -> None:
    redactor, _ = _many()
    line = '{"event": "key.verified", "key": "tenant-00042", "status": "valid", "n": 12345678}'
    assert redactor.scrub(line) == line
    assert redactor.scrub("Authorization: Bearer abc.def") == "Authorization: Bearer [REDACTED]"
    assert redactor.scrub("short") == "short"


def test_keys_sharing_a_beginning_are_each_scrubbed_whole() -> None:
    redactor, _ = _many()
    shorter = "sk-shared-head-0001"
    longer = shorter + "-and-more"
    redactor.add(shorter)
    redactor.add(longer)
    assert redactor.scrub(f"a {longer} b {shorter} c") == "a [REDACTED] b [REDACTED] c"


def test_a_key_registered_twice_is_scrubbed_once() -> None:
    redactor, values = _many()
    redactor.add(values[7])
    assert redactor.scrub(f"x{values[7]}x") == "x[REDACTED]x"
