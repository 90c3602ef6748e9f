"""Reminders from the real daemon (``rotator run`` in a subprocess) over real OpenBao, the
Mistral stand-in and a real SMTP server (aiosmtpd, STARTTLS and AUTH): one at 25 days, none
again after a restart, one more (critical, in the owner's language) at 6 days.

How the key gets to "6 days": time passes. The daemon is restarted under libfaketime with
its wall clock 19 days ahead (``FAKETIME=+19d``; its monotonic clock is left alone, so timers
and timeouts behave). Nothing about the key changes: the same Vault version with the same
``expires_at``, which is exactly what "once per threshold per key generation" is about: the
generation that got the warning must get the critical reminder too, once. Correcting the
recorded expiry instead is no option here: ``expires_at`` lives in the version's data, and
a new version is a new generation (with reminders of its own, tested in
test_intake_reminders.py). Production code has no clock switch; libfaketime is a system
package (``make system-deps`` installs it) and the test skips, saying so, without it.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit
from tests.fixtures.openbao import OpenBaoServer
from tests.intake_helpers import MailServer, free_listen, intake_daemon, link_in, restart
from tests.waiting import wait_for

NAME = "clinic"
AHEAD_DAYS = 19
CHECK_INTERVAL_S = 0.5
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))


def clock_ahead(days: int) -> dict[str, str]:
    """The environment that moves a process's wall clock ``days`` ahead (libfaketime)."""
    if not LIBFAKETIME:
        pytest.skip(
            "libfaketime is not installed: `make system-deps` installs it "
            "(apt-get install libfaketime); without it the daemon cannot live 19 days later"
        )
    return {
        "LD_PRELOAD": LIBFAKETIME[0],
        "FAKETIME": f"+{days}d",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


@pytest.fixture
def long_lived_mail(tmp_path: Path) -> Iterator[MailServer]:
    """A mail server whose certificate is still valid for a daemon 19 days ahead."""
    server = MailServer(tmp_path, cert_days=AHEAD_DAYS + 11)
    yield server
    server.stop()


def quiet_passes(daemon: DaemonProcess, mail: MailServer, count: int) -> None:
    """Let the new process's reminder loop look at the key ``count`` more times.

    Its first look at a due key with an owner sets the reminder counters (at 0 at first);
    from then on each pass is one ``check_interval``. Whether nothing is sent can only be
    seen over a window: that is this one."""
    counted = {"key": NAME, "channel": "email", "result": "sent"}
    wait_for(
        lambda: daemon.metric("mistral_key_reminders_total", **counted) is not None,
        20,
        "the reminder loop's first look at the key",
    )
    before = len(mail.messages)
    time.sleep(count * CHECK_INTERVAL_S)
    assert len(mail.messages) == before


def sent_events(output: str) -> list[dict[str, Any]]:
    """The ``reminder.sent`` events in one run's JSON log."""
    lines = (line for line in output.splitlines() if line.startswith("{"))
    return [e for e in map(json.loads, lines) if e.get("event") == "reminder.sent"]


def test_one_reminder_at_25_days_across_a_restart_and_a_critical_one_at_6_days(
    long_lived_mail: MailServer,
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
) -> None:
    mail = long_lived_mail
    later = clock_ahead(AHEAD_DAYS)
    kit = KeyKit(openbao, mistral, kv_prefix)
    # Half a day over, so that "25 days" and "6 days" are what the owner reads.
    expires = datetime.now(UTC) + timedelta(days=25, hours=12)
    kit.put(NAME, expires_at=expires.isoformat(), key_name="Clinic Live Agent")
    notify = {"smtp": mail.settings(tmp_path), "check_interval": f"{CHECK_INTERVAL_S}s"}
    daemon = intake_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        NAME,
        owner={"email": "ops@clinic.example", "language": "de"},
        intake={"listen": free_listen(), "notify": notify},
    )
    daemon.start()
    runs: list[str] = []
    try:
        daemon.wait_checked([NAME])
        wait_for(lambda: mail.messages, 20, "the 25-day reminder")
        quiet_passes(daemon, mail, 3)
        assert len(mail.messages) == 1
        warning = mail.messages[0]
        assert warning["To"] == "ops@clinic.example"
        assert warning["Subject"] == (
            "Ihr Mistral-API-Schlüssel für Clinic Live Agent läuft in 25 Tagen ab"
        )

        runs.append(restart(daemon, NAME))
        quiet_passes(daemon, mail, 3)
        assert len(mail.messages) == 1, "a restart must not send the 25-day reminder again"

        # 19 days later: the same key generation, now 6 days before expiry.
        runs.append(restart(daemon, NAME, later))
        wait_for(lambda: len(mail.messages) >= 2, 20, "the 6-day reminder")
        quiet_passes(daemon, mail, 3)
        assert len(mail.messages) == 2, "one critical reminder, once"
        critical = mail.messages[1]
        assert critical["To"] == "ops@clinic.example"
        assert critical["Subject"] == (
            "Dringend: Ihr Mistral-API-Schlüssel für Clinic Live Agent läuft in 6 Tagen ab"
        )
        text = critical.get_body(preferencelist=("plain",))
        assert text is not None and "Guten Tag," in text.get_content()
        counted = {"key": NAME, "channel": "email", "result": "sent"}
        assert daemon.metric("mistral_key_reminders_total", **counted) == 1
        # The critical mail's fresh link opens the page in German; the 25-day link, made 19
        # days earlier with link_ttl 7d, is no longer valid.
        fresh = httpx.get(link_in(critical), timeout=10)
        assert fresh.status_code == 200
        assert "Neuer Mistral-API-Schlüssel für Clinic Live Agent" in fresh.text
        assert httpx.get(link_in(warning), timeout=10).status_code == 410
    finally:
        daemon.stop()
    runs.append(daemon.output())
    sent = [
        [(e["threshold"], e["days_left"], e["language"]) for e in sent_events(run)] for run in runs
    ]
    assert sent == [[("warn", 25, "de")], [], [("critical", 6, "de")]]
    everything = "".join(runs)
    tokens = [link_in(m).rpartition("/")[2] for m in mail.messages]
    assert all(token not in everything for token in tokens)
    assert mail.password not in everything
    assert all(value not in everything for value in kit.values)
