"""Attacks on the intake page, each refused with Vault unchanged; then a leak scan.

One daemon (intake on, a budget of 3 failed attempts, an Italian-speaking owner), links made
through the admin API.
Every answer, the daemon's whole output and /metrics are searched for the links' tokens and
every key value tried: only the admin API's one-time link answer may hold a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from rotator.demo.standin import MistralStandIn
from rotator.intake.links import csrf_for
from tests.fixtures.daemon import DaemonProcess, KeyKit
from tests.fixtures.openbao import OpenBaoServer
from tests.intake_helpers import intake_daemon, iso_date, new_value, vault_versions

NAME = "tenant"


@dataclass
class Rig:
    daemon: DaemonProcess
    kit: KeyKit
    openbao: OpenBaoServer
    standin: MistralStandIn
    base: str
    tokens: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    def link(self) -> str:
        answer = self.daemon.api("POST", f"/api/v1/keys/{NAME}/intake", json={"ttl": "1h"})
        assert answer.status_code == 200, answer.text
        url = str(answer.json()["url"])
        self.tokens.append(url.rpartition("/")[2])
        return url

    def get(self, url: str) -> httpx.Response:
        answer = httpx.get(url, timeout=30)
        self.answers.append(answer.text + str(answer.headers))
        return answer

    def post(self, url: str, form: dict[str, str] | str, **headers: str) -> httpx.Response:
        token = url.rpartition("/")[2]
        body = form if isinstance(form, str) else {"csrf": csrf_for(token), **form}
        answer = httpx.post(
            url,
            content=body if isinstance(body, str) else None,
            data=None if isinstance(body, str) else body,
            headers={
                "origin": self.base,
                "content-type": "application/x-www-form-urlencoded",
                **headers,
            },
            timeout=30,
        )
        self.answers.append(answer.text + str(answer.headers))
        return answer

    def versions(self) -> int:
        return vault_versions(self.openbao, self.kit.path(NAME))


@pytest.fixture(scope="module")
def rig(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with MistralStandIn() as standin:
        kit = KeyKit(openbao, standin, f"mistral/intake-attacks-{new_value()[:8]}")
        kit.put(NAME, expires_at=iso_date(20))
        workdir = tmp_path_factory.mktemp("intake-attacks")
        daemon = intake_daemon(
            workdir,
            openbao,
            standin,
            kit,
            NAME,
            owner={"language": "it"},
            intake={"max_failed_attempts": 3},
        )
        daemon.start()
        try:
            daemon.wait_checked([NAME])
            event = daemon.events("intake.listening")[-1]
            yield Rig(daemon, kit, openbao, standin, event["public_url"])
        finally:
            daemon.stop()


def _good(rig: Rig) -> str:
    value = new_value()
    rig.standin.set_key(value, "valid")
    rig.kit.values.append(value)
    return value


def test_headers_on_every_answer(rig: Rig) -> None:
    for answer in (
        rig.get(rig.link()),
        rig.get(f"{rig.base}/intake/nothing"),
        rig.get(f"{rig.base}/elsewhere"),
    ):
        assert answer.headers["content-security-policy"] == (
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
        )
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"
    page = rig.get(rig.link()).text
    assert "<script" not in page and "http://" not in page.replace(rig.base, "")


def test_guessed_and_spent_links_get_the_same_410(rig: Rig) -> None:
    url = rig.link()
    before = rig.versions()
    spent = rig.post(url, {"api_key": _good(rig), "expires_at": iso_date(200)})
    assert spent.status_code == 200 and rig.versions() == before + 1
    after = rig.versions()
    reuse = rig.post(url, {"api_key": _good(rig), "expires_at": iso_date(200)})
    guessed_same_key = rig.get(f"{rig.base}/intake/{NAME}.{'A' * 43}")
    guessed_other_key = rig.get(f"{rig.base}/intake/nobody.{'B' * 43}")
    garbage = rig.get(f"{rig.base}/intake/{'x' * 30}")
    reopen = rig.get(url)
    answers = [reuse, guessed_same_key, guessed_other_key, garbage, reopen]
    assert {a.status_code for a in answers} == {410}
    assert len({a.text for a in answers}) == 1, "every unusable link must look the same"
    assert rig.versions() == after


def test_revoked_link_is_gone(rig: Rig) -> None:
    url = rig.link()
    assert rig.get(url).status_code == 200
    answer = rig.daemon.api("DELETE", f"/api/v1/keys/{NAME}/intake")
    assert answer.status_code == 200 and answer.json()["revoked"] >= 1
    assert rig.get(url).status_code == 410


def test_form_tampering_is_refused_without_a_change(rig: Rig) -> None:
    url = rig.link()
    before = rig.versions()
    token = url.rpartition("/")[2]
    fields = {"api_key": _good(rig), "expires_at": iso_date(200)}
    missing = rig.post(url, "api_key=x&expires_at=" + iso_date(200))
    wrong = rig.post(url, {**fields, "csrf": csrf_for(token + "x")})
    other_origin = rig.post(url, fields, origin="https://evil.example")
    cross_site = rig.post(url, fields, origin="null", **{"sec-fetch-site": "cross-site"})
    null_alone = rig.post(url, fields, origin="null")
    huge = rig.post(url, {**fields, "pad": "x" * 9000})
    assert [a.status_code for a in (missing, wrong, other_origin, cross_site, null_alone)] == [
        403
    ] * 5
    assert huge.status_code == 413
    assert rig.versions() == before
    # None of these used up an attempt: the link still takes a good key.
    assert rig.post(url, fields).status_code == 200
    assert rig.versions() == before + 1


def test_bad_input_counts_and_the_budget_kills_the_link(rig: Rig) -> None:
    url = rig.link()
    before = rig.versions()
    good = _good(rig)
    whitespace = rig.post(url, {"api_key": good[:10] + " " + good[10:], "expires_at": iso_date(9)})
    beyond = rig.post(url, {"api_key": good, "expires_at": iso_date(500)})
    assert (whitespace.status_code, beyond.status_code) == (422, 422)
    bad = new_value()
    rig.standin.set_key(bad, "invalid")
    rig.kit.values.append(bad)
    third = rig.post(url, {"api_key": bad, "expires_at": iso_date(200)})
    assert third.status_code == 410, "the third failure uses up a budget of 3"
    # Still the owner's answer (no Accept-Language here): why, and that the link is gone.
    assert (
        "Questo link non è più valido" in third.text and "non accetta questa chiave" in third.text
    )
    assert rig.post(url, {"api_key": good, "expires_at": iso_date(200)}).status_code == 410
    assert rig.versions() == before
    assert (
        rig.daemon.metric("mistral_intake_submissions_total", key=NAME, result="refused_link") >= 1
    )  # type: ignore[operator]


def test_nothing_leaks(rig: Rig) -> None:
    # Last in the module: everything above has run. One link stays open, for the state.
    rig.link()
    metrics = httpx.get(f"{rig.daemon.metrics_url}/metrics", timeout=5).text
    assert "mistral_intake_open_links" in metrics
    link_answers = [a for a in rig.daemon.answers if a.startswith('{"url":')]
    others = [a for a in rig.daemon.answers if a not in link_answers]
    assert len(link_answers) == len(rig.tokens)
    state_path = f"{rig.daemon.config['vault']['state_path']}/{NAME}"
    state = rig.openbao.client().secrets.kv.v2.read_secret_version(
        path=state_path, raise_on_deleted_version=True
    )["data"]["data"]
    assert "intake_links" in state, "open links are kept in the key's state"
    texts = [rig.daemon.output(), metrics, str(state), *rig.answers, *others]
    for secret in rig.tokens + rig.kit.values:
        half = secret[len(secret) // 2 :]
        for i, text in enumerate(texts):
            assert secret not in text and half not in text, f"a secret in text #{i}"
    # The one place a token may be: the link answer itself.
    assert all(token in answer for token, answer in zip(rig.tokens, link_answers, strict=True))
