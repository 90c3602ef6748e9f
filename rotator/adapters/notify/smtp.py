"""Reminders by e-mail: SMTP with STARTTLS and authentication, text and HTML parts in the
owner's language (the words in ``rotator.intake.i18n``, the layout in its templates)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from rotator.adapters.credentials import read_credentials_file
from rotator.adapters.notify.base import NotifyError, Reminder
from rotator.adapters.tls import TlsFileError, client_context
from rotator.config.intake import SmtpSettings
from rotator.intake import i18n
from rotator.secretfile import SecretFileError

_ENV = Environment(
    loader=PackageLoader("rotator.intake", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=False, default=False),
    trim_blocks=True,
    lstrip_blocks=True,
)


def compose(reminder: Reminder, sender: str) -> EmailMessage:
    language = reminder.language
    words = i18n.strings(language)

    def t(key: str, **values: object) -> str:
        return words[key].format(**values)

    values = {
        "lang": language,
        "t": t,
        "r": reminder,
        "expires": i18n.format_date(reminder.expires_at.isoformat(), language),
        "until": i18n.format_date(reminder.link_expires_at.isoformat(), language),
    }
    message = EmailMessage()
    subject = f"mail_subject_{reminder.threshold}"
    message["Subject"] = t(subject, integration=reminder.integration, days=reminder.days_left)
    message["From"] = sender
    message["To"] = reminder.email or ""
    message["Date"] = formatdate(localtime=False)
    # One Message-ID per reminder, not per send: a resend after a crash is the same message.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<reminder.{reminder.id}@{domain}>"
    message["Content-Language"] = language
    message.set_content(_ENV.get_template("email.txt").render(**values))
    html_env = _ENV.overlay(autoescape=True)
    message.add_alternative(html_env.get_template("email.html").render(**values), subtype="html")
    return message


class EmailChannel:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return "email"

    def applies(self, reminder: Reminder) -> bool:
        return reminder.email is not None

    async def send(self, reminder: Reminder) -> None:
        message = compose(reminder, self.settings.from_)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            user = _read(s.username_file) if s.username_file else None
            password = _read(s.password_file) if s.password_file else None
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds) as smtp:
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls(context=client_context(s.ca_cert))
                    smtp.ehlo()
                if user is not None and password is not None:
                    smtp.login(user, password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            code = exc.smtp_code
            raise NotifyError(f"smtp {s.host}:{s.port} refused the login ({code})") from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(f"smtp {s.host}:{s.port} answered {exc.smtp_code}") from None
        except smtplib.SMTPException as exc:
            raise NotifyError(f"smtp {s.host}:{s.port}: {type(exc).__name__}") from None
        except TlsFileError as exc:
            raise NotifyError(f"smtp ca_cert {exc.path} is unusable ({exc.reason})") from None
        except ssl.SSLError as exc:
            raise NotifyError(f"smtp {s.host}:{s.port}: TLS failed ({exc.reason})") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise NotifyError(f"smtp {s.host}:{s.port} unreachable ({reason})") from None


def _read(path: Path) -> str:
    """Read at every send, so that renewed credentials need no restart."""
    try:
        return read_credentials_file(
            path, what="smtp credentials", exposed_event="smtp.credentials_exposed"
        )
    except SecretFileError as exc:
        raise NotifyError(f"cannot read {path} ({exc.reason or 'empty'})") from None
