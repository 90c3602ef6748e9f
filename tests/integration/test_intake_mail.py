"""A reminder by real e-mail (aiosmtpd, STARTTLS and AUTH) leads to a completed hand-off.

The key has 25 days left and an owner taken from the secret's ``custom_metadata`` (Italian).
The daemon sends exactly one reminder, and after a restart none more; the test reads the
delivered message, follows its link in Chromium and hands over a new key, which goes live.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import KeyKit, sink_file
from tests.fixtures.openbao import OpenBaoServer
from tests.intake_helpers import (
    MailServer,
    browser,  # noqa: F401
    free_listen,
    intake_daemon,
    iso_date,
    link_in,
    mail_server,  # noqa: F401
    new_value,
    restart,
)
from tests.waiting import wait_for

NAME = "shop"


def test_mail_reminder_link_completes_a_hand_off(
    browser: Any,  # noqa: F811
    mail_server: MailServer,  # noqa: F811
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put(NAME, expires_at=iso_date(25), key_name="Shop Live Agent")
    openbao.client().secrets.kv.v2.update_metadata(
        path=kit.path(NAME),
        custom_metadata={"owner_email": "it@shop.example", "owner_language": "it"},
    )
    notify = {"smtp": mail_server.settings(tmp_path), "check_interval": "1s"}
    # A fixed port: the link must still work after the restart.
    listen = free_listen()
    intake = {"listen": listen, "public_url": f"http://{listen}", "notify": notify}
    daemon = intake_daemon(tmp_path, openbao, mistral, kit, NAME, intake=intake)
    daemon.start()
    try:
        daemon.wait_checked([NAME])
        wait_for(lambda: mail_server.messages, 20, "the reminder")
        sent = lambda: daemon.metric(  # noqa: E731
            "mistral_key_reminders_total", key=NAME, channel="email", result="sent"
        )
        assert sent() == 1
        # Three more passes of the reminder loop: still one message.
        time.sleep(3)
        assert len(mail_server.messages) == 1
        first_run = restart(daemon, NAME)
        time.sleep(3)
        assert len(mail_server.messages) == 1, "a restart must not send the reminder again"
        assert mail_server.logins and set(mail_server.logins) == {"ok"}

        message = mail_server.messages[0]
        assert message["To"] == "it@shop.example"
        assert message["Subject"].startswith("La tua chiave API Mistral per Shop Live Agent")
        assert message.get_body(preferencelist=("html",)) is not None
        url = link_in(message)
        context = browser.new_context(viewport={"width": 400, "height": 700}, locale="it-IT")
        page = context.new_page()
        assert page.goto(url).status == 200
        good = new_value()
        mistral.set_key(good, "valid")
        kit.values.append(good)
        page.fill("#api_key", good)
        page.fill("#expires_at", iso_date(300))
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "attiva ora" in page.locator("main").inner_text()
        context.close()
        assert sink_file(daemon, NAME).read_text().strip() == good
    finally:
        daemon.stop()
    output = first_run + daemon.output()
    assert url.rpartition("/")[2] not in output and mail_server.password not in output
    assert all(value not in output for value in kit.values)
    assert '"event": "reminder.sent"' in first_run
    assert not daemon.events("reminder.sent"), "nothing sent after the restart"
