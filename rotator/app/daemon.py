"""The daemon's lifecycle: build, serve metrics, schedule, stop cleanly on SIGTERM/SIGINT.

Whatever start-up opens (listeners, clients, the Vault pool, signal handlers, the scheduler)
goes on one exit stack as soon as it exists, and is closed again, in reverse order, however
``run`` ends: a failed start-up leaves nothing open. The daemon's own tasks run in one
TaskGroup; at stop they and the key operations under way get ``STOP_TIMEOUT_S`` to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from rotator import __version__
from rotator.app import bootstrap
from rotator.config import Settings
from rotator.config.common import check_plain_http
from rotator.core.service import KeyService
from rotator.logs import get_logger
from rotator.web.watch import WebConfigWatcher

if TYPE_CHECKING:  # imported by bootstrap when the configuration uses them
    from rotator.admin.server import AdminServer
    from rotator.app.minting import AdminKeysDeps
    from rotator.intake.server import IntakeServer

log = get_logger(__name__)

STOP_TIMEOUT_S = 8.0
CANCEL_WAIT_S = 2.0
"""How long the work cut short at stop gets to unwind before the clients it uses close."""

ExtraTask = Callable[[KeyService, asyncio.Event], Coroutine[Any, Any, None]]


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
    extra_tasks: list[ExtraTask] | None = None,
    admin_api: bool = True,
) -> None:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives; then stop within STOP_TIMEOUT_S.

    Raises ConfigError, having closed what it had opened, when a listener cannot start (a bad
    web config file, no admin token, a port taken) or the admin key is unreadable;
    ``admin_api=False`` runs without the admin API.
    """
    stop = stop or asyncio.Event()
    async with contextlib.AsyncExitStack() as opened:
        parts = _open(settings, opened, stop, admin_api)
        log.info(
            "rotator.starting",
            version=__version__,
            keys=len(settings.keys),
            vault=settings.vault.address,
            mistral=settings.mistral.base_url,
        )
        warn_plain_http_vault(settings)
        # Nothing expected to fail from here on: a failure inside a TaskGroup would reach
        # the caller wrapped in an ExceptionGroup.
        async with asyncio.TaskGroup() as group:
            own = _Own(group)
            own.start("metrics", bootstrap.serve_metrics(parts.app, parts.metrics, parts.web, stop))
            own.start("web-config", parts.web.watch(stop))
            scheduler = await _schedule(parts.app, opened)
            for task in extra_tasks or []:
                own.start("extra", task(parts.app.service, stop))
            _start_services(parts, own, stop, scheduler)
            await stop.wait()
            await _stop(own, scheduler, parts.app.service)
    log.info("rotator.stopped")


@dataclass(frozen=True)
class _Opened:
    """What start-up opened and built before any task runs."""

    web: WebConfigWatcher
    admin: AdminServer | None
    metrics: socket.socket
    intake: IntakeServer | None
    app: bootstrap.App
    minting: AdminKeysDeps | None


def _open(
    settings: Settings, opened: contextlib.AsyncExitStack, stop: asyncio.Event, admin_api: bool
) -> _Opened:
    """Bind the listeners and build the object graph, each part registered on ``opened`` as
    soon as it exists. Raises ConfigError naming what cannot be had."""
    # First on the stack, so last off it: a signal meanwhile still means "stop".
    _handle_signals(opened, stop)
    web = bootstrap.open_web_config(settings)
    admin = bootstrap.open_admin(settings) if admin_api else None
    if admin is not None:
        opened.callback(admin.close)
    metrics = bootstrap.open_metrics_listener(settings)
    opened.callback(metrics.close)
    intake = bootstrap.open_intake(settings, web)
    if intake is not None:
        opened.callback(intake.close)
    app = bootstrap.build_app(settings)
    opened.push_async_callback(app.aclose)
    minting = bootstrap.add_admin_keys(app)
    web.on_reload = app.metrics.web_config_reloaded
    return _Opened(web, admin, metrics, intake, app, minting)


