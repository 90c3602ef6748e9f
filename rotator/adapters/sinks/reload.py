"""Reload actions: tell the integration to pick up a freshly written key file.

A failing reload is a failed delivery: the integration may still run on the old key.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from rotator.adapters.sinks.base import ReloadAction, error_text
from rotator.adapters.sinks.command import CommandReloadAction
from rotator.adapters.sinks.http import (
    check_url,
    new_client,
    raise_for_answer,
    safe_url,
    send,
)
from rotator.adapters.sinks.templates import register_references, resolve_headers
from rotator.adapters.tls import client_tls
from rotator.config.sinks import CommandReload, HttpReload, Reload, SignalReload, signal_number
from rotator.domain.model import Delivery
from rotator.errors import ConfigError, SinkError


def build_reload(spec: Reload | None, *, where: str) -> ReloadAction | None:
    """The action for ``spec``; ConfigError when it can never work (``where``: the sink id)."""
    if spec is None:
        return None
    if isinstance(spec, SignalReload):
        return SignalReloadAction(spec, where=where)
    if isinstance(spec, CommandReload):
        return CommandReloadAction(spec)
    return HttpReloadAction(spec, where=where)


def parse_signal(name: str, *, where: str) -> signal.Signals:
    """``HUP``, ``SIGHUP``, ``hup`` or a number."""
    try:
        return signal_number(name)
    except ValueError:
        raise ConfigError([f"{where}: reload.signal: unknown signal {name!r}"]) from None


class SignalReloadAction(ReloadAction):
    def __init__(self, spec: SignalReload, *, where: str) -> None:
        self.signal = parse_signal(spec.signal, where=where)
        self.pid_file = spec.pid_file

    async def run(self, delivery: Delivery) -> None:
        pid = await asyncio.to_thread(read_pid, self.pid_file)  # a file read: off the loop
        try:
            os.kill(pid, self.signal)
        except ProcessLookupError:
            raise SinkError(f"reload: process {pid} from {self.pid_file} is not running") from None
        except PermissionError:
            raise SinkError(
                f"reload: not permitted to send {self.signal.name} to process {pid}"
            ) from None


def read_pid(pid_file: Path) -> int:
    try:
        text = pid_file.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        raise SinkError(f"reload: pid file {pid_file} does not exist") from None
    except OSError as exc:
        raise SinkError(f"reload: cannot read pid file {pid_file} ({exc.strerror})") from None
    # 0 and negative numbers would signal whole process groups, or every process.
    if not text.isdigit() or int(text) <= 0:
        raise SinkError(f"reload: pid file {pid_file} does not hold a process id")
    return int(text)


class HttpReloadAction(ReloadAction):
    def __init__(self, spec: HttpReload, *, where: str) -> None:
        self.spec = spec
        self.what = f"reload {spec.method.upper()} {safe_url(spec.url)}"
        check_url(spec.url, spec.allow_insecure, where=f"{where} reload")
        self._verify = client_tls(spec.ca_cert, where=f"{where} reload")
        register_references(spec.headers.values())
        self._client: httpx.AsyncClient | None = None

    async def run(self, delivery: Delivery) -> None:
        headers = await resolve_headers(self.spec.headers, where=f"{self.what} ")
        if self._client is None:
            self._client = new_client(self._verify, self.spec.timeout_seconds)
        failure: SinkError | None = None
        try:
            response = await send(
                self._client,
                self.spec.method,
                self.spec.url,
                headers=headers,
                seconds=self.spec.timeout_seconds,
                prefix=f"{self.what}: ",
            )
        except httpx.HTTPError as exc:
            failure = SinkError(f"{self.what}: {error_text(exc, delivery.api_key)}")
        if failure is not None:
            raise failure  # outside the handler: the httpx error (and its request) stays behind
        raise_for_answer(response, api_key=delivery.api_key, prefix=f"{self.what}: ")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
