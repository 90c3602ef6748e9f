"""Reminders as JSON to a webhook: ``{key, days_left, expires_at, url, owner, ...}``."""

from __future__ import annotations

import httpx

from rotator.adapters.notify.base import NotifyError, Reminder
from rotator.adapters.sinks.templates import resolve_references
from rotator.adapters.tls import client_tls
from rotator.config.intake import WebhookSettings
from rotator.errors import ConfigError


class WebhookChannel:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return "webhook"

    def applies(self, reminder: Reminder) -> bool:
        return True

    async def send(self, reminder: Reminder) -> None:
        s = self.settings
        body = {
            "id": reminder.id,
            "key": reminder.key,
            "integration": reminder.integration,
            "threshold": reminder.threshold,
            "days_left": reminder.days_left,
            "expires_at": reminder.expires_at.isoformat(),
            "url": reminder.url,
            "link_expires_at": reminder.link_expires_at.isoformat(),
            "owner": reminder.email,
            "language": reminder.language,
        }
        try:
            headers = {
                name: resolve_references(value, where=f"intake.notify.webhook.headers.{name}")
                for name, value in s.headers.items()
            }
        except Exception as exc:
            raise NotifyError(str(exc)) from None
        try:
            verify = client_tls(s.ca_cert, where="intake.notify.webhook")
        except ConfigError as exc:
            raise NotifyError(exc.problems[0]) from None
        try:
            async with httpx.AsyncClient(timeout=s.timeout_seconds, verify=verify) as client:
                answer = await client.post(s.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotifyError(f"webhook unreachable ({type(exc).__name__})") from None
        if not answer.is_success:
            raise NotifyError(f"webhook answered {answer.status_code}")
