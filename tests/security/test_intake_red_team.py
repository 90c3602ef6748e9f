"""The intake as an attacker and a hurried operator use it: what a red team found.

One daemon (intake on) whose Vault is reached through a proxy that can be cut, links made
through the admin API.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from rotator.demo.standin import MistralStandIn
from rotator.intake.links import csrf_for
from tests.faults.proxy import FaultProxy
from tests.fixtures.daemon import DaemonProcess, KeyKit
from tests.fixtures.openbao import OpenBaoServer
from tests.intake_helpers import intake_daemon, iso_date, new_value, vault_versions
from tests.waiting import wait_for

NAME = "tenant"


@dataclass
class Rig:
    daemon: DaemonProcess
    kit: KeyKit
    openbao: OpenBaoServer
    standin: MistralStandIn
    vault: FaultProxy
    base: str

    def link(self) -> str:
        answer = self.daemon.api("POST", f"/api/v1/keys/{NAME}/intake", json={"ttl": "1h"})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["url"])

    def post(self, url: str, api_key: str, expires_at: str) -> httpx.Response:
        token = url.rpartition("/")[2]
        form = {"csrf": csrf_for(token), "api_key": api_key, "expires_at": expires_at}
        return httpx.post(url, data=form, headers={"origin": self.base}, timeout=30)

    def good(self) -> str:
        value = new_value()
        self.standin.set_key(value, "valid")
        self.kit.values.append(value)
        return value

    def versions(self) -> int:
        return vault_versions(self.openbao, self.kit.path(NAME))


@pytest.fixture(scope="module")
def rig(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with (
        MistralStandIn() as standin,
        FaultProxy(("127.0.0.1", openbao.port)) as vault,
    ):
        kit = KeyKit(openbao, standin, f"mistral/intake-red-{new_value()[:8]}")
        kit.put(NAME, expires_at=iso_date(20))
        daemon = intake_daemon(tmp_path_factory.mktemp("intake-red"), openbao, standin, kit, NAME)
        daemon.config["vault"]["address"] = vault.url
        daemon.start()
        try:
            daemon.wait_checked([NAME])
            event = daemon.events("intake.listening")[-1]
            yield Rig(daemon, kit, openbao, standin, vault, event["public_url"])
        finally:
            vault.passthrough()
            vault.accept()
            daemon.stop()


def test_vault_down_the_owner_is_told_to_come_back_and_the_link_still_works(rig: Rig) -> None:
    url = rig.link()
    key = rig.good()
    before = rig.versions()
    rig.vault.refuse()
    try:
        opened = httpx.get(url, timeout=30)
        posted = rig.post(url, key, iso_date(200))
    finally:
        rig.vault.accept()
    for answer in (opened, posted):
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "60"
        assert answer.headers["cache-control"] == "no-store"
        assert "try again in a few minutes" in answer.text
        assert "still works" in answer.text
    assert "Traceback" not in rig.daemon.output()
    assert rig.daemon.events("intake.unavailable")
    # Not used up: once Vault is back the same link takes the key.
    assert rig.post(url, key, iso_date(200)).status_code == 200
    assert rig.versions() == before + 1


@pytest.mark.parametrize(
    ("ttl", "said"),
    [
        ("0s", "between 1m and 90d"),
        ("30s", "between 1m and 90d"),
        ("365d", "between 1m and 90d"),
        ("100000d", "at most 3650d"),
        ("-1d", "not a duration"),
        ("7", "not a duration"),
        ("1w", "not a duration"),
        ("", "not a duration"),  # the CLI once sent no body: the default ttl, silently
        ("1.5h", "whole number"),  # what the published schema allows, no more
    ],
)
def test_a_ttl_out_of_bounds_is_refused_naming_it(rig: Rig, ttl: str, said: str) -> None:
    answer = rig.daemon.api("POST", f"/api/v1/keys/{NAME}/intake", json={"ttl": ttl})
    assert answer.status_code == 422, answer.text
    assert said in answer.text and "ttl" in answer.text
    cli = rig.daemon.cli("intake", NAME, "--ttl", ttl)
    assert cli.returncode == 2, cli
    assert said in cli.stderr and cli.stdout == ""
    assert "Traceback" not in rig.daemon.output()


def test_a_ttl_at_the_bounds_makes_a_link(rig: Rig) -> None:
    for ttl in ("1m", "90d"):
        answer = rig.daemon.api("POST", f"/api/v1/keys/{NAME}/intake", json={"ttl": ttl})
        assert answer.status_code == 200, answer.text


def test_head_answers_as_get_does(rig: Rig) -> None:
    """A link checker or a mail scanner sends HEAD: it sees what GET would, uses nothing up."""
    url = rig.link()
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["cache-control"] == "no-store"
    assert httpx.head(f"{rig.base}/intake/{NAME}.{'A' * 43}", timeout=30).status_code == 410
    assert httpx.get(url, timeout=30).status_code == 200


def test_vault_down_making_or_withdrawing_a_link_says_so(rig: Rig) -> None:
    rig.vault.refuse()
    try:
        made = rig.daemon.api("POST", f"/api/v1/keys/{NAME}/intake", json={"ttl": "1h"})
        withdrawn = rig.daemon.api("DELETE", f"/api/v1/keys/{NAME}/intake")
        cli = rig.daemon.cli("intake", NAME)
    finally:
        rig.vault.accept()
    for answer in (made, withdrawn):
        assert answer.status_code == 503, answer.text
        assert "vault unreachable" in answer.json()["detail"]
    assert cli.returncode == 1, cli
    assert "vault unreachable" in cli.stderr and cli.stdout == ""
    assert "Traceback" not in rig.daemon.output()


@dataclass
class SlowAccept:
    """An owner's key handed over while Mistral is still checking it (``slow_accept``)."""

    daemon: DaemonProcess
    answers: list[httpx.Response] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    posting: threading.Thread | None = None

    def join(self) -> None:
        assert self.posting is not None
        self.posting.join(30)


