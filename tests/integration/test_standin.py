"""The Mistral stand-in itself: what tests, the demo and benchmarks rely on."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import httpx
import pytest

from rotator.demo.standin import MistralStandIn, parse_behaviour, put_key

KEY = "Zx9QeLr2TbW7uYc4Nd8Hk1Mp5Sa3Vf6G"


def get_models(url: str, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/v1/models", headers=headers, timeout=5)


def test_unknown_and_missing_keys_get_401(mistral: MistralStandIn) -> None:
    assert get_models(mistral.url).status_code == 401
    assert get_models(mistral.url, key=None).status_code == 401


def test_valid_key_gets_the_model_list(mistral: MistralStandIn) -> None:
    mistral.set_key(KEY, "valid")
    answer = get_models(mistral.url).json()
    assert answer["object"] == "list"
    assert "mistral-large-latest" in [m["id"] for m in answer["data"]]


def test_sequence_is_consumed_and_its_last_step_repeats(mistral: MistralStandIn) -> None:
    mistral.set_key(KEY, "seq:unavailable,rate-limited:7,valid")
    codes = [get_models(mistral.url) for _ in range(4)]
    assert [r.status_code for r in codes] == [503, 429, 200, 200]
    assert codes[1].headers["Retry-After"] == "7"


def test_no_model_drops_the_named_model(mistral: MistralStandIn) -> None:
    mistral.set_key(KEY, "no-model:mistral-small-latest")
    ids = [m["id"] for m in get_models(mistral.url).json()["data"]]
    assert "mistral-small-latest" not in ids and "mistral-large-latest" in ids


@pytest.mark.parametrize("bad", ["bogus", "slow", "slow:x", "valid:1", "rate-limited:-1", "seq:"])
def test_unknown_behaviours_are_refused(mistral: MistralStandIn, bad: str) -> None:
    with pytest.raises(ValueError, match="behaviour"):
        mistral.set_key(KEY, bad)


def test_parse_behaviour() -> None:
    assert parse_behaviour("seq:unavailable, slow:0.5,valid") == [
        ("unavailable", None),
        ("slow", "0.5"),
        ("valid", None),
    ]


def test_records_hold_fingerprints_never_keys(mistral: MistralStandIn) -> None:
    mistral.set_key(KEY, "valid")
    before = time.monotonic()
    get_models(mistral.url)
    get_models(mistral.url, key="someone-elses-key-0000")
    (mine, theirs) = mistral.requests
    assert mine.fingerprint == "Vf6G" and mine.path == "/v1/models"
    assert before <= mine.at <= time.monotonic()
    assert KEY not in repr(mistral.requests)
    assert (mistral.count(), mistral.count(KEY)) == (2, 1)
    assert theirs.fingerprint == "0000"


def test_reset_forgets_keys_and_requests(mistral: MistralStandIn) -> None:
    mistral.set_key(KEY, "valid")
    get_models(mistral.url)
    mistral.reset()
    assert mistral.count() == 0
    assert get_models(mistral.url).status_code == 401


def test_latency_delays_every_answer(mistral: MistralStandIn) -> None:
    mistral.latency = 0.2
    started = time.monotonic()
    get_models(mistral.url)
    assert time.monotonic() - started >= 0.2


def test_control_over_http(mistral: MistralStandIn) -> None:
    put_key(mistral.url, KEY, "billing")
    assert get_models(mistral.url).status_code == 402
    stats = httpx.get(f"{mistral.url}/_standin/stats").json()
    assert stats["total"] == 1 and stats["by_fingerprint"] == {"Vf6G": 1}
    with pytest.raises(urllib.error.HTTPError) as refused:
        put_key(mistral.url, KEY, "bogus")
    assert refused.value.code == 400
    assert "unknown behaviour 'bogus'" in json.loads(refused.value.read())["error"]
    refused.value.close()


def test_stop_ends_slow_answers_and_frees_the_port() -> None:
    standin = MistralStandIn().start()
    standin.set_key(KEY, "slow:30")
    url = standin.url
    caller = threading.Thread(target=lambda: _quietly(lambda: get_models(url)))
    caller.start()
    while standin.count() == 0:
        time.sleep(0.01)
    started = time.monotonic()
    standin.stop()
    caller.join(5)
    assert not caller.is_alive()
    assert time.monotonic() - started < 3
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/models", timeout=1)


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def test_runs_in_the_foreground_from_the_command_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator.demo.standin", "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        put_key(url, KEY, "forbidden")
        assert get_models(url).status_code == 403
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        if proc.stdout is not None:
            proc.stdout.close()
