"""Reminder thresholds over time: one at 25 days, none again (also after a restart), a
second, critical one at 6 days; a failing mail server is counted and retried; a resend
after a crash between send and record carries the same Message-ID and webhook ``id``.

The reminder loop runs in-process against the real OpenBao (the record lives in the key's
state there) and a real SMTP server, with a clock the test moves: a daemon cannot be made
to wait 19 days (test_intake_reminder_daemon.py does the same with the real daemon, its
clock moved by libfaketime). A "restart" is a new Reminders over the same Vault, with nothing
in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.notify.base import Channel
from rotator.adapters.notify.smtp import EmailChannel
from rotator.adapters.notify.webhook import WebhookChannel
from rotator.adapters.vault.gateway import VaultStore
from rotator.config import Settings, parse_settings
from rotator.config.intake import OwnerSettings
from rotator.core.rotation import ManagedKey, RotationResult
from rotator.domain.keyview import KeyView
from rotator.domain.model import Outcome, Status, Verification
from rotator.intake.metrics import IntakeMetrics
from rotator.intake.reminders import Reminders
from rotator.intake.service import IntakeService
from tests.fixtures.receiver import Receiver
from tests.intake_helpers import MailServer, link_in, mail_server  # noqa: F401

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

    @property
    def stopping(self) -> bool:
        return False

    async def rotate(self, name: str, **_: Any) -> RotationResult:
        return RotationResult(Outcome.NOOP, 1)


class NoVerifier:
    async def verify(self, api_key: str) -> Verification:
        return Verification(Status.UNKNOWN)


@dataclass
class Clock:
    """The reminders' clock, moved by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    """The reminder loop for one key with an owner, over the real OpenBao."""

    store: VaultStore
    settings: Settings
    keys: OneKey
    clock: Clock
    reminders: Reminders = field(init=False)
    metrics: IntakeMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> Reminders:
        """A new loop over the same Vault, with nothing in memory (as after a restart)."""
        self.metrics = IntakeMetrics(Metrics())
        intake = IntakeService(
            store=self.store,
            verifier=NoVerifier(),
            keys=self.keys,
            settings=self.settings,
            metrics=self.metrics,
            public_url="https://keys.example",
            clock=self.clock,
        )
        notify = self.settings.intake.notify if self.settings.intake else None
        assert notify is not None
        channels: list[Channel] = []
        if notify.smtp:
            channels.append(EmailChannel(notify.smtp))
        if notify.webhook:
            channels.append(WebhookChannel(notify.webhook))
        self.reminders = Reminders(
            intake=intake,
            keys=self.keys,
            store=self.store,
            channels=channels,
            notify=notify,
            expiry=self.settings.expiry,
            metrics=self.metrics,
            clock=self.clock,
        )
        return self.reminders

    def counted(self, channel: str, result: str) -> float:
        sample = self.metrics.reminders.labels(key=NAME, channel=channel, result=result)
        return float(sample._value.get())


@pytest.fixture
def rig(
    vault_store: VaultStore,
    put_key: Callable[..., int],
    kv_prefix: str,
    vault_settings: Any,
) -> Callable[..., Rig]:
    """``rig(owner=..., notify=..., days_left=...)``: version 1 of the key (expiring on
    ``EXPIRES``) in Vault, and the reminder loop with the clock ``days_left`` before it."""
    path = f"{kv_prefix}/{NAME}"
    put_key(path, "sk-clinic-0123456789abcdef", expires_at=EXPIRES.isoformat())

    def make(*, owner: dict[str, str], notify: dict[str, Any], days_left: float) -> Rig:
        settings = parse_settings(
            {
                "vault": vault_settings.model_dump(),
                "keys": [{"name": NAME, "vault_path": path, "owner": owner}],
                "intake": {"notify": notify},
            }
        )
        keys = OneKey(path, KeyView(NAME, active_version=1, expires_at=EXPIRES))
        return Rig(vault_store, settings, keys, Clock(EXPIRES - timedelta(days=days_left)))

    return make


