"""Sinks deliver a key into the running integration. ``build_sink`` maps YAML to a sink.

One registry (:data:`SINK_TYPES`) goes from a sink's ``type:`` to the code that builds it;
``"{name}"`` in any string of a sink's settings becomes the key's name, here and only here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.sinks.file import FileSink
from rotator.adapters.sinks.http import HttpSink
from rotator.adapters.sinks.vault import KvAccess, VaultSink
from rotator.config.sinks import (
    FileSinkSettings,
    HttpSinkSettings,
    SinkSettings,
    VaultSinkSettings,
)
from rotator.ports import Sink

_Spec = TypeVar("_Spec", bound=BaseModel)


@dataclass(frozen=True)
class BuildContext:
    key_name: str
    kv: KvAccess
    default_mount: str
    metrics: Metrics | None


def _file(spec: FileSinkSettings, ctx: BuildContext) -> Sink:
    return FileSink(spec, metrics=ctx.metrics)


def _http(spec: HttpSinkSettings, ctx: BuildContext) -> Sink:
    return HttpSink(spec, metrics=ctx.metrics)


def _vault(spec: VaultSinkSettings, ctx: BuildContext) -> Sink:
    return VaultSink(spec, ctx.key_name, ctx.kv, ctx.default_mount, metrics=ctx.metrics)


SINK_TYPES: dict[str, Callable[[Any, BuildContext], Sink]] = {
    "file": _file,
    "http": _http,
    "vault": _vault,
}


def build_sink(
    spec: SinkSettings,
    key_name: str,
    *,
    kv: KvAccess,
    default_mount: str,
    metrics: Metrics | None = None,
) -> Sink:
    """The sink for one key. Raises ConfigError when the settings can never work
    (plain http:// to a remote host, an unknown signal, a relative path, ...)."""
    named = for_key(spec, key_name)
    return SINK_TYPES[named.type](named, BuildContext(key_name, kv, default_mount, metrics))


def for_key(spec: _Spec, key_name: str) -> _Spec:
    """``spec`` with ``"{name}"`` replaced by ``key_name`` in every string it holds."""
    data = _substitute(spec.model_dump(mode="json"), key_name)
    return type(spec).model_validate(data)


def _substitute(value: Any, key_name: str) -> Any:
    if isinstance(value, str):
        return value.replace("{name}", key_name)
    if isinstance(value, dict):
        return {k: _substitute(v, key_name) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, key_name) for v in value]
    return value


async def close_sinks(sinks: Iterable[Sink]) -> None:
    """Close every sink that holds connections (those with an ``aclose``)."""
    for sink in sinks:
        aclose = getattr(sink, "aclose", None)
        if aclose is not None:
            await aclose()
