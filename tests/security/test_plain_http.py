"""Plain ``http://`` only to loopback: the check sees the host the HTTP client will connect to.

The broader cases (remote host refused, ``allow_insecure``, ``localhost``) are in
``tests/unit/test_config.py`` (Mistral) and ``tests/integration/test_sinks.py`` (http sink);
here: URLs built to make a remote host look like loopback, and the start-up warning about
a Vault reached over plain http.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from rotator.adapters.sinks.registry import build_sink
from rotator.app.daemon import warn_plain_http_vault
from rotator.config import parse_settings
from rotator.config.common import check_plain_http
from rotator.config.sinks import HttpSinkSettings
from rotator.errors import ConfigError

MINIMAL = {"keys": [{"name": "k", "vault_path": "m/k"}]}
DISGUISED = [
    "http://127.0.0.1:8080@evil.example/k",
    "http://localhost:1@evil.example/k",
    "http://127.0.0.1:80\\@evil.example/k",
    "http://127.0.0.1%2f@evil.example/k",
    "http://localhost.evil.example/k",
    "http://127.0.0.1.nip.io/k",
]


@pytest.mark.parametrize("url", DISGUISED)
def test_a_remote_host_dressed_as_loopback_is_refused(url: str) -> None:
    assert httpx.URL(url).host.endswith(("evil.example", "nip.io"))
    with pytest.raises(ValueError, match="only allowed to loopback"):
        check_plain_http(url, allow_insecure=False)
    with pytest.raises((ConfigError, ValidationError), match="allow_insecure"):
        build_sink(HttpSinkSettings(type="http", url=url), "k", kv=None, default_mount="secret")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"mistral: .*only allowed to loopback"):
        parse_settings({**MINIMAL, "mistral": {"base_url": url}})


@pytest.mark.parametrize(
    "url", ["http://[::1]:8/k", "http://127.0.0.2/k", "http://evil.example\\@127.0.0.1/k"]
)
def test_loopback_by_any_spelling_the_client_connects_to_is_allowed(url: str) -> None:
    assert httpx.URL(url).host in ("::1", "127.0.0.2", "127.0.0.1")
    check_plain_http(url, allow_insecure=False)


@pytest.mark.parametrize(
    ("address", "warned"),
    [
        ("http://vault.internal:8200", True),
        ("http://127.0.0.1:8200@vault.internal", True),
        ("http://127.0.0.1:8200", False),
        ("https://vault.internal:8200", False),
    ],
)
def test_plain_http_to_a_remote_vault_is_warned_about(
    address: str, warned: bool, captured_log: Callable[[], list[dict[str, Any]]]
) -> None:
    # Not refused: a dev server or a compose network may be private. Said, at start.
    settings = parse_settings({**MINIMAL, "vault": {"address": address}})
    warn_plain_http_vault(settings)
    events = [e for e in captured_log() if e["event"] == "vault.plain_http"]
    assert [e["address"] for e in events] == ([address] if warned else [])