async def test_one_reminder_per_threshold_across_restarts(
    rig: Callable[..., Rig],
    mail_server: MailServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    r = rig(
        owner={"email": "ops@clinic.example", "language": "de"},
        notify={"smtp": mail_server.settings(tmp_path), "retry_backoff": "1s"},
        days_left=25,
    )
    reminders = r.reminders

    assert await reminders.check(NAME) == 1
    assert await reminders.check(NAME) == 0
    restarted = r.restart()
    assert await restarted.check(NAME) == 0, "a restart must not send the reminder again"
    assert len(mail_server.messages) == 1
    assert "25 Tagen" in mail_server.messages[0]["Subject"]

    r.clock.now = EXPIRES - timedelta(days=6)
    assert await restarted.check(NAME) == 1
    assert await restarted.check(NAME) == 0
    critical = mail_server.messages[1]
    assert critical["Subject"].startswith("Dringend:") and "6 Tagen" in critical["Subject"]
    assert len(mail_server.messages) == 2

    # A new generation (version 2 active) at 6 days: its own critical reminder, once.
    r.keys.view_ = KeyView(NAME, active_version=2, expires_at=EXPIRES)
    assert await restarted.check(NAME) == 1
    assert await restarted.check(NAME) == 0
    assert OwnerSettings(email="ops@clinic.example", language="de") == r.settings.keys[0].owner


async def test_failed_reminders_are_counted_and_retried(
    rig: Callable[..., Rig],
    mail_server: MailServer,  # noqa: F811
    tmp_path: Path,
    captured_log: Callable[[], list[dict[str, Any]]],
) -> None:
    smtp = mail_server.settings(tmp_path)
    r = rig(
        owner={"email": "a@b.example"},
        notify={"smtp": smtp, "retry_backoff": "1s", "max_backoff": "2s"},
        days_left=20,
    )
    reminders = r.reminders
    mail_server.accept_login = False
    assert await reminders.check(NAME) == 0
    assert await reminders.check(NAME) == 0, "backing off: no second try at once"
    assert r.counted("email", "failed") == 1
    assert [e for e in captured_log() if e["event"] == "reminder.failed"]
    mail_server.accept_login = True

    async def retried() -> bool:
        return await reminders.check(NAME) == 1

    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while not await retried():
        assert datetime.now(UTC) < deadline, "the reminder was never retried"
        await _sleep(0.2)
    assert len(mail_server.messages) == 1
    assert r.counted("email", "sent") == 1


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def test_webhook_reminder_carries_the_link_and_failures_count(
    rig: Callable[..., Rig],
    receiver: Receiver,
) -> None:
    r = rig(owner={"language": "it"}, notify={"webhook": {"url": receiver.url}}, days_left=3)
    reminders = r.reminders
    receiver.respond(503)
    assert await reminders.check(NAME) == 0
    assert r.counted("webhook", "failed") == 1
    reminders._backoff.clear()  # the retry, without waiting out the backoff
    receiver.respond(204)
    assert await reminders.check(NAME) == 1
    body = receiver.requests[-1].json()
    assert body["key"] == NAME and body["threshold"] == "critical" and body["days_left"] == 3
    assert body["url"].startswith("https://keys.example/intake/clinic.")
    assert body["language"] == "it" and body["owner"] is None
    assert await reminders.check(NAME) == 0


async def test_a_resend_after_a_crash_is_the_same_reminder(
    rig: Callable[..., Rig],
    mail_server: MailServer,  # noqa: F811
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    notify = {"smtp": mail_server.settings(tmp_path), "webhook": {"url": receiver.url}}
    r = rig(owner={"email": "ops@clinic.example", "language": "it"}, notify=notify, days_left=20)
    assert await r.reminders.check(NAME) == 2
    # The daemon dies after the sends, before their record reaches Vault.
    state, cas = await r.store.read_state(NAME)
    await r.store.write_state(NAME, replace(state, reminded=None, reminded_version=None), cas)
    assert await r.restart().check(NAME) == 2, "at least once: sent again"
    first, again = mail_server.messages
    assert first["Message-ID"] == again["Message-ID"], "a mail client can drop the duplicate"
    assert link_in(first) != link_in(again), "each with a fresh link (both work)"
    hooks = [request.json()["id"] for request in receiver.requests]
    assert len(hooks) == 2 and hooks[0] == hooks[1], "so can the webhook's receiver"
    # The next threshold is another reminder, with another id.
    r.clock.now = EXPIRES - timedelta(days=6)
    assert await r.reminders.check(NAME) == 2
    assert mail_server.messages[2]["Message-ID"] != first["Message-ID"]
    assert receiver.requests[-1].json()["id"] != hooks[0]
    assert NAME not in first["Message-ID"], "the id names nothing"


async def test_an_owner_no_channel_reaches_gets_no_links_made_for_nobody(
    rig: Callable[..., Rig],
    mail_server: MailServer,  # noqa: F811
    tmp_path: Path,
    vault_store: VaultStore,
    captured_log: Callable[[], list[dict[str, Any]]],
) -> None:
    """E-mail is the only channel and the owner has no address: nothing can be sent, so no
    link is made (one every check_interval filled the state) and the operator is told once."""
    r = rig(
        owner={"language": "de"},
        notify={"smtp": mail_server.settings(tmp_path), "retry_backoff": "1s"},
        days_left=25,
    )
    for _ in range(3):
        assert await r.reminders.check(NAME) == 0
    state, _ = await vault_store.read_state(NAME)
    assert state.intake_links is None, "links were made that nobody receives"
    said = [e for e in captured_log() if e["event"] == "reminder.unreachable_owner"]
    assert len(said) == 1 and said[0]["key"] == NAME
    assert mail_server.messages == []


async def test_posts_to_made_up_key_names_keep_nothing_in_memory(
    rig: Callable[..., Rig],
    mail_server: MailServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The intake page is public and a form's csrf value follows from its token: posts to
    links of key names nobody manages are refused (410) and leave nothing behind, else a
    stream of made-up names grows the daemon without end."""
    r = rig(owner={"language": "de"}, notify={"smtp": mail_server.settings(tmp_path)}, days_left=90)
    intake = r.reminders.intake
    for i in range(200):
        token = f"made-up-{i}.{'A' * 43}"
        assert await intake.submit(token, "sk-whatever-123456", "2027-01-01") is None
    assert intake._locks == {}  # what the daemon keeps a key: none for names it does not manage
    assert r.metrics.submissions.labels(key="(unknown)", result="refused_link")._value.get() == 200
