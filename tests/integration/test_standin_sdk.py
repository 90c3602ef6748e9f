"""The Mistral stand-in against Mistral's own Python SDK (``mistralai``): the contract test.

The stand-in is what the demo, every test and the benchmarks take for Mistral. Here Mistral's
official client reads its answers over real HTTP: a model list must parse into the SDK's own
model cards, an error must become the SDK's own error with the status code, and each of the
stand-in's behaviours is listed with what a user of the SDK sees. The verifier's tests classify
these same answers (``rotator.demo.answers``), so a change in Mistral's shape is made once.

``mistralai`` 3.x: ``from mistralai.client import Mistral``. For ``models.list()`` the SDK
has one error type for every 4xx and 5xx answer, ``SDKError`` (a ``MistralError``), carrying
``status_code``, ``headers`` and ``body``; transport failures are ``httpx2`` exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2
import pytest
from mistralai.client import Mistral, errors
from mistralai.client.models import BaseModelCard, FTModelCard, ModelList
from mistralai.client.utils import BackoffStrategy, RetryConfig

from rotator.demo.answers import model_list
from rotator.demo.standin import BEHAVIOURS, DEFAULT_MODELS, MistralStandIn, parse_behaviour

KEY = "Zx9QeLr2TbW7uYc4Nd8Hk1Mp5Sa3Vf6G"
TIMEOUT_MS = 10_000  # generous: a loaded CI machine must not turn an answer into a timeout
SHORT_TIMEOUT_MS = 500
BEYOND_TIMEOUT = "slow:5"


@pytest.fixture(scope="module")
def client() -> Iterator[Mistral]:
    """One client for the module (each costs two TLS contexts); each call names its server."""
    with Mistral(api_key=KEY, timeout_ms=TIMEOUT_MS) as made:
        yield made


def what_the_sdk_sees(client: Mistral, url: str, timeout_ms: int | None = None) -> str:
    """``client.models.list()`` against ``url``, told in a few words."""
    try:
        listed = client.models.list(server_url=url, timeout_ms=timeout_ms)
    except errors.MistralError as exc:
        wait = exc.headers.get("retry-after")
        said = f"{type(exc).__name__} {exc.status_code}"
        return f"{said} Retry-After {wait}" if wait else said
    except httpx2.TimeoutException:
        return "timeout"
    except httpx2.TransportError:
        return "transport error"
    return _told(listed)


def _told(listed: ModelList) -> str:
    if listed.data is None:
        return "a list without data"
    if not all(isinstance(card, BaseModelCard | FTModelCard) for card in listed.data):
        return "cards the SDK does not recognise"
    ids = {card.id for card in listed.data}
    missing = [m for m in DEFAULT_MODELS if m not in ids]
    return f"models, without {', '.join(missing)}" if missing else "models"


# Every behaviour of the stand-in, and what a user of the SDK sees for it.
SDK_SEES = [
    ("valid", "models"),
    ("slow:0.1", "models"),
    (BEYOND_TIMEOUT, "timeout"),  # asked with a timeout of SHORT_TIMEOUT_MS
    ("no-model", "models, without mistral-large-latest"),
    ("no-model:codestral-latest", "models, without codestral-latest"),
    ("invalid", "SDKError 401"),
    ("invalid-detail", "SDKError 401"),
    ("invalid-message", "SDKError 401"),
    ("invalid-empty", "SDKError 401"),
    ("billing", "SDKError 402"),
    ("forbidden", "SDKError 403"),
    ("not-found", "SDKError 404"),
    ("rate-limited", "SDKError 429 Retry-After 1"),
    ("rate-limited:7", "SDKError 429 Retry-After 7"),
    ("rate-limited:none", "SDKError 429"),
    ("unavailable", "SDKError 503"),
    ("bad-gateway", "SDKError 502"),
    # The stand-in cuts the connection: no answer, so an httpx2 error, not an SDK one.
    ("reset", "transport error"),
    # 200 but text/plain: the SDK refuses what it cannot read.
    ("not-json", "SDKError 200"),
    # The SDK takes {"object": "list"} for an empty list; the verifier calls it UNKNOWN.
    ("no-list", "a list without data"),
    # The SDK follows redirects (the verifier does not); httpx drops the key on the way to
    # another origin, so the other server answers 401 (tested below).
    ("redirect:{other}/v1/models", "SDKError 401"),
]


@pytest.fixture
def other() -> Iterator[MistralStandIn]:
    """A second stand-in, where the key is valid: a redirect's target."""
    with MistralStandIn() as standin:
        standin.set_key(KEY, "valid")
        yield standin


