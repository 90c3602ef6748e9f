"""The intake page in a real browser (Debian's Chromium through Playwright), per language.

A customer opens the link, is told in their language why a key is refused (Vault untouched,
the link still works), sends a tampered form (403) and one over 8 KiB (413) without losing
an attempt, uses up the link's last attempt (410 saying why), hands over a good key while a
sink refuses it (stored, not live yet), then one that goes live (the sinks hold it, the link
is spent), and opening the link again shows the 410 page. Every page of tests/intake_pages.py
is saved as a screenshot in every language (into docs/img/ with
ROTATOR_UPDATE_SCREENSHOTS=1; tests/unit/test_intake_screenshots.py checks they are there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import KeyKit, sink_file
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.receiver import Receiver
from tests.intake_helpers import (
    browser,  # noqa: F401  (the module's one Chromium)
    intake_daemon,
    iso_date,
    new_value,
    save,
    shots,  # noqa: F401
    vault_versions,
)
from tests.intake_pages import PAGES, IntakePage

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
        "stored": "was checked with Mistral and stored",
        "forbidden": "not sent from this page",
        "too_large": "more than a key",
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
        "stored": "geprüft und gespeichert",
        "forbidden": "nicht von dieser Seite gesendet",
        "too_large": "mehr als einen Schlüssel",
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
        "stored": "verificata con Mistral e salvata",
        "forbidden": "non è stato inviato da questa pagina",
        "too_large": "più di una chiave",
    },
}


PAGE = {page.id.split("-", 1)[1]: page for page in PAGES}
MAX_FAILED = 7
"""The six counted refusals leave one attempt: the seventh failure is the last-attempt page."""


def _submit(page: Any, key: str, expires: str, *, typed: bool = True) -> int:
    """Send the form; the answer's HTTP status. ``typed=False`` sets the key field from
    script (no maxlength), as a tampered form would."""
    if typed:
        page.fill("#api_key", key)
    else:
        page.evaluate("value => { document.querySelector('#api_key').value = value }", key)
    # The date field's own limits would stop the browser from sending a wrong date: the
    # server's checks are what is tested, so the form is sent without the browser's.
    page.evaluate("document.querySelector('form').noValidate = true")
    page.fill("#expires_at", expires)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    return int(navigation.value.status)


def _behaves(mistral: MistralStandIn, kit: KeyKit, behaviour: str | None) -> str:
    """A new key value the stand-in answers as ``behaviour``."""
    key = new_value()
    if behaviour:
        mistral.set_key(key, behaviour)
    kit.values.append(key)
    return key


@pytest.mark.parametrize("language", ["en", "de", "it"])
def test_owner_hands_over_a_key_in_their_language(
    language: str,
    browser: Any,  # noqa: F811
    shots: Path,  # noqa: F811
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    receiver: Receiver,
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
        intake={"max_failed_attempts": MAX_FAILED},
    )
    # A second sink that the test can make refuse: the key is stored but not live.
    daemon.config["keys"][0]["sinks"].append({"type": "http", "url": receiver.url})
    saved: list[str] = []

    def screenshot(page: Any, shown: IntakePage, *, full: bool = False) -> None:
        save(page, shots, f"intake-{language}-{shown.id}", full=full)
        saved.append(shown.id)

    daemon.start()
    try:
        daemon.wait_checked([NAME])

        def new_link() -> str:
            made = daemon.cli("intake", NAME)
            assert made.returncode == 0, made.stderr
            return made.stdout.strip()

        url = new_link()
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
        screenshot(page, PAGE["form"], full=True)

        refusals = [
            ("key_whitespace", "sk" + new_value()[:10] + " " + new_value()[:10], 300, None),
            ("expiry_past", new_value(), -2, "valid"),
            ("expiry_beyond", new_value(), 400, "valid"),
            ("invalid", new_value(), 300, "invalid"),
            ("billing", new_value(), 300, "billing"),
            ("plan", new_value(), 300, "forbidden"),
            ("busy", new_value(), 300, "rate-limited:1"),
        ]
        for outcome, key, days, behaviour in refusals:
            if behaviour:
                mistral.set_key(key, behaviour)
            kit.values.append(key)
            page.goto(url)
            shown = PAGE[outcome.replace("_", "-")]
            status = _submit(page, key, iso_date(days))
            assert status == shown.status, outcome
            assert words[outcome] in page.locator("main").inner_text(), page.content()
            assert vault_versions(openbao, path) == 1, f"{outcome} changed Vault"
            screenshot(page, shown)

        # A form from elsewhere (the csrf value forged), and one over 8 KiB: refused before
        # the key is looked at, so neither uses an attempt.
        page.goto(url)
        page.evaluate("document.querySelector('input[name=csrf]').value = 'forged'")
        assert _submit(page, _behaves(mistral, kit, "valid"), iso_date(300)) == 403
        assert words["forbidden"] in page.locator("main").inner_text()
        screenshot(page, PAGE["forbidden"])
        page.goto(url)
        assert _submit(page, "x" * 9000, iso_date(300), typed=False) == 413
        assert words["too_large"] in page.locator("main").inner_text()
        screenshot(page, PAGE["too-large"])

        # Six counted refusals so far: the seventh is the link's last attempt.
        page.goto(url)
        assert _submit(page, _behaves(mistral, kit, "invalid"), iso_date(300)) == 410
        said = page.locator("main").inner_text()
        assert words["invalid"] in said and words["gone"] in said
        screenshot(page, PAGE["last-attempt"])
        assert page.goto(url).status == 410
        assert vault_versions(openbao, path) == 1

        # A good key while the second sink refuses: stored (version 2), not live.
        receiver.respond(503)
        page.goto(new_link())
        stored = _behaves(mistral, kit, "valid")
        assert _submit(page, stored, iso_date(300)) == 200
        said = page.locator("main").inner_text()
        assert words["stored"] in said and stored[-4:] in said
        assert words["accepted"] not in said
        screenshot(page, PAGE["stored"])
        assert vault_versions(openbao, path) == 2

        receiver.respond(204)
        url = new_link()
        page.goto(url)
        good = _behaves(mistral, kit, "valid")
        assert _submit(page, good, iso_date(300)) == 200
        assert words["accepted"] in page.locator("main").inner_text()
        assert good[-4:] in page.locator("main").inner_text()
        screenshot(page, PAGE["accepted"])
        assert sink_file(daemon, NAME).read_text().strip() == good
        assert vault_versions(openbao, path) == 3
        assert daemon.key(NAME)["active_version"] == 3

        gone = page.goto(url)
        assert gone.status == 410
        assert words["gone"] in page.locator("h1").inner_text()
        screenshot(page, PAGE["gone"])
        context.close()
    finally:
        daemon.stop()
    assert sorted(saved) == sorted(p.id for p in PAGES), "every page, once"
    output = daemon.output()
    assert url.rpartition("/")[2] not in output
    assert all(value not in output for value in kit.values)
    assert daemon.events("intake.accepted") and daemon.events("intake.rejected")
