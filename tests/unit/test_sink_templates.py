"""Header references and the HTTP body template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rotator.adapters.sinks.templates import render_body, resolve_references
from rotator.domain.model import Delivery
from rotator.errors import SinkError
from rotator.logs import REDACTOR
from tests.sink_helpers import KEY_NAME, V1, V2


def test_every_placeholder_is_filled_and_other_braces_stay() -> None:
    template = (
        '{"auth": {"key": "{api_key}"}, "until": "{expires_at}", '
        '"who": "{name}", "n": {version}, "literal": "{other}"}'
    )
    assert json.loads(render_body(template, V1)) == {
        "auth": {"key": V1.api_key},
        "until": "2027-01-31T12:00:00+00:00",
        "who": KEY_NAME,
        "n": 1,
        "literal": "{other}",
    }


def test_unknown_expiry_renders_empty() -> None:
    assert render_body("[{expires_at}]", V2) == "[]"


def test_values_are_escaped_for_a_json_string() -> None:
    odd = Delivery(key=KEY_NAME, version=7, api_key='abc"def\\ghi\njkl')
    rendered = render_body('{"api_key": "{api_key}"}', odd)
    assert json.loads(rendered) == {"api_key": odd.api_key}


def test_a_value_is_never_scanned_again_for_placeholders() -> None:
    sneaky = Delivery(key=KEY_NAME, version=1, api_key="abcd{name}{version}efgh")
    assert render_body("{api_key}", sneaky) == "abcd{name}{version}efgh"


def test_env_and_file_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_TOKEN", "tok-env-7777777")
    token_file = tmp_path / "t"
    token_file.write_text("tok-file-8888888\n")
    value = resolve_references(
        "Bearer ${env:PORTAL_TOKEN} ${file:" + str(token_file) + "}", where="header X"
    )
    assert value == "Bearer tok-env-7777777 tok-file-8888888"
    # Tokens read this way are secrets: the log scrubber knows them now.
    assert REDACTOR.scrub("x tok-file-8888888 y") == "x [REDACTED] y"


def test_missing_env_is_named_without_any_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_THERE_1", raising=False)
    with pytest.raises(SinkError, match="header Authorization: environment variable NOT_THERE_1"):
        resolve_references("Bearer ${env:NOT_THERE_1}", where="header Authorization")


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(SinkError, match=f"file {missing} does not exist"):
        resolve_references("${file:" + str(missing) + "}", where="header X")


def test_text_without_references_is_unchanged() -> None:
    assert resolve_references("application/json; {x}", where="h") == "application/json; {x}"
