"""The composition root: the one module that knows the concrete classes and wires them.

Everything else receives the few collaborators it uses: the key service gets ports, discovery
gets a factory for managed keys, the admin API gets :class:`~rotator.admin.state.AdminDeps`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from rotator.adapters.metrics.exposition import metrics_app
from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.mistral.verifier import MistralVerifier
from rotator.adapters.sinks.registry import build_sink, close_sinks
from rotator.adapters.vault.gateway import VaultStore
from rotator.app.discovery import Discovery
from rotator.app.scheduler import build_scheduler
from rotator.app.watch import Watch
from rotator.config import Settings
from rotator.config.sinks import SinkSettings
from rotator.core.lease import instance_owner
from rotator.core.rotation import ManagedKey, Rotator
from rotator.core.service import KeyService
from rotator.core.staging import stage_key
from rotator.logs import get_logger
from rotator.ports import Sink
from rotator.web.server import address, bind, serve
from rotator.web.watch import WebConfigWatcher

# What a configuration may not use is imported when it does (the admin API and the intake
# page pull FastAPI in, the reminders smtplib and Jinja2, minting the Admin API client): a
# daemon without them starts with less in memory (docs/performance.md).
if TYPE_CHECKING:
    from rotator.adapters.mistral.admin import MistralAdminClient
    from rotator.admin.server import AdminServer
    from rotator.admin.state import AdminDeps
    from rotator.app.minting import AdminKeysDeps
    from rotator.core.admin_keys import AdminKeys
    from rotator.intake.reminders import Reminders
    from rotator.intake.server import IntakeServer
    from rotator.intake.service import IntakeService

log = get_logger(__name__)


@dataclass
class App:
    """The object graph of one daemon (or of one ``rotator check``)."""

    settings: Settings
    metrics: Metrics
    store: VaultStore
    verifier: MistralVerifier
    service: KeyService
    with_sinks: bool = True
    admin_keys: AdminKeys | None = None
    """Inventory and minting, with ``mistral.admin`` (see :mod:`rotator.app.minting`)."""
    admin_client: MistralAdminClient | None = None

    def new_key(self, name: str, vault_path: str, sinks: list[SinkSettings]) -> ManagedKey:
        """A managed key with its sinks built; ConfigError when a sink can never work."""
        built: list[Sink] = []
        if self.with_sinks:
            for spec in sinks:
                sink = build_sink(
                    spec,
                    name,
                    kv=self.store,
                    default_mount=self.settings.vault.kv_mount,
                    metrics=self.metrics,
                )
                built.append(sink)
        return ManagedKey(name, vault_path, tuple(built))

    async def aclose(self) -> None:
        await close_sinks(s for key in self.service.managed() for s in key.sinks)
        await self.verifier.aclose()
        if self.admin_client is not None:
            await self.admin_client.aclose()
        self.store.close()


def build_app(settings: Settings, *, with_sinks: bool = True) -> App:
    metrics = Metrics(compact=settings.server.metrics_per_key == "compact")
    store = VaultStore(settings.vault, metrics)
    verifier = MistralVerifier(settings.mistral, metrics)
    owner = instance_owner()
    service = KeyService(
        Rotator(store=store, verifier=verifier, settings=settings, metrics=metrics, owner=owner)
    )
    app = App(settings, metrics, store, verifier, service, with_sinks)
    for key in settings.keys:
        service.add(app.new_key(key.name, key.vault_path, key.sinks))
    return app


def add_admin_keys(app: App) -> AdminKeysDeps | None:
    """Mistral's Admin API, inventory and minting, with ``mistral.admin``: kept on ``app`` for
    the admin API and ``aclose``; returned for the daemon's task. ConfigError when the admin
    key is unreadable."""
    if app.settings.mistral.admin is None:
        return None
    from rotator.app.minting import build_admin_keys

    built = build_admin_keys(
        app.settings,
        metrics=app.metrics,
        store=app.store,
        verifier=app.verifier,
        service=app.service,
    )
    if built is not None:
        app.admin_keys, app.admin_client = built.keys, built.client
    return built


def build_discovery(app: App) -> Discovery | None:
    spec = app.settings.discover
    if spec is None:
        return None

    def new_key(name: str) -> ManagedKey:
        return app.new_key(name, spec.prefix + name, spec.sinks)

    static = {k.name for k in app.settings.keys}
    return Discovery(
        spec.prefix, lister=app.store, service=app.service, static=static, new_key=new_key
    )


def build_daemon_scheduler(app: App, discovery: Discovery | None) -> AsyncIOScheduler:
    configured = {k.vault_path: k.name for k in app.settings.keys}
    watch = Watch(app.store, configured, discovery)
    return build_scheduler(app.settings, app.service, app.store.maintain_token, watch.cycle)


def open_admin(settings: Settings) -> AdminServer:
    """Read the admin token and bind its socket; ConfigError when either is impossible."""
    from rotator.admin.server import AdminServer

    return AdminServer.open(settings.server)


def open_intake(settings: Settings, web: WebConfigWatcher) -> IntakeServer | None:
    """Bind the intake page's socket (``intake.listen``); None without ``intake:``."""
    if settings.intake is None:
        return None
    from rotator.intake.server import IntakeServer

    return IntakeServer.open(settings.intake, web)


