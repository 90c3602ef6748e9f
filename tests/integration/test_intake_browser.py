"""The intake page in a real browser (Debian's Chromium through Playwright), per language.

Every outcome is checked in every language; the screenshots show every outcome in English
and the form, two refusals, the accepted and the 410 page in German and Italian.

A customer opens the link, is told in their language why a key is refused (Vault untouched,
the link still works), hands over a good key (it is live: the file sink holds it, the link is
spent), and opening the link again shows the 410 page. Each page is saved as a screenshot
(docs/img/ with ROTATOR_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import KeyKit, sink_file
from tests.fixtures.openbao import OpenBaoServer
from tests.intake_helpers import (
    browser,  # noqa: F401  (the module's one Chromium)
    intake_daemon,
    iso_date,
    new_value,
    save,
    shots,  # noqa: F401
    vault_versions,
)

NAME = "acme"
LOCALES = {"en": "en-GB", "de": "de-DE", "it": "it-IT"}
# What the page says, per language: the words a customer reads for each outcome.
EXPECT = {
    "en": {
        "title": "New Mistral API key for ACME Live Agent",
        "key_whitespace": "contains a space",
        "expiry_past": "in the past",
        "expiry_beyond": "more than 365 days",
        "invalid": "does not accept this key",
        "billing": "billing is not set up",
        "plan": "is not on the organization's plan",
        "busy": "try again in a minute",
        "accepted": "is live now",
        "gone": "This link is no longer valid",
    },
    "de": {
        "title": "Neuer Mistral-API-Schlüssel für ACME Live Agent",
        "key_whitespace": "enthält ein Leerzeichen",
        "expiry_past": "in der Vergangenheit",
        "expiry_beyond": "mehr als 365 Tage",
        "invalid": "akzeptiert diesen Schlüssel nicht",
        "billing": "Abrechnung der Organisation nicht eingerichtet",
        "plan": "nicht im Tarif",
        "busy": "in einer Minute erneut",
        "accepted": "ist jetzt aktiv",
        "gone": "Dieser Link ist nicht mehr gültig",
    },
    "it": {
        "title": "Nuova chiave API Mistral per ACME Live Agent",
        "key_whitespace": "contiene uno spazio",
        "expiry_past": "nel passato",
        "expiry_beyond": "più di 365 giorni",
        "invalid": "non accetta questa chiave",
        "billing": "fatturazione dell'organizzazione non è configurata",
        "plan": "non è incluso nel piano",
        "busy": "Riprova tra un minuto",
        "accepted": "attiva ora",
        "gone": "Questo link non è più valido",
    },
}


def _submit(page: Any, key: str, expires: str) -> Any:
    page.fill("#api_key", key)
    # The date field's own limits would stop the browser from sending a wrong date: the
    # server's checks are what is tested, so the form is sent without the browser's.
    page.evaluate("document.querySelector('form').noValidate = true")
    page.fill("#expires_at", expires)
    with page.expect_navigation():
        page.click("button[type=submit]")
    return page


@pytest.mark.parametrize("language", ["en", "de", "it"])
def test_owner_hands_over_a_key_in_their_language(
    language: str,
    browser: Any,  # noqa: F811
    shots: Path,  # noqa: F811
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
) -> None:
    kit = KeyKit(openbao, mistral, f"{kv_prefix}-{language}")
    kit.put(NAME, expires_at=iso_date(20), key_name="ACME Live Agent", workspace="acme")
    daemon = intake_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        NAME,
        owner={"email": "it@acme.example", "language": language},
        intake={"max_failed_attempts": 10},
    )
    daemon.start()
    try:
        daemon.wait_checked([NAME])
        made = daemon.cli("intake", NAME)
        assert made.returncode == 0, made.stderr
        url = made.stdout.strip()
        words = EXPECT[language]
        path = kit.path(NAME)
        context = browser.new_context(
            viewport={"width": 360, "height": 640}, locale=LOCALES[language]
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        answer = page.goto(url)
        assert answer.status == 200
        headers = answer.headers
        assert headers["content-security-policy"] == (
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
        )
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert page.locator("h1").inner_text() == words["title"]
        # Labelled fields, in the order a keyboard reaches them.
        assert page.get_by_label(page.locator("label[for=api_key]").inner_text()).count() == 1
        page.keyboard.press("Tab")
        order = [page.evaluate("document.activeElement.name")]
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.name"))
        assert "expires_at" in order
        # Nothing wider than a 320 px phone.
        page.set_viewport_size({"width": 320, "height": 640})
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        page.set_viewport_size({"width": 360, "height": 640})
        save(page, shots, f"intake-{language}-1-form", full=True)

        refusals = [
            (
                "key_whitespace",
                "sk" + new_value()[:10] + " " + new_value()[:10],
                iso_date(300),
                None,
            ),
            ("expiry_past", new_value(), iso_date(-2), "valid"),
            ("expiry_beyond", new_value(), iso_date(400), "valid"),
            ("invalid", new_value(), iso_date(300), "invalid"),
            ("billing", new_value(), iso_date(300), "billing"),
            ("plan", new_value(), iso_date(300), "forbidden"),
            ("busy", new_value(), iso_date(300), "rate-limited:1"),
        ]
        for step, (outcome, key, expires, behaviour) in enumerate(refusals, start=2):
            if behaviour:
                mistral.set_key(key, behaviour)
            kit.values.append(key)
            page.goto(url)
            _submit(page, key, expires)
            assert words[outcome] in page.locator("main").inner_text(), page.content()
            assert vault_versions(openbao, path) == 1, f"{outcome} changed Vault"
            if language == "en" or outcome in ("invalid", "billing"):
                save(page, shots, f"intake-{language}-{step}-{outcome.replace('_', '-')}")

        good = new_value()
        mistral.set_key(good, "valid")
        kit.values.append(good)
        page.goto(url)
        _submit(page, good, iso_date(300))
        assert words["accepted"] in page.locator("main").inner_text()
        assert good[-4:] in page.locator("main").inner_text()
        save(page, shots, f"intake-{language}-9-accepted")
        assert sink_file(daemon, NAME).read_text().strip() == good
        assert vault_versions(openbao, path) == 2
        assert daemon.key(NAME)["active_version"] == 2

        gone = page.goto(url)
        assert gone.status == 410
        assert words["gone"] in page.locator("h1").inner_text()
        save(page, shots, f"intake-{language}-10-gone")
        context.close()
    finally:
        daemon.stop()
    output = daemon.output()
    assert url.rpartition("/")[2] not in output
    assert all(value not in output for value in kit.values)
    assert daemon.events("intake.accepted") and daemon.events("intake.rejected")
