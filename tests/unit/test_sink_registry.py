"""build_sink: from a sink's YAML ``type:`` to a sink, with ``{name}`` filled in."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.sinks.base import BaseSink
from rotator.adapters.sinks.command import CommandReloadAction
from rotator.adapters.sinks.file import FileSink
from rotator.adapters.sinks.http import HttpSink
from rotator.adapters.sinks.registry import SINK_TYPES, build_sink, for_key
from rotator.adapters.sinks.reload import SignalReloadAction
from rotator.adapters.sinks.vault import VaultSink
from rotator.config.sinks import (
    CommandReload,
    FileSinkSettings,
    HttpReload,
    HttpSinkSettings,
    SignalReload,
    SinkSettings,
    VaultSinkSettings,
)
from rotator.errors import ConfigError

NAME = "tenant-a"
SPEC: TypeAdapter[Any] = TypeAdapter(SinkSettings)


def build(data: dict[str, Any], **kw: Any) -> Any:
    return build_sink(
        SPEC.validate_python(data), NAME, kv=kw.pop("kv", None), default_mount="secret", **kw
    )


def test_every_configurable_type_has_a_builder() -> None:
    union = typing.get_args(typing.get_args(SinkSettings)[0])
    types = {typing.get_args(m.model_fields["type"].annotation)[0] for m in union}
    assert types == set(SINK_TYPES) == {"file", "http", "vault"}


def test_file_sink_with_name_in_path_and_reload() -> None:
    sink = build(
        {
            "type": "file",
            "path": "/run/mistral/{name}.key",
            "reload": {"signal": "SIGHUP", "pid_file": "/run/{name}/app.pid"},
        }
    )
    assert isinstance(sink, FileSink)
    assert sink.id == "file:/run/mistral/tenant-a.key"
    assert isinstance(sink.reload, SignalReloadAction)
    assert sink.reload.pid_file == Path("/run/tenant-a/app.pid")


def test_name_is_filled_in_every_string_and_nothing_else() -> None:
    spec = HttpSinkSettings(
        type="http",
        url="https://portal.internal/keys/{name}",
        headers={"X-Tenant": "{name}", "Authorization": "Bearer ${env:TOKEN_{name}}"},
        body='{"tenant": "{name}", "api_key": "{api_key}", "v": {version}}',
    )
    named = for_key(spec, NAME)
    assert named.url == "https://portal.internal/keys/tenant-a"
    assert named.headers == {
        "X-Tenant": "tenant-a",
        "Authorization": "Bearer ${env:TOKEN_tenant-a}",
    }
    assert named.body == '{"tenant": "tenant-a", "api_key": "{api_key}", "v": {version}}'
    command = CommandReload(command=["/usr/bin/reload", "--tenant={name}"])
    file_spec = FileSinkSettings(type="file", path=Path("/k/{name}"), mode=0o640, reload=command)
    named_file = for_key(file_spec, NAME)
    assert named_file.reload == CommandReload(command=["/usr/bin/reload", "--tenant=tenant-a"])
    assert named_file.mode == 0o640


def test_http_sink_gets_metrics() -> None:
    metrics = Metrics()
    sink = build({"type": "http", "url": "https://portal.internal/k"}, metrics=metrics)
    assert isinstance(sink, HttpSink) and isinstance(sink, BaseSink)
    assert sink.metrics is metrics
    assert sink.id == "http:PUT https://portal.internal/k"


def test_http_id_hides_credentials_in_the_url() -> None:
    sink = build({"type": "http", "url": "https://u:pw@portal.internal/k?token=abc#f"})
    assert sink.id == "http:PUT https://portal.internal/k"


@pytest.mark.parametrize(
    "data",
    [
        {"type": "http", "url": "http://portal.internal/k"},
        {"type": "file", "path": "/k", "reload": {"url": "http://portal.internal/reload"}},
    ],
)
def test_plain_http_to_a_remote_host_is_refused_at_build(data: dict[str, Any]) -> None:
    # The settings refuse it already (config validate and run alike).
    with pytest.raises((ConfigError, ValidationError), match="allow_insecure"):
        build(data)


def test_plain_http_allowed_when_insecure_is_asked_for() -> None:
    sink = build({"type": "http", "url": "http://portal.internal/k", "allow_insecure": True})
    assert sink.id.startswith("http:PUT http://portal.internal")


def test_unknown_signal_is_refused_at_build() -> None:
    with pytest.raises((ConfigError, ValidationError), match="unknown signal 'SIGNOPE'"):
        build({"type": "file", "path": "/k", "reload": {"signal": "SIGNOPE", "pid_file": "/p"}})


def test_missing_ca_cert_is_refused_when_the_config_is_read(tmp_path: Path) -> None:
    # Already by `rotator config validate`, not first when the daemon builds the sink.
    with pytest.raises(
        ValidationError, match=r"ca_cert[\s\S]*cannot read CA certificate .*none\.pem"
    ):
        build({"type": "http", "url": "https://p/k", "ca_cert": str(tmp_path / "none.pem")})


def test_command_reload_is_built() -> None:
    sink = build(
        {"type": "file", "path": "/k", "reload": {"command": ["systemctl", "reload", "x"]}}
    )
    assert isinstance(sink.reload, CommandReloadAction)


def test_reload_shapes_parse_from_yaml_like_data() -> None:
    spec = SPEC.validate_python(
        {"type": "file", "path": "/k", "reload": {"url": "https://app/reload", "method": "POST"}}
    )
    assert isinstance(spec.reload, HttpReload)
    assert isinstance(
        SPEC.validate_python({"type": "file", "path": "/k", "reload": {"pid_file": "/p"}}).reload,
        SignalReload,
    )


def test_vault_sink_is_built_with_the_key_name_and_default_mount() -> None:
    kv: Any = object()
    sink = build_sink(
        VaultSinkSettings(type="vault", path="portal/{name}"), NAME, kv=kv, default_mount="kv"
    )
    assert isinstance(sink, VaultSink)
    assert sink.id == "vault:kv/portal/tenant-a"
    # On the shared base: it logs and counts like every other sink.
    assert isinstance(sink, BaseSink)
