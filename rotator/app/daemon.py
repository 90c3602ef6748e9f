"""The daemon's lifecycle: build, serve metrics, schedule, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from rotator import __version__
from rotator.app import bootstrap
from rotator.app.minting import admin_keys_task, build_admin_keys
from rotator.config import Settings
from rotator.config.common import check_plain_http
from rotator.core.service import KeyService
from rotator.logs import get_logger

log = get_logger(__name__)

STOP_TIMEOUT_S = 8.0


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
    extra_tasks: list[Callable[[KeyService, asyncio.Event], Coroutine[Any, Any, None]]]
    | None = None,
    admin_api: bool = True,
) -> None:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives; then stop within STOP_TIMEOUT_S.

    Raises ConfigError before starting anything when a listener cannot start (a bad web
    config file, no admin token, a port taken); ``admin_api=False`` runs without the admin API.
    """
    stop = stop or asyncio.Event()
    web = bootstrap.open_web_config(settings)
    admin = bootstrap.open_admin(settings) if admin_api else None
    try:
        metrics_sock = bootstrap.open_metrics_listener(settings)
        intake_server = bootstrap.open_intake(settings, web)
    except BaseException:
        if admin is not None:
            admin.close()
        raise
    app = bootstrap.build_app(settings)
    app.admin_keys, app.admin_client = build_admin_keys(app) or (None, None)
    web.on_reload = app.metrics.web_config_reloaded
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        # Its default action ends the process (exit 129, no clean stop) for anyone who
        # "reloads" it as they would another daemon.
        loop.add_signal_handler(signal.SIGHUP, _sighup)
    log.info(
        "rotator.starting",
        version=__version__,
        keys=len(settings.keys),
        vault=settings.vault.address,
        mistral=settings.mistral.base_url,
    )
    warn_plain_http_vault(settings)
    listening = [
        asyncio.create_task(bootstrap.serve_metrics(app, metrics_sock, web, stop), name="metrics"),
        asyncio.create_task(web.watch(stop), name="web-config"),
    ]
    discovery = bootstrap.build_discovery(app)
    if discovery is not None:
        await discovery.check_conflicts()
    scheduler = bootstrap.build_daemon_scheduler(app, discovery)
    scheduler.start()
    tasks = [*listening, *(asyncio.create_task(t(app.service, stop)) for t in extra_tasks or [])]
    if app.admin_keys is not None:
        tasks.append(asyncio.create_task(admin_keys_task(app, stop), name="mistral-admin"))
    intake = bootstrap.build_intake(app, intake_server) if intake_server is not None else None
    if intake is not None:
        tasks += [asyncio.create_task(w, name="intake") for w in intake.tasks(web, stop)]
    if admin is not None:
        deps = bootstrap.admin_deps(
            app,
            admin.token,
            stop=stop,
            scheduler_running=lambda: bool(scheduler.running),
            intake=intake.service if intake is not None else None,
        )
        tasks.append(asyncio.create_task(admin.serve(deps, web, stop), name="admin-api"))
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
        for name, version in app.service.rotator.in_delivery.items():
            # Cut short: some sinks may hold the new version, others the old one. The lease
            # in Vault stays; the next start on this host repairs the sinks at once.
            log.error(
                "rotator.stopped_mid_rotation",
                key=name,
                version=version,
                action="some sinks may hold this version and others the previous one; the "
                "next start repairs them",
            )
        metrics_sock.close()
        if admin is not None:
            admin.close()
        if intake_server is not None:
            intake_server.close()
        await app.aclose()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("rotator.stopped")


def _sighup() -> None:
    log.warning(
        "rotator.sighup",
        action="ignored: the configuration is read at start, restart the daemon to apply a "
        "change; credential files are read again at every Vault login",
    )