@contextmanager
def slow_accept(
    openbao: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path, slow_s: int
) -> Iterator[SlowAccept]:
    """A daemon with the intake page; its key's owner posts a new key that Mistral takes
    ``slow_s`` to check. Yields once Mistral has been asked; stops the daemon at the end."""
    kit = KeyKit(openbao, mistral, f"mistral/intake-slow-{new_value()[:8]}")
    kit.put(NAME, expires_at=iso_date(20))
    accept = SlowAccept(intake_daemon(tmp_path, openbao, mistral, kit, NAME))
    daemon = accept.daemon
    daemon.start()
    try:
        daemon.wait_checked([NAME])
        base = daemon.events("intake.listening")[-1]["public_url"]
        url = daemon.api("POST", f"/api/v1/keys/{NAME}/intake").json()["url"]
        key = new_value()
        mistral.set_key(key, f"slow:{slow_s}")
        kit.values.append(key)
        form = {"csrf": csrf_for(url.rpartition("/")[2]), "api_key": key}

        def post() -> None:
            try:
                accept.answers.append(
                    httpx.post(
                        url,
                        data={**form, "expires_at": iso_date(200)},
                        headers={"origin": base},
                        timeout=30,
                    )
                )
            except httpx.HTTPError as exc:
                accept.failures.append(exc)

        accept.posting = threading.Thread(target=post)
        accept.posting.start()
        wait_for(lambda: mistral.count(key) >= 1, 20, "Mistral asked about the new key")
        yield accept
    finally:
        daemon.stop()


def test_sigterm_during_an_accept_still_answers_the_owner_and_the_key_goes_live_at_restart(
    openbao: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    """The stop comes while Mistral is still checking the owner's key (3 s; checking it again
    for the rotation would take the accept past the listener's 5 s of grace): the owner is
    told the key is stored (not cut off with no answer), the process exits 0 without a
    traceback, and the next start puts the stored key live."""
    with slow_accept(openbao, mistral, tmp_path, 3) as accept:
        daemon = accept.daemon
        code = daemon.stop()
        accept.join()
        assert code == 0
        assert accept.answers and accept.answers[0].status_code == 200, accept.failures
        assert "stored" in accept.answers[0].text
        assert "Traceback" not in daemon.output()
        daemon.log_path.unlink()
        daemon.start()
        wait_for(lambda: daemon.key(NAME)["active_version"] == 2, 30, "the stored key live")


@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\x00", "\u00e9"])
def test_an_invisible_character_in_a_pasted_key_is_named_not_blamed_on_mistral(
    rig: Rig, invisible: str
) -> None:
    url = rig.link()
    key = rig.good()
    before = rig.versions()
    answer = rig.post(url, key[:8] + invisible + key[8:], iso_date(200))
    assert answer.status_code == 422, answer.text
    assert "not part of a Mistral key" in answer.text
    assert "Mistral does not accept this key" not in answer.text
    assert rig.versions() == before
    assert rig.post(url, key, iso_date(200)).status_code == 200


def test_an_answer_cut_at_stop_is_not_logged_as_an_application_error(
    openbao: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    """Mistral takes 8 s to check the owner's key and the stop comes meanwhile: past the
    listener's 5 s of grace the answer is cut (the client sees the connection close), the
    process exits 0, and the log says so in a line, not with a CancelledError traceback."""
    with slow_accept(openbao, mistral, tmp_path, 8) as accept:
        assert accept.daemon.stop(timeout=30) == 0
        accept.join()
    assert accept.failures, "the answer was cut"
    assert "Traceback" not in accept.daemon.output(), accept.daemon.tail()
    assert accept.daemon.events("web.answer_cut")


def test_one_link_posted_to_two_instances_at_once_is_used_once(
    openbao: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    """Links live in Vault and work with two instances; each instance's lock covers only
    itself. Two keys handed over with one link at the same moment, one to each instance
    (Mistral takes a second to check each, so both are past the link check): one is
    accepted, the other refused, and Vault gets one new version."""
    kit = KeyKit(openbao, mistral, f"mistral/intake-two-{new_value()[:8]}")
    kit.put(NAME, expires_at=iso_date(20))
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    daemons = [intake_daemon(tmp_path / side, openbao, mistral, kit, NAME) for side in ("a", "b")]
    for daemon in daemons:
        daemon.start()
    try:
        for daemon in daemons:
            daemon.wait_checked([NAME])
        url = daemons[0].api("POST", f"/api/v1/keys/{NAME}/intake").json()["url"]
        token = url.rpartition("/")[2]
        before = vault_versions(openbao, kit.path(NAME))
        answers: list[int] = []

        def hand_over(daemon: DaemonProcess) -> None:
            key = new_value()
            mistral.set_key(key, "slow:1")
            kit.values.append(key)
            base = daemon.events("intake.listening")[-1]["public_url"]
            answer = httpx.post(
                f"{base}/intake/{token}",
                data={"csrf": csrf_for(token), "api_key": key, "expires_at": iso_date(200)},
                headers={"origin": base},
                timeout=30,
            )
            answers.append(answer.status_code)

        posts = [threading.Thread(target=hand_over, args=(d,)) for d in daemons]
        for post in posts:
            post.start()
        for post in posts:
            post.join(30)
        assert sorted(answers) == [200, 410], answers
        assert vault_versions(openbao, kit.path(NAME)) == before + 1
    finally:
        for daemon in daemons:
            daemon.stop()
