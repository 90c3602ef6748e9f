"""Reminder thresholds over time: one at 25 days, none again (also after a restart), a
second, critical one at 6 days; a failing mail server is counted and retried.

The reminder loop runs in-process against the real OpenBao (the record lives in the key's
state there) and a real SMTP server, with a clock the test moves: a daemon cannot be made
to wait 19 days. A "restart" is a new Reminders over the same Vault, with nothing in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.notify.smtp import EmailChannel
from rotator.adapters.notify.webhook import WebhookChannel
from rotator.adapters.vault.gateway import VaultStore
from rotator.config import Settings, parse_settings
from rotator.config.intake import OwnerSettings
from rotator.core.rotation import ManagedKey, RotationResult
from rotator.domain.keyview import KeyView
from rotator.domain.model import Status, Verification
from rotator.intake.metrics import IntakeMetrics
from rotator.intake.reminders import Reminders
from rotator.intake.service import IntakeService
from tests.fixtures.receiver import Receiver
from tests.intake_helpers import MailServer, mail_server  # noqa: F401

NAME = "clinic"
EXPIRES = datetime(2027, 3, 1, tzinfo=UTC)


@dataclass
class OneKey:
    """The key service as the intake sees it: one key, active version 1."""

    path: str
    view_: KeyView = field(default_factory=lambda: KeyView(NAME, active_version=1))

    def names(self) -> list[str]:
        return [NAME]

    def managed(self) -> list[ManagedKey]:
        return [ManagedKey(NAME, self.path)]

    def view(self, name: str) -> KeyView:
        return self.view_

    def busy(self, name: str) -> bool:
        return False

    async def rotate(self, name: str, **_: Any) -> RotationResult:
        return RotationResult("noop", 1)


class NoVerifier:
    async def verify(self, api_key: str) -> Verification:
        return Verification(Status.UNKNOWN)


def _reminders(
    store: VaultStore, keys: OneKey, settings: Settings, clock: Callable[[], datetime]
) -> tuple[Reminders, IntakeMetrics]:
    metrics = IntakeMetrics(Metrics())
    assert settings.intake and settings.intake.notify and settings.intake.notify.smtp
    intake = IntakeService(
        store=store,
        verifier=NoVerifier(),
        keys=keys,
        settings=settings,
        metrics=metrics,
        public_url="https://keys.example",
        clock=clock,
    )
    reminders = Reminders(
        intake=intake,
        keys=keys,
        store=store,
        channels=[EmailChannel(settings.intake.notify.smtp)],
        notify=settings.intake.notify,
        expiry=settings.expiry,
        metrics=metrics,
        clock=clock,
    )
    return reminders, metrics


async def test_one_reminder_per_threshold_across_restarts(
    vault_store: VaultStore,
    put_key: Callable[..., int],
    kv_prefix: str,
    mail_server: MailServer,  # noqa: F811
    tmp_path: Path,
    vault_settings: Any,
) -> None:
    path = f"{kv_prefix}/{NAME}"
    put_key(path, "sk-clinic-0123456789abcdef", expires_at=EXPIRES.isoformat())
    settings = parse_settings(
        {
            "vault": vault_settings.model_dump(),
            "keys": [
                {
                    "name": NAME,
                    "vault_path": path,
                    "owner": {"email": "ops@clinic.example", "language": "de"},
                }
            ],
            "intake": {"notify": {"smtp": mail_server.settings(tmp_path), "retry_backoff": "1s"}},
        }
    )
    keys = OneKey(path, KeyView(NAME, active_version=1, expires_at=EXPIRES))
    now = [EXPIRES - timedelta(days=25)]
    reminders, _ = _reminders(vault_store, keys, settings, lambda: now[0])

    assert await reminders.check(NAME) == 1
    assert await reminders.check(NAME) == 0
    restarted, _ = _reminders(vault_store, keys, settings, lambda: now[0])
    assert await restarted.check(NAME) == 0, "a restart must not send the reminder again"
    assert len(mail_server.messages) == 1
    assert "25 Tagen" in mail_server.messages[0]["Subject"]

    now[0] = EXPIRES - timedelta(days=6)
    assert await restarted.check(NAME) == 1
    assert await restarted.check(NAME) == 0
    critical = mail_server.messages[1]
    assert critical["Subject"].startswith("Dringend:") and "6 Tagen" in critical["Subject"]
    assert len(mail_server.messages) == 2

    # A new generation (version 2 active) at 6 days: its own critical reminder, once.
    keys.view_ = KeyView(NAME, active_version=2, expires_at=EXPIRES)
    assert await restarted.check(NAME) == 1
    assert await restarted.check(NAME) == 0
    assert OwnerSettings(email="ops@clinic.example", language="de") == settings.keys[0].owner


async def test_failed_reminders_are_counted_and_retried(
    vault_store: VaultStore,
    put_key: Callable[..., int],
    kv_prefix: str,
    mail_server: MailServer,  # noqa: F811
    tmp_path: Path,
    vault_settings: Any,
    captured_log: Callable[[], list[dict[str, Any]]],
) -> None:
    path = f"{kv_prefix}/{NAME}"
    put_key(path, "sk-clinic-0123456789abcdef", expires_at=EXPIRES.isoformat())
    settings = parse_settings(
        {
            "vault": vault_settings.model_dump(),
            "keys": [{"name": NAME, "vault_path": path, "owner": {"email": "a@b.example"}}],
            "intake": {
                "notify": {
                    "smtp": mail_server.settings(tmp_path),
                    "retry_backoff": "1s",
                    "max_backoff": "2s",
                }
            },
        }
    )
    keys = OneKey(path, KeyView(NAME, active_version=1, expires_at=EXPIRES))
    clock = lambda: EXPIRES - timedelta(days=20)  # noqa: E731
    reminders, metrics = _reminders(vault_store, keys, settings, clock)
    mail_server.accept_login = False
    assert await reminders.check(NAME) == 0
    assert await reminders.check(NAME) == 0, "backing off: no second try at once"
    failed = metrics.reminders.labels(key=NAME, channel="email", result="failed")
    assert failed._value.get() == 1
    assert [e for e in captured_log() if e["event"] == "reminder.failed"]
    mail_server.accept_login = True

    async def retried() -> bool:
        return await reminders.check(NAME) == 1

    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while not await retried():
        assert datetime.now(UTC) < deadline, "the reminder was never retried"
        await _sleep(0.2)
    assert len(mail_server.messages) == 1
    assert metrics.reminders.labels(key=NAME, channel="email", result="sent")._value.get() == 1


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def test_webhook_reminder_carries_the_link_and_failures_count(
    vault_store: VaultStore,
    put_key: Callable[..., int],
    kv_prefix: str,
    receiver: Receiver,
    vault_settings: Any,
) -> None:
    path = f"{kv_prefix}/{NAME}"
    put_key(path, "sk-clinic-0123456789abcdef", expires_at=EXPIRES.isoformat())
    settings = parse_settings(
        {
            "vault": vault_settings.model_dump(),
            "keys": [{"name": NAME, "vault_path": path, "owner": {"language": "it"}}],
            "intake": {"notify": {"webhook": {"url": receiver.url}}},
        }
    )
    assert settings.intake and settings.intake.notify and settings.intake.notify.webhook
    keys = OneKey(path, KeyView(NAME, active_version=1, expires_at=EXPIRES))
    clock = lambda: EXPIRES - timedelta(days=3)  # noqa: E731
    metrics = IntakeMetrics(Metrics())
    intake = IntakeService(
        store=vault_store,
        verifier=NoVerifier(),
        keys=keys,
        settings=settings,
        metrics=metrics,
        public_url="https://keys.example",
        clock=clock,
    )
    reminders = Reminders(
        intake=intake,
        keys=keys,
        store=vault_store,
        channels=[WebhookChannel(settings.intake.notify.webhook)],
        notify=settings.intake.notify,
        expiry=settings.expiry,
        metrics=metrics,
        clock=clock,
    )
    receiver.respond(503)
    assert await reminders.check(NAME) == 0
    assert metrics.reminders.labels(key=NAME, channel="webhook", result="failed")._value.get() == 1
    reminders._backoff.clear()  # the retry, without waiting out the backoff
    receiver.respond(204)
    assert await reminders.check(NAME) == 1
    body = receiver.requests[-1].json()
    assert body["key"] == NAME and body["threshold"] == "critical" and body["days_left"] == 3
    assert body["url"].startswith("https://keys.example/intake/clinic.")
    assert body["language"] == "it" and body["owner"] is None
    assert await reminders.check(NAME) == 0
