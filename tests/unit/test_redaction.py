"""The log scrubber: managed key values and bearer tokens never reach the output."""

from __future__ import annotations

import json
import logging

import pytest

from rotator import logs

KEY = "sk-test-0123456789abcdefWXYZ"


def test_scrubs_keys_and_bearer_tokens_from_structlog_and_stdlib(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("json")
    logs.REDACTOR.add(KEY)
    logs.get_logger("t").info("key.verified", note=f"oops {KEY}", header="Bearer abc.def-123")
    logging.getLogger("httpx").warning("request with Authorization: Bearer %s", KEY)
    try:
        raise ValueError(f"boom {KEY}")
    except ValueError:
        logs.get_logger("t").exception("key.unexpected_error")
    out = capsys.readouterr().out
    assert KEY not in out and "abc.def-123" not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["event"] == "key.verified" and "[REDACTED]" in lines[0]["note"]
    assert lines[1]["event"].endswith("Bearer [REDACTED]")
    assert "[REDACTED]" in lines[2]["exception"]


def test_short_values_are_not_registered() -> None:
    r = logs.Redactor()
    r.add("abc")
    assert r.scrub("abc def") == "abc def"
