"""Mistral (or the network to it) misbehaving, met by a running daemon: a key that was valid
becomes ``unreachable`` or ``unknown``, never ``invalid``; ``mistral_key_valid`` stays 1; a new
version is postponed, never rejected; the daemon never dies of it.

The daemon is a real ``rotator run`` subprocess; between it and the Mistral stand-in sits a
:class:`~tests.faults.proxy.FaultProxy` (refusing connections, or presenting a TLS
certificate the daemon does not trust). The other faults are the stand-in's own behaviours
(``reset``, ``not-json``, ``no-list``, ``slow:N``). Each verification is asked for through
the admin API, as ops would, so that every step is one request to Mistral.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.demo.standin import MistralStandIn
from tests.faults.certs import self_signed, server_context
from tests.faults.proxy import FaultProxy
from tests.faults.tools import Stack, read_key, rotations, status_of
from tests.fixtures.daemon import DaemonProcess
from tests.waiting import wait_for

TIMEOUT_S = 1.0
MISTRAL = {"timeout_seconds": TIMEOUT_S, "retries": 0}


def address(standin: MistralStandIn) -> tuple[str, int]:
    host, port = standin.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def proxy(mistral: MistralStandIn) -> Iterator[FaultProxy]:
    with FaultProxy(address(mistral)) as fault_proxy:
        yield fault_proxy


def verify_now(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    answer = daemon.api("POST", f"/api/v1/keys/{name}/verify")
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


def last_verified(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    return [e for e in daemon.events("key.verified") if e["key"] == name][-1]


def test_network_and_answer_faults_never_make_a_valid_key_invalid(
    stack: Stack, proxy: FaultProxy
) -> None:
    _, value = stack.kit.put("portal")
    config = stack.config(["portal"], mistral={"base_url": proxy.url, **MISTRAL})
    daemon = stack.start(config)
    assert status_of(daemon, "portal") == "valid"
    errors_before = daemon.metric("rotator_errors_total", component="mistral") or 0

    def behaviour(name: str) -> Callable[[], None]:
        return lambda: stack.standin.set_key(value, name)

    # Which transport error httpx names for a refused or reset connection depends on when the
    # proxy's close lands (connect, or the first read): either says "the network", not the key.
    transport = ("ConnectError", "ReadError", "RemoteProtocolError")
    faults: list[tuple[str, Callable[[], None], str, tuple[str, ...]]] = [
        # (what, inject, the status expected, words one of which the logged detail holds)
        ("connection refused", proxy.refuse, "unreachable", transport),
        ("reset when connecting", proxy.reset, "unreachable", transport),
        ("reset mid-response", behaviour("reset"), "unreachable", transport),
        ("a body that is not JSON", behaviour("not-json"), "unknown", ("not JSON",)),
        ("200 without the model list", behaviour("no-list"), "unknown", ("no model list",)),
        ("a hang beyond the timeout", behaviour("slow:5"), "unreachable", ("no answer within",)),
    ]
    seen = []
    for what, inject, expected, detail in faults:
        inject()
        view = verify_now(daemon, "portal")
        event = last_verified(daemon, "portal")
        seen.append((what, view["status"], event["status"]))
        assert view["status"] == expected, f"{what}: {view}"
        assert any(word in (event.get("detail") or "") for word in detail), f"{what}: {event}"
        assert daemon.metric("mistral_key_valid", key="portal") == 1, what
        assert status_of(daemon, "portal") == expected, what
        # Mistral is back: valid again, nothing left over.
        proxy.passthrough()
        proxy.accept()
        stack.standin.set_key(value, "valid")
        assert verify_now(daemon, "portal")["status"] == "valid", f"after {what}"

    assert all("invalid" not in statuses for statuses in seen), seen
    verified = [e["status"] for e in daemon.events("key.verified")]
    assert "invalid" not in verified
    assert (daemon.metric("rotator_errors_total", component="mistral") or 0) >= errors_before + 4
    assert daemon.running and daemon.api("GET", "/healthz").status_code == 200
    assert not daemon.events("key.unexpected_error")
    stack.assert_no_key_leaked()


def test_new_version_during_an_outage_is_postponed_then_delivered(
    stack: Stack, proxy: FaultProxy
) -> None:
    _, v1 = stack.kit.put("portal")
    config = stack.config(["portal"], mistral={"base_url": proxy.url, **MISTRAL})
    daemon = stack.start(config)
    sink = stack.sink_path(config, "portal")
    assert read_key(sink) == v1

    proxy.refuse()
    _, v2 = stack.kit.put("portal")

    def postponed() -> bool:
        return any(e["version"] == 2 for e in daemon.events("key.rotation_postponed"))

    daemon.wait_until(postponed, 10, "v2 postponed")
    daemon.wait_until(
        lambda: len(daemon.events("key.rotation_postponed")) >= 2, 10, "a second attempt"
    )
    assert read_key(sink) == v1
    assert rotations(daemon, "portal", "rejected") == 0
    assert daemon.metric("mistral_key_valid", key="portal") == 1
    assert stack.state(config, "portal")["active_version"] == 1

    proxy.accept()
    daemon.wait_until(lambda: read_key(sink) == v2, 10, "v2 delivered after the outage")
    wait_for(lambda: stack.state(config, "portal")["active_version"] == 2, 5, "v2 recorded")
    assert rotations(daemon, "portal", "rejected") == 0
    assert "rejected_version" not in stack.state(config, "portal")
    stack.assert_no_key_leaked()


def test_tls_failure_is_unreachable_and_the_key_never_crosses_it(
    stack: Stack, mistral: MistralStandIn, tmp_path: Path
) -> None:
    trusted = self_signed(tmp_path, "mistral-trusted")
    impostor = self_signed(tmp_path, "mistral-impostor")
    with FaultProxy(address(mistral), tls=server_context(*trusted)) as proxy:
        _, value = stack.kit.put("portal")
        mistral_settings = {"base_url": proxy.url, "ca_cert": str(trusted[0]), **MISTRAL}
        config = stack.config(["portal"], mistral=mistral_settings)
        daemon = stack.start(config)
        assert status_of(daemon, "portal") == "valid"  # TLS to the trusted certificate works

        asked = mistral.count(value)
        proxy.tls(server_context(*impostor))  # a self-signed certificate nobody trusts
        view = verify_now(daemon, "portal")
        assert view["status"] == "unreachable", view
        assert "CERTIFICATE_VERIFY_FAILED" in last_verified(daemon, "portal")["detail"]
        assert daemon.metric("mistral_key_valid", key="portal") == 1
        assert mistral.count(value) == asked, "the key went through a TLS connection we refused"

        # A new version is postponed while TLS fails, and not handed to the impostor either.
        _, v2 = stack.kit.put("portal")
        daemon.wait_until(
            lambda: any(e["version"] == 2 for e in daemon.events("key.rotation_postponed")),
            10,
            "v2 postponed",
        )
        assert mistral.count(v2) == 0
        assert rotations(daemon, "portal", "rejected") == 0

        proxy.tls(server_context(*trusted))
        sink = stack.sink_path(config, "portal")
        daemon.wait_until(lambda: read_key(sink) == v2, 10, "v2 delivered once TLS is right")
        assert verify_now(daemon, "portal")["status"] == "valid"
    assert daemon.running
    stack.assert_no_key_leaked()
