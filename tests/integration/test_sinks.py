"""Every sink against the real thing it writes to: files, a loopback HTTP receiver, OpenBao.

``SinkContract`` holds what every sink must do; each sink type subclasses it with a
``harness`` fixture giving a working sink, a failing one and a way to see what the
integration now holds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from pydantic import ValidationError

from rotator.adapters.sinks.base import BaseSink
from rotator.adapters.sinks.registry import build_sink, close_sinks
from rotator.config.sinks import FileSinkSettings, HttpSinkSettings, VaultSinkSettings
from rotator.errors import ConfigError, SinkError
from rotator.ports import Sink
from tests.fixtures.receiver import Receiver
from tests.sink_helpers import KEY_NAME, V1, V2, capture, error_texts

if TYPE_CHECKING:
    from rotator.adapters.vault.gateway import VaultStore

NO_KV: Any = None


def build(spec: Any, **kw: Any) -> Sink:
    return build_sink(spec, KEY_NAME, kv=kw.pop("kv", NO_KV), default_mount="secret", **kw)


@dataclass
class Harness:
    sink: Sink
    failing: Sink
    """Configured like ``sink`` but unable to deliver."""
    seen: Callable[[], Awaitable[str | None]]
    """The key the integration holds now (None: nothing yet)."""


class SinkContract:
    """Subclasses give a ``harness`` fixture (a ``Harness``) and say whether ``holds`` tells."""

    tells: bool = True
    """Whether ``holds`` can answer (an HTTP endpoint cannot be asked)."""

    def held(self, value: bool) -> bool | None:
        return value if self.tells else None

    async def test_delivered_key_reaches_the_integration(self, harness: Harness) -> None:
        await harness.sink.deliver(V1)
        assert await harness.seen() == V1.api_key
        assert await harness.sink.holds(V1) is self.held(True)

    async def test_holds_nothing_before_a_delivery(self, harness: Harness) -> None:
        assert await harness.sink.holds(V1) is self.held(False)

    async def test_delivering_twice_is_idempotent(self, harness: Harness) -> None:
        await harness.sink.deliver(V1)
        await harness.sink.deliver(V1)
        assert await harness.seen() == V1.api_key
        assert await harness.sink.holds(V1) is self.held(True)

    async def test_a_newer_version_replaces_the_older(self, harness: Harness) -> None:
        await harness.sink.deliver(V1)
        await harness.sink.deliver(V2)
        assert await harness.seen() == V2.api_key
        assert await harness.sink.holds(V2) is self.held(True)
        assert await harness.sink.holds(V1) is self.held(False)

    async def test_failure_is_a_sink_error_without_the_key(self, harness: Harness) -> None:
        with pytest.raises(SinkError) as caught:
            await harness.failing.deliver(V1)
        assert V1.api_key not in error_texts(caught.value)
        assert str(caught.value).strip()

    async def test_no_key_in_logs(self, harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
        with capture(caplog) as logs:
            await harness.sink.deliver(V1)
            await harness.sink.deliver(V2)
            with pytest.raises(SinkError):
                await harness.failing.deliver(V1)
        for secret in (V1.api_key, V2.api_key):
            assert not logs.mentions(secret)
        assert all(s not in harness.sink.id for s in (V1.api_key, V2.api_key))
        if isinstance(harness.sink, BaseSink):
            delivered = logs.named("sink.delivered")
            assert [e["fingerprint"] for e in delivered] == [V1.fingerprint, V2.fingerprint]
            assert logs.named("sink.failed")


# --- file ----------------------------------------------------------------------------------


def _key_in(fmt: str, content: bytes) -> str:
    text = content.decode()
    if fmt == "json":
        return cast(str, json.loads(text)["api_key"])
    return text.removeprefix("MISTRAL_API_KEY=").rstrip("\n")


class _FileContract(SinkContract):
    fmt = "raw"

    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[Harness]:
        target = tmp_path / "api-key"
        sink = build(FileSinkSettings(type="file", path=target, format=self.fmt))
        failing = build(
            FileSinkSettings(type="file", path=tmp_path / "gone" / "k", format=self.fmt)
        )

        async def seen() -> str | None:
            return _key_in(self.fmt, target.read_bytes()) if target.exists() else None

        yield Harness(sink, failing, seen)
        await close_sinks([sink, failing])


class TestFileRawContract(_FileContract):
    fmt = "raw"


class TestFileEnvContract(_FileContract):
    fmt = "env"


class TestFileJsonContract(_FileContract):
    fmt = "json"


# --- http ----------------------------------------------------------------------------------


class TestHttpContract(SinkContract):
    tells = False

    @pytest.fixture
    async def harness(self, receiver: Receiver, other_receiver: Receiver) -> AsyncIterator[Harness]:
        sink = build(HttpSinkSettings(type="http", url=f"{receiver.url}/api/mistral-key"))
        failing = build(HttpSinkSettings(type="http", url=f"{other_receiver.url}/broken"))
        # The peer echoes the key in its error page: the error must still not show it.
        other_receiver.respond(500, f"rejected key {V1.api_key}".encode())

        async def seen() -> str | None:
            if not receiver.requests:
                return None
            return cast(str, receiver.requests[-1].json()["api_key"])

        yield Harness(sink, failing, seen)
        await close_sinks([sink, failing])


# --- vault ---------------------------------------------------------------------------------


class TestVaultContract(SinkContract):
    @pytest.fixture
    async def harness(self, vault_store: VaultStore, kv_prefix: str) -> AsyncIterator[Harness]:
        path = f"{kv_prefix}/portal/{{name}}"
        sink = build(VaultSinkSettings(type="vault", path=path), kv=vault_store)
        failing = build(
            VaultSinkSettings(type="vault", path="x", mount="no-such-mount"), kv=vault_store
        )

        async def seen() -> str | None:
            data = await vault_store.read_kv("secret", path.replace("{name}", KEY_NAME))
            return None if data is None else data["api_key"]

        yield Harness(sink, failing, seen)


# --- http specifics ------------------------------------------------------------------------


async def test_http_headers_resolve_env_and_file_at_delivery(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-123\n")
    spec = HttpSinkSettings(
        type="http",
        url=f"{receiver.url}/k",
        headers={
            "Authorization": "Bearer ${env:PORTAL_TOKEN}",
            "X-Other": "${file:" + str(token_file) + "}",
        },
    )
    sink = build(spec)
    monkeypatch.setenv("PORTAL_TOKEN", "env-token-456")  # set after build: read per delivery
    try:
        await sink.deliver(V1)
    finally:
        await close_sinks([sink])
    (got,) = receiver.requests
    assert got.method == "PUT"
    assert got.headers["authorization"] == "Bearer env-token-456"
    assert got.headers["x-other"] == "file-token-123"
    assert got.headers["content-type"] == "application/json"


async def test_http_missing_env_or_file_is_named_and_nothing_is_sent(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    for header, named in (
        ("${env:NO_SUCH_TOKEN}", "NO_SUCH_TOKEN"),
        ("${file:" + str(tmp_path / "nope") + "}", str(tmp_path / "nope")),
    ):
        sink = build(HttpSinkSettings(type="http", url=receiver.url, headers={"X-T": header}))
        with pytest.raises(SinkError, match=named):
            await sink.deliver(V1)
        await close_sinks([sink])
    assert receiver.requests == []


async def test_http_body_template_is_rendered(receiver: Receiver) -> None:
    body = (
        '{"secret": {"value": "{api_key}", "until": "{expires_at}"},'
        ' "owner": "{name}", "generation": {version}}'
    )
    sink = build(HttpSinkSettings(type="http", url=receiver.url, method="POST", body=body))
    await sink.deliver(V1)
    await close_sinks([sink])
    (got,) = receiver.requests
    assert got.method == "POST"
    assert got.json() == {
        "secret": {"value": V1.api_key, "until": "2027-01-31T12:00:00+00:00"},
        "owner": KEY_NAME,
        "generation": 1,
    }


async def test_http_error_status_is_a_sink_error_with_the_status(receiver: Receiver) -> None:
    receiver.respond(500, b"database down")
    sink = build(HttpSinkSettings(type="http", url=receiver.url))
    with pytest.raises(SinkError, match="HTTP 500: database down"):
        await sink.deliver(V1)
    await close_sinks([sink])


async def test_http_hang_beyond_timeout_is_a_sink_error(receiver: Receiver) -> None:
    receiver.hang()
    sink = build(HttpSinkSettings(type="http", url=receiver.url, timeout_seconds=0.5))
    with pytest.raises(SinkError, match=r"no answer within 0\.5s") as caught:
        await sink.deliver(V1)
    assert V1.api_key not in error_texts(caught.value)
    await close_sinks([sink])
    assert len(receiver.requests) == 1


async def test_http_redirect_is_refused_and_never_followed(
    receiver: Receiver, other_receiver: Receiver
) -> None:
    receiver.redirect(f"{other_receiver.url}/steal")
    sink = build(HttpSinkSettings(type="http", url=receiver.url))
    with pytest.raises(SinkError, match="HTTP 302"):
        await sink.deliver(V1)
    await close_sinks([sink])
    assert other_receiver.requests == []


@pytest.mark.parametrize(
    ("url", "allow_insecure", "refused"),
    [
        ("http://portal.internal/k", False, True),
        ("http://10.1.2.3:8080/k", False, True),
        ("http://portal.internal/k", True, False),
        ("http://127.0.0.1:9/k", False, False),
        ("http://localhost:9/k", False, False),
        ("https://portal.internal/k", False, False),
    ],
)
async def test_http_plain_http_only_to_loopback(
    url: str, allow_insecure: bool, refused: bool
) -> None:
    if refused:
        # The settings refuse it already (config validate and run alike).
        with pytest.raises((ConfigError, ValidationError), match="allow_insecure"):
            build(HttpSinkSettings(type="http", url=url, allow_insecure=allow_insecure))
    else:
        spec = HttpSinkSettings(type="http", url=url, allow_insecure=allow_insecure)
        await close_sinks([build(spec)])


async def test_http_connection_refused_is_a_sink_error(receiver: Receiver) -> None:
    url = receiver.url
    receiver.stop()
    sink = build(HttpSinkSettings(type="http", url=url))
    with pytest.raises(SinkError) as caught:
        await sink.deliver(V1)
    await close_sinks([sink])
    assert V1.api_key not in error_texts(caught.value)
