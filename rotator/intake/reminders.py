"""Reminders: at each threshold in ``intake.notify.at`` the key's owner gets a fresh link.

Once per threshold, channel and key generation (the active Vault version): what was sent is
recorded in the key's state in Vault, so a restart or a second instance sends nothing twice.
A failed send is counted, logged and retried with backoff on later passes; it never holds up
another key or anything else the daemon does (its own task, every send with a timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from rotator.adapters.notify.base import Channel, NotifyError, Reminder, reminder_id
from rotator.config.expiry import ExpirySettings
from rotator.config.intake import NotifySettings
from rotator.core.backoff import CAS_RETRY, Backoff, BackoffPolicy
from rotator.errors import CasConflict, RotatorError
from rotator.intake.metrics import IntakeMetrics
from rotator.intake.service import IntakeService, Keys, Store
from rotator.logs import get_logger

log = get_logger(__name__)

SEND_TIMEOUT_S = 60.0
_SEVERITY = {"warn": 1, "critical": 2}


def crossed(days_left: float, at: Sequence[str], expiry: ExpirySettings) -> list[str]:
    """The thresholds in ``at`` that a key with ``days_left`` has crossed, mildest first."""
    limits = {"warn": expiry.warn_days, "critical": expiry.critical_days}
    return sorted((t for t in at if days_left < limits[t]), key=_SEVERITY.__getitem__)


def decode_sent(text: str | None) -> set[str]:
    return {entry for entry in (text or "").split(",") if entry}


def encode_sent(sent: set[str]) -> str | None:
    return ",".join(sorted(sent)) or None


def still_due(due: list[str], sent: set[str], channel: str) -> bool:
    """The most severe crossed threshold has not reached the owner through ``channel``."""
    return bool(due) and f"{due[-1]}/{channel}" not in sent


class Reminders:
    def __init__(
        self,
        *,
        intake: IntakeService,
        keys: Keys,
        store: Store,
        channels: Sequence[Channel],
        notify: NotifySettings,
        expiry: ExpirySettings,
        metrics: IntakeMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.intake = intake
        self.keys = keys
        self.store = store
        self.channels = list(channels)
        self.notify = notify
        self.expiry = expiry
        self.metrics = metrics
        self.clock = clock
        self._backoff: dict[str, Backoff] = {}
        self._unreachable: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Check every key each ``notify.check_interval`` until ``stop``."""
        interval = self.notify.check_interval.total_seconds()
        while not stop.is_set():
            await self.check_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def check_all(self) -> None:
        self.intake.refresh_gauges()
        for name in self.keys.names():
            try:
                await self.check(name)
            except RotatorError as exc:
                # Vault trouble and the like: this key's reminder waits for the next pass.
                log.warning("reminder.check_failed", key=name, reason=str(exc))

    async def check(self, name: str) -> int:
        """Send what is due for ``name``; the number of reminders sent."""
        view = self.keys.view(name)
        if view.expires_at is None or view.active_version is None:
            return 0
        days_left = (view.expires_at - self.clock()).total_seconds() / 86400
        due = crossed(days_left, self.notify.at, self.expiry)
        backoff = self._backoff.setdefault(name, self._new_backoff())
        if not due or not backoff.ready():
            return 0
        owner = await self.intake.owner(name)
        if owner is None:
            return 0
        for channel in self.channels:
            # At 0 before the first try: Prometheus sees a first failure as an increase.
            for result in ("sent", "failed"):
                self.metrics.reminders.labels(key=name, channel=channel.name, result=result).inc(0)
        state, _ = await self.store.read_state(name)
        same_generation = state.reminded_version == view.active_version
        sent = decode_sent(state.reminded) if same_generation else set()
        unsent = [c for c in self.channels if still_due(due, sent, c.name)]
        if not unsent:
            return 0
        reminder = Reminder(
            key=name,
            integration=await self.intake.integration(name),
            threshold=due[-1],
            days_left=max(0, math.floor(days_left)),
            expires_at=view.expires_at,
            url="",
            link_expires_at=view.expires_at,
            email=owner.email,
            language=owner.language or "en",
            id=reminder_id(name, view.active_version, due[-1]),
        )
        channels = [c for c in unsent if c.applies(reminder)]
        if not channels:
            # No channel reaches this owner (e-mail only, and no address): a fresh link every
            # check_interval, sent to nobody, filled the key's state. Said once, not made.
            if name not in self._unreachable:
                self._unreachable.add(name)
                log.warning(
                    "reminder.unreachable_owner",
                    key=name,
                    channels=[c.name for c in unsent],
                    action="give the owner an email, or configure intake.notify.webhook",
                )
            return 0
        url, link_expires = await self.intake.create(name)
        reminder = replace(reminder, url=url, link_expires_at=link_expires)
        done = [c.name for c in channels if await self._send(c, reminder)]
        failed = any(c.name not in done for c in channels)
        if done:
            await self._record(name, view.active_version, {f"{t}/{c}" for t in due for c in done})
        if failed:
            backoff.failed()
        else:
            backoff.succeeded()
        return len(done)

    async def _send(self, channel: Channel, reminder: Reminder) -> bool:
        labels = {"key": reminder.key, "channel": channel.name}
        try:
            await asyncio.wait_for(channel.send(reminder), SEND_TIMEOUT_S)
        except (NotifyError, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {SEND_TIMEOUT_S:.0f}s"
            self.metrics.reminders.labels(**labels, result="failed").inc()
            log.warning("reminder.failed", **labels, threshold=reminder.threshold, reason=reason)
            return False
        self.metrics.reminders.labels(**labels, result="sent").inc()
        log.info(
            "reminder.sent",
            **labels,
            threshold=reminder.threshold,
            days_left=reminder.days_left,
            language=reminder.language,
        )
        return True

    async def _record(self, name: str, version: int, entries: set[str]) -> None:
        for attempt in range(8):
            state, cas = await self.store.read_state(name)
            sent = decode_sent(state.reminded) if state.reminded_version == version else set()
            new = replace(state, reminded_version=version, reminded=encode_sent(sent | entries))
            try:
                await self.store.write_state(name, new, cas)
                return
            except CasConflict:
                await asyncio.sleep(CAS_RETRY.wait(attempt))
        log.warning("reminder.not_recorded", key=name, reason="the key's state kept changing")

    def _new_backoff(self) -> Backoff:
        notify = self.notify
        policy = BackoffPolicy(
            notify.retry_backoff.total_seconds(), notify.max_backoff.total_seconds()
        )
        return Backoff(policy)