def test_every_behaviour_is_in_the_table() -> None:
    named = {parse_behaviour(b.format(other="http://x"))[0][0] for b, _ in SDK_SEES}
    assert named == BEHAVIOURS


@pytest.mark.parametrize(("behaviour", "sees"), SDK_SEES)
def test_what_the_sdk_sees_for_each_behaviour(
    client: Mistral, mistral: MistralStandIn, other: MistralStandIn, behaviour: str, sees: str
) -> None:
    mistral.set_key(KEY, behaviour.format(other=other.url))
    timeout = SHORT_TIMEOUT_MS if behaviour == BEYOND_TIMEOUT else None
    assert what_the_sdk_sees(client, mistral.url, timeout) == sees
    assert mistral.count(KEY) == 1  # no retry hides an answer


@pytest.mark.parametrize("code", [401, 402, 403, 429, 502, 503])
def test_error_statuses_raise_the_sdks_own_error(
    client: Mistral, mistral: MistralStandIn, code: int
) -> None:
    behaviour = next(b for b, s in SDK_SEES if s.startswith(f"SDKError {code}"))
    mistral.set_key(KEY, behaviour)
    with pytest.raises(errors.SDKError) as raised:
        client.models.list(server_url=mistral.url)
    assert isinstance(raised.value, errors.MistralError)
    assert raised.value.status_code == code
    assert KEY not in str(raised.value)


def test_a_valid_key_lists_the_configured_models_as_the_sdks_cards() -> None:
    fine_tuned = "ft:open-mistral-7b:587a6b29:20240514:7e773925"
    configured = ("mistral-large-latest", "open-mistral-nemo", "our-own-model", fine_tuned)
    with MistralStandIn(models=configured) as mistral:
        mistral.set_key(KEY, "valid")
        # As a user points the SDK at the stand-in.
        with Mistral(api_key=KEY, server_url=mistral.url) as own:
            listed = own.models.list()
    assert listed.data is not None
    cards = {card.id: card for card in listed.data}
    assert set(configured) <= set(cards)
    large, latest = cards["mistral-large-2411"], cards["mistral-large-latest"]
    assert isinstance(large, BaseModelCard) and isinstance(latest, BaseModelCard)
    # An alias is an entry of its own, and each names the other.
    assert (large.aliases, latest.aliases) == (["mistral-large-latest"], ["mistral-large-2411"])
    assert large.name == latest.name == "mistral-large-2411"
    assert large.capabilities.completion_chat and large.max_context_length == 131_072
    tuned = cards[fine_tuned]
    assert isinstance(tuned, FTModelCard) and tuned.root == "open-mistral-7b"
    assert isinstance(cards["our-own-model"], BaseModelCard)


def test_every_field_of_a_card_is_one_the_sdk_knows() -> None:
    # The SDK ignores fields it does not know, and takes a card that fails its checks for an
    # unknown kind: a misspelt field would pass unnoticed without this.
    known = {
        "base": {f.alias or n for n, f in BaseModelCard.model_fields.items()},
        "fine-tuned": {f.alias or n for n, f in FTModelCard.model_fields.items()},
    }
    cards = model_list((*DEFAULT_MODELS, "ft:open-mistral-7b:587a6b29:20240514:7e773925"))
    for card in cards["data"]:
        assert set(card) <= known[card["type"]], card["id"]


def test_retry_after_survives_into_the_sdks_error(client: Mistral, mistral: MistralStandIn) -> None:
    mistral.set_key(KEY, "rate-limited:7")
    with pytest.raises(errors.SDKError) as raised:
        client.models.list(server_url=mistral.url)
    assert raised.value.headers["retry-after"] == "7"


def test_the_sdks_own_retries_wait_as_retry_after_says(
    client: Mistral, mistral: MistralStandIn
) -> None:
    mistral.set_key(KEY, "seq:rate-limited:1,valid")
    # Its own backoff would wait at most 50 ms: a longer wait is Retry-After's.
    retry = RetryConfig("backoff", BackoffStrategy(10, 50, 1.5, 10_000, jitter_ms=0), False)
    started = time.monotonic()
    listed = client.models.list(server_url=mistral.url, retries=retry)
    assert _told(listed) == "models"
    first, second = mistral.requests
    assert second.at - first.at >= 0.95
    assert time.monotonic() - started < 5


def test_a_redirect_to_another_origin_loses_the_key(
    client: Mistral, mistral: MistralStandIn, other: MistralStandIn
) -> None:
    mistral.set_key(KEY, f"redirect:{other.url}/v1/models")
    assert what_the_sdk_sees(client, mistral.url) == "SDKError 401"
    (followed,) = other.requests
    assert followed.fingerprint == ""  # no Authorization header arrived