@dataclass
class Intake:
    """The key intake's parts: the page's listener and service, and the reminders (if any
    channel is configured)."""

    server: IntakeServer
    service: IntakeService
    reminders: Reminders | None

    def tasks(self, web: WebConfigWatcher, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        work = [self.server.serve(self.service, web, stop)]
        if self.reminders is not None:
            work.append(self.reminders.run(stop))
        return work


def build_intake(app: App, server: IntakeServer) -> Intake:
    settings = app.settings
    if settings.intake is None:
        raise ValueError("no intake section in the settings")
    from rotator.adapters.notify.base import Channel
    from rotator.intake.metrics import IntakeMetrics
    from rotator.intake.reminders import Reminders
    from rotator.intake.service import IntakeService

    metrics = IntakeMetrics(app.metrics)
    service = IntakeService(
        store=app.store,
        verifier=app.verifier,
        keys=app.service,
        settings=settings,
        metrics=metrics,
        public_url=server.public_url,
    )
    notify = settings.intake.notify
    channels: list[Channel] = []
    if notify is not None and notify.smtp is not None:
        from rotator.adapters.notify.smtp import EmailChannel

        channels.append(EmailChannel(notify.smtp))
    if notify is not None and notify.webhook is not None:
        from rotator.adapters.notify.webhook import WebhookChannel

        channels.append(WebhookChannel(notify.webhook))
    reminders = None
    if notify is not None and channels:
        reminders = Reminders(
            intake=service,
            keys=app.service,
            store=app.store,
            channels=channels,
            notify=notify,
            expiry=settings.expiry,
            metrics=metrics,
        )
    return Intake(server, service, reminders)


def admin_deps(
    app: App,
    token: str | None,
    *,
    stop: asyncio.Event | None = None,
    scheduler_running: Callable[[], bool] = lambda: False,
    intake: IntakeService | None = None,
) -> AdminDeps:
    from rotator.admin.state import AdminDeps

    return AdminDeps(
        service=app.service,
        vault_ready=app.store.ready,
        scheduler_running=scheduler_running,
        warn_days=app.settings.expiry.warn_days,
        critical_days=app.settings.expiry.critical_days,
        token=token,
        stop=stop,
        admin_keys=app.admin_keys,
        intake=intake,
    )


def open_web_config(settings: Settings) -> WebConfigWatcher:
    """The listeners' web config file, read now; ConfigError naming the field when bad."""
    return WebConfigWatcher(settings.server.web_config_file)


def open_metrics_listener(settings: Settings) -> socket.socket:
    """The metrics socket, bound; ConfigError when the address cannot be had."""
    return bind(settings.server.metrics_listen, "server.metrics_listen")


async def serve_metrics(
    app: App, sock: socket.socket, web: WebConfigWatcher, stop: asyncio.Event
) -> None:
    """``/metrics`` (basic auth from the web config file) and ``/healthz`` until ``stop``."""
    where = address(sock)
    log.info("metrics.listening", address=where, url=f"{web.scheme}://{where}")
    api = metrics_app(app.metrics.exposition, lambda: web.state.users)
    try:
        await serve(api, sock, web, stop, name="metrics")
    finally:
        sock.close()


async def stage(
    settings: Settings,
    vault_path: str,
    api_key: str,
    *,
    expires_at: str | None,
    key_name: str | None,
) -> str:
    """``rotator stage``: verify ``api_key`` with Mistral, then write it to Vault."""
    metrics = Metrics()
    verifier = MistralVerifier(settings.mistral, metrics)
    store = VaultStore(settings.vault, metrics)
    try:
        return await stage_key(
            settings,
            vault_path,
            api_key,
            verifier=verifier,
            store=store,
            expires_at=expires_at,
            key_name=key_name,
        )
    finally:
        await verifier.aclose()
        store.close()
