"""The daemon's lifecycle: build, serve metrics, schedule, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from rotator import __version__
from rotator.admin_server import AdminServer
from rotator.config import Settings, check_plain_http
from rotator.discovery import Discovery
from rotator.logs import get_logger
from rotator.metrics import Metrics
from rotator.metrics_http import start_metrics_server as serve_metrics
from rotator.ports import Sink
from rotator.rotation import ManagedKey
from rotator.scheduler import build_scheduler
from rotator.service import KeyService
from rotator.sinks import build_sink, close_sinks
from rotator.vault import VaultStore
from rotator.verifier import MistralVerifier

log = get_logger(__name__)

STOP_TIMEOUT_S = 8.0


@dataclass
class App:
    """Every adapter, wired once: the only place that knows the concrete classes."""

    settings: Settings
    metrics: Metrics
    store: VaultStore
    verifier: MistralVerifier
    service: KeyService
    discovery: Discovery | None = None
    scheduler: Any = None
    """The running AsyncIOScheduler (for readiness), set by :func:`run`."""

    async def aclose(self) -> None:
        await close_sinks(s for key in self.service.managed() for s in key.sinks)
        await self.verifier.aclose()
        self.store.close()


def build_app(settings: Settings, *, with_sinks: bool = True) -> App:
    metrics = Metrics(compact=settings.server.metrics_per_key == "compact")
    store = VaultStore(settings.vault, metrics)
    verifier = MistralVerifier(settings.mistral, metrics)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    service = KeyService(
        store=store, verifier=verifier, settings=settings, metrics=metrics, owner=owner
    )
    app = App(settings, metrics, store, verifier, service)
    for key in settings.keys:
        service.add(managed_key(app, key.name, key.vault_path, key, with_sinks=with_sinks))
    return app


def managed_key(
    app: App, name: str, vault_path: str, spec: Any, *, with_sinks: bool = True
) -> ManagedKey:
    """``spec`` is a KeySettings or the discover section: both carry ``sinks``."""
    sinks: list[Sink] = []
    if with_sinks:
        for sink_spec in spec.sinks:
            sink = build_sink(
                sink_spec,
                name,
                kv=app.store,
                default_mount=app.settings.vault.kv_mount,
                metrics=app.metrics,
            )
            sinks.append(sink)
    return ManagedKey(name, vault_path, tuple(sinks))


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def start_metrics_server(app: App) -> tuple[WSGIServer, Thread]:
    host, port = _split(app.settings.server.metrics_listen)
    server, thread = serve_metrics(app.metrics, host, port)
    log.info("metrics.listening", address=f"{host}:{server.server_port}")
    return server, thread


def warn_plain_http_vault(settings: Settings) -> None:
    """Plain http:// to a Vault that is not on this host carries the daemon's token and every
    key in clear text. Not refused (a dev server or a compose network may be fine), said."""
    try:
        check_plain_http(settings.vault.address, allow_insecure=False)
    except ValueError:
        log.warning(
            "vault.plain_http",
            address=settings.vault.address,
            action="use https:// (and vault.ca_cert) unless this network is private",
        )


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    extra_tasks: list[Callable[[App, asyncio.Event], Coroutine[Any, Any, None]]] | None = None,
    admin_api: bool = True,
) -> None:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives; then stop within STOP_TIMEOUT_S.

    Raises ConfigError before starting anything when the admin API cannot start (no token,
    port taken); ``admin_api=False`` runs without it.
    """
    stop = stop or asyncio.Event()
    admin = AdminServer.open(settings) if admin_api else None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    app = build_app(settings)
    log.info(
        "rotator.starting",
        version=__version__,
        keys=len(settings.keys),
        vault=settings.vault.address,
        mistral=settings.mistral.base_url,
    )
    warn_plain_http_vault(settings)
    server, _ = start_metrics_server(app)
    refresh = None
    if settings.discover is not None:
        app.discovery = Discovery(app, settings.discover)
        await app.discovery.check_conflicts()
        refresh = app.discovery.refresh
    scheduler = build_scheduler(settings, app.service, app.store.maintain_token, refresh)
    scheduler.start()
    app.scheduler = scheduler
    tasks = [asyncio.create_task(t(app, stop)) for t in extra_tasks or []]
    if admin is not None:
        tasks.append(asyncio.create_task(admin.serve(app, stop), name="admin-api"))
    try:
        await stop.wait()
    finally:
        log.info("rotator.stopping")
        scheduler.shutdown(wait=False)
        for task in tasks:
            task.cancel()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        # Let a delivery under way finish (it is all-or-nothing), but not for ever.
        if pending:
            await asyncio.wait(pending, timeout=STOP_TIMEOUT_S)
        server.shutdown()
        server.server_close()
        if admin is not None:
            admin.close()
        await app.aclose()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("rotator.stopped")
