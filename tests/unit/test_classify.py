"""What each answer to GET /v1/models says about a key (the contract's status table).

Mistral's answers come from the stand-in (``rotator.demo.answers``): the same bytes that
``tests/integration/test_standin_sdk.py`` shows Mistral's own SDK reads as Mistral's. Bodies
written here are only the odd ones no Mistral shape covers.
"""

from __future__ import annotations

import json

import pytest

from rotator.adapters.mistral.verifier import classify, summarize
from rotator.demo.answers import answer, model_list
from rotator.demo.standin import BEHAVIOURS, DEFAULT_MODELS, parse_behaviour
from rotator.domain.model import Status
from rotator.logs import REDACTOR

MODEL = "mistral-large-latest"


def _models(*ids: str) -> bytes:
    """The stand-in's model list for a key that may use ``ids`` (and their aliases)."""
    return json.dumps(model_list(ids)).encode()


def mistral(behaviour: str) -> tuple[int, bytes]:
    """Status and body of the stand-in's answer for ``behaviour``."""
    ((name, arg),) = parse_behaviour(behaviour)
    canned = answer(name, arg, DEFAULT_MODELS)
    assert canned is not None, f"{behaviour} sends no answer"
    return canned.status, canned.body


# Every behaviour that sends an answer ("reset" cuts the connection instead).
STANDIN = [
    ("valid", Status.VALID, "HTTP 200: mistral-large-latest available"),
    ("slow:0", Status.VALID, "HTTP 200: mistral-large-latest available"),
    ("no-model", Status.MODEL_UNAVAILABLE, "HTTP 200: mistral-large-latest not among"),
    ("invalid", Status.INVALID, "HTTP 401: Unauthorized"),
    ("invalid-detail", Status.INVALID, "HTTP 401: Unauthorized"),
    ("invalid-message", Status.INVALID, "HTTP 401: Unauthorized"),
    ("invalid-empty", Status.INVALID, "HTTP 401: (empty body)"),
    ("billing", Status.BILLING_BLOCKED, "HTTP 402: Payment required"),
    ("forbidden", Status.FORBIDDEN, "HTTP 403: You do not have access"),
    ("not-found", Status.MODEL_UNAVAILABLE, "HTTP 404: Not Found"),
    ("rate-limited", Status.RATE_LIMITED, "HTTP 429: Requests rate limit exceeded"),
    ("unavailable", Status.UNREACHABLE, "HTTP 503: Service unavailable"),
    ("bad-gateway", Status.UNREACHABLE, "HTTP 502: 502 Bad Gateway"),
    ("not-json", Status.UNKNOWN, "HTTP 200: answer is not JSON"),
    ("no-list", Status.UNKNOWN, "HTTP 200: answer has no model list"),
    ("redirect", Status.UNKNOWN, "HTTP 302: redirect not followed"),
]


def test_every_answer_of_the_standin_is_in_the_table() -> None:
    assert {b.partition(":")[0] for b, _, _ in STANDIN} == BEHAVIOURS - {"reset"}


@pytest.mark.parametrize(("behaviour", "expected", "detail"), STANDIN)
def test_standin_answers(behaviour: str, expected: Status, detail: str) -> None:
    status, said = classify(*mistral(behaviour), MODEL)
    assert status is expected
    assert said.startswith(detail)


@pytest.mark.parametrize("model", ["mistral-large-2411", "mistral-large-latest"])
def test_a_model_is_found_by_its_dated_id_or_its_alias(model: str) -> None:
    assert classify(*mistral("valid"), model)[0] is Status.VALID


def test_a_fine_tuned_model_is_found() -> None:
    tuned = "ft:open-mistral-7b:587a6b29:20240514:7e773925"
    assert classify(200, _models(MODEL, tuned), tuned)[0] is Status.VALID


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        (200, _models("mistral-small-latest"), Status.MODEL_UNAVAILABLE),
        (200, _models(), Status.MODEL_UNAVAILABLE),
        (200, b'{"object": "list", "data": {"id": "mistral-large-latest"}}', Status.UNKNOWN),
        (200, b'["mistral-large-latest"]', Status.UNKNOWN),
        (200, b"", Status.UNKNOWN),
        (200, b"\xff\xfe\x00garbage", Status.UNKNOWN),
        (200, b"[" * 100_000, Status.UNKNOWN),
        (403, b"", Status.FORBIDDEN),
        (500, b"Internal Server Error", Status.UNREACHABLE),
        (504, b"", Status.UNREACHABLE),
        (301, b"", Status.UNKNOWN),
        (400, b'{"message": "bad request"}', Status.UNKNOWN),
        (418, b"", Status.UNKNOWN),
    ],
)
def test_status_table_beyond_the_standin(code: int, body: bytes, expected: Status) -> None:
    status, detail = classify(code, body, MODEL)
    assert status is expected
    assert detail.startswith(f"HTTP {code}")


@pytest.mark.parametrize("code", [401, 402, 403, 404, 429, 503])
def test_error_statuses_ignore_a_body_that_looks_like_success(code: int) -> None:
    status, _ = classify(code, mistral("valid")[1], MODEL)
    assert status is not Status.VALID


def test_detail_of_a_validation_error_is_its_json() -> None:
    body = b'{"detail": [{"loc": ["header"], "msg": "x"}]}'
    assert classify(401, body, MODEL)[1].startswith('HTTP 401: {"detail": [{"loc":')


def test_detail_of_an_html_gateway_page_is_one_short_line() -> None:
    page = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>" + b"x " * 500
    status, detail = classify(502, page, MODEL)
    assert status is Status.UNREACHABLE
    assert detail.startswith("HTTP 502: 502 Bad Gateway")
    assert "<" not in detail and "\n" not in detail
    assert len(detail) <= len("HTTP 502: ") + 200 + 3


def test_detail_names_the_missing_model() -> None:
    assert MODEL in classify(200, _models("open-mistral-nemo"), MODEL)[1]


KEY = "Zx9QeLr2TbW7uYc4Nd8Hk1Mp5Sa3Vf6G"  # the shape of a Mistral key: 32 letters and digits


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"message": f"Invalid API key {KEY}"}).encode(),
        json.dumps({"detail": f"key '{KEY}' was revoked"}).encode(),
        f"<html><body>Bad key: {KEY}</body></html>".encode(),
        f"Authorization: Bearer {KEY}".encode(),
        json.dumps({"message": "m", "echo": {"headers": {"authorization": KEY}}}).encode(),
    ],
)
@pytest.mark.parametrize("code", [400, 401, 403, 429, 502])
def test_detail_never_holds_a_key_echoed_in_the_body(body: bytes, code: int) -> None:
    detail = classify(code, body, MODEL)[1]
    assert KEY not in detail
    assert KEY[:16] not in detail and KEY[-16:] not in detail


def test_detail_hides_a_registered_key_of_any_shape() -> None:
    odd_key = "short-key_with-dashes-9"
    REDACTOR.add(odd_key)
    assert odd_key not in summarize(f'{{"message": "unknown key {odd_key}"}}'.encode())


def test_detail_keeps_request_ids_readable() -> None:
    body = b'{"message": "Unauthorized", "request_id": "a1b2c3d4-e5f6-4711-8899-aabbccddeeff"}'
    assert summarize(body) == "Unauthorized"
    assert "a1b2c3d4-e5f6" in summarize(b"request a1b2c3d4-e5f6-4711-8899-aabbccddeeff failed")