async def _schedule(app: bootstrap.App, opened: contextlib.AsyncExitStack) -> AsyncIOScheduler:
    discovery = bootstrap.build_discovery(app)
    if discovery is not None:
        await discovery.check_conflicts()
    scheduler = bootstrap.build_daemon_scheduler(app, discovery)
    scheduler.start()
    opened.callback(_shutdown, scheduler)
    return scheduler


def _start_services(
    parts: _Opened, own: _Own, stop: asyncio.Event, scheduler: AsyncIOScheduler
) -> None:
    """Mistral's Admin API loop, the intake page and its reminders, the admin API."""
    if parts.minting is not None:
        from rotator.app.minting import admin_keys_task

        own.start("mistral-admin", admin_keys_task(parts.minting, stop))
    intake = bootstrap.build_intake(parts.app, parts.intake) if parts.intake else None
    if intake is not None:
        for work in intake.tasks(parts.web, stop):
            own.start("intake", work)
    if parts.admin is not None:
        deps = bootstrap.admin_deps(
            parts.app,
            parts.admin.token,
            stop=stop,
            scheduler_running=lambda: bool(scheduler.running),
            intake=intake.service if intake is not None else None,
        )
        own.start("admin-api", parts.admin.serve(deps, parts.web, stop))


@dataclass
class _Own:
    """The daemon's own tasks, in its TaskGroup."""

    group: asyncio.TaskGroup
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(self.group.create_task(_logged(name, work), name=name))


async def _logged(name: str, work: Coroutine[Any, Any, None]) -> None:
    """One of the daemon's own tasks: a failure is logged and the daemon keeps running
    (in the TaskGroup it would cancel every other task)."""
    try:
        await work
    except Exception:
        log.exception("daemon.task_failed", task=name)


async def _stop(own: _Own, scheduler: AsyncIOScheduler, service: KeyService) -> None:
    """Nothing new starts; the own tasks (each watches ``stop``) and the key operations
    under way get STOP_TIMEOUT_S to end: a delivery is all-or-nothing, so it is let finish,
    but not for ever. What is left is cancelled, and given CANCEL_WAIT_S to unwind, before
    the exit stack closes the clients it uses."""
    log.info("rotator.stopping")
    _shutdown(scheduler)
    service.stop_polling()
    idle = own.group.create_task(service.wait_idle(), name="key-operations")
    _, late = await asyncio.wait([*own.tasks, idle], timeout=STOP_TIMEOUT_S)
    for name, version in service.rotator.in_delivery.items():
        # Cut short: some sinks may hold the new version, others the old one. The lease
        # in Vault stays; the next start on this host repairs the sinks at once.
        log.error(
            "rotator.stopped_mid_rotation",
            key=name,
            version=version,
            action="some sinks may hold this version and others the previous one; the "
            "next start repairs them",
        )
    cut = service.cancel_operations()
    for task in late:
        task.cancel()
    if cut:
        await asyncio.wait(cut, timeout=CANCEL_WAIT_S)


def _shutdown(scheduler: AsyncIOScheduler) -> None:
    """No job starts any more; a job under way is cancelled (quietly: see the scheduler)."""
    if scheduler.running:
        scheduler.shutdown(wait=False)


def _handle_signals(opened: contextlib.AsyncExitStack, stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop``; SIGHUP is said to be ignored. The handlers go when
    ``opened`` closes."""
    loop = asyncio.get_running_loop()
    # SIGHUP's default action ends the process (exit 129, no clean stop) for anyone who
    # "reloads" it as they would another daemon.
    handlers = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGHUP: _sighup}
    for sig, handler in handlers.items():
        previous = signal.getsignal(sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
            opened.callback(_restore, loop, sig, previous)


def _restore(loop: asyncio.AbstractEventLoop, sig: signal.Signals, previous: Any) -> None:
    """The handler that was there before, not the default: asyncio's removal puts back
    SIG_DFL, and a second SIGTERM during the last of a clean stop would then kill the process
    (exit -15 instead of 0). ``rotator run`` puts a quiet exit there."""
    loop.remove_signal_handler(sig)
    if previous is not None:
        signal.signal(sig, previous)


def _sighup() -> None:
    log.warning(
        "rotator.sighup",
        action="ignored: the configuration is read at start, restart the daemon to apply a "
        "change; credential files are read again at every Vault login",
    )
