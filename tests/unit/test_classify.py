"""What each answer to GET /v1/models says about a key (the contract's status table)."""

from __future__ import annotations

import json

import pytest

from rotator.adapters.mistral.verifier import classify, summarize
from rotator.domain.model import Status
from rotator.logs import REDACTOR

MODEL = "mistral-large-latest"


def _models(*ids: str) -> bytes:
    return json.dumps(
        {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}
    ).encode()


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        (200, _models("mistral-small-latest", MODEL), Status.VALID),
        (200, _models("mistral-small-latest"), Status.MODEL_UNAVAILABLE),
        (200, _models(), Status.MODEL_UNAVAILABLE),
        (200, b'{"object": "list"}', Status.UNKNOWN),
        (200, b'{"object": "list", "data": {"id": "mistral-large-latest"}}', Status.UNKNOWN),
        (200, b'["mistral-large-latest"]', Status.UNKNOWN),
        (200, b"OK", Status.UNKNOWN),
        (200, b"", Status.UNKNOWN),
        (200, b"\xff\xfe\x00garbage", Status.UNKNOWN),
        (200, b"[" * 100_000, Status.UNKNOWN),
        (401, b'{"detail": "Unauthorized"}', Status.INVALID),
        (401, b'{"message": "Unauthorized", "request_id": "3f2a"}', Status.INVALID),
        (401, b"", Status.INVALID),
        (402, b'{"object": "error", "message": "Payment required"}', Status.BILLING_BLOCKED),
        (403, b"", Status.FORBIDDEN),
        (404, b'{"detail": "Not Found"}', Status.MODEL_UNAVAILABLE),
        (429, b'{"message": "Requests rate limit exceeded"}', Status.RATE_LIMITED),
        (500, b"Internal Server Error", Status.UNREACHABLE),
        (502, b"<html><head><title>502 Bad Gateway</title></head></html>", Status.UNREACHABLE),
        (503, b'{"object": "error", "message": "Service unavailable"}', Status.UNREACHABLE),
        (504, b"", Status.UNREACHABLE),
        (301, b"", Status.UNKNOWN),
        (302, b"", Status.UNKNOWN),
        (400, b'{"message": "bad request"}', Status.UNKNOWN),
        (418, b"", Status.UNKNOWN),
    ],
)
def test_status_table(code: int, body: bytes, expected: Status) -> None:
    status, detail = classify(code, body, MODEL)
    assert status is expected
    assert detail.startswith(f"HTTP {code}")


@pytest.mark.parametrize("code", [401, 402, 403, 404, 429, 503])
def test_error_statuses_ignore_a_body_that_looks_like_success(code: int) -> None:
    status, _ = classify(code, _models(MODEL), MODEL)
    assert status is not Status.VALID


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"detail": "Unauthorized"}', "HTTP 401: Unauthorized"),
        (b'{"message": "Unauthorized", "request_id": "3f2a-11"}', "HTTP 401: Unauthorized"),
        (b"", "HTTP 401: (empty body)"),
        (b'{"detail": [{"loc": ["header"], "msg": "x"}]}', 'HTTP 401: {"detail": [{"loc":'),
    ],
)
def test_detail_reads_the_usual_error_shapes(body: bytes, detail: str) -> None:
    assert classify(401, body, MODEL)[1].startswith(detail)


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
