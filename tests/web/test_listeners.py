"""The listener runner for real: TLS, client certificates, certificate renewal, basic auth,
headers, keep-alive, and clients that connect and send nothing or send slowly.

Each test starts :func:`rotator.web.server.serve` on a loopback port (tests/web/listener.py)
with a web config file and certificates the test makes (tests/web/certs.py).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml

from rotator.adapters.metrics.exposition import metrics_app
from tests.waiting import wait_for
from tests.web.certs import CA, Issued, der_serial, serial_of
from tests.web.listener import Listener

EXPOSITION = b"# HELP up_test test\nup_test 1\n"


def write_web(path: Path, **sections: Any) -> Path:
    path.write_text(yaml.safe_dump(sections))
    return path


def tls_section(server: Issued, ca: CA | None = None, **more: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"cert_file": str(server.cert), "key_file": str(server.key)}
    if ca is not None:
        section["client_ca_file"] = str(ca.cert)
        section["client_auth_type"] = "RequireAndVerifyClientCert"
    return {**section, **more}


def client(ca: CA, cert: Issued | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return httpx.Client(verify=context, timeout=5)


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "ca")


@pytest.fixture
def server_cert(ca: CA) -> Issued:
    return ca.issue("server")


@pytest.fixture
def tls_listener(tmp_path: Path, ca: CA, server_cert: Issued) -> Iterator[Listener]:
    web = write_web(tmp_path / "web.yml", tls_server_config=tls_section(server_cert))
    with Listener(web_config_file=web) as listener:
        yield listener


# --- TLS -----------------------------------------------------------------------------------


def test_tls_listener_answers_https_and_refuses_plain_http(tls_listener: Listener, ca: CA) -> None:
    assert tls_listener.url.startswith("https://")
    with client(ca) as https:
        assert https.get(tls_listener.url + "/x").text == "hello /x"
    plain = tls_listener.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(plain, timeout=5)


def test_a_client_that_does_not_know_the_ca_is_refused(tls_listener: Listener) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_listener.url, timeout=5)


def test_mtls_required_refuses_no_certificate_and_a_foreign_one(
    tmp_path: Path, ca: CA, server_cert: Issued
) -> None:
    clients_ca = CA(tmp_path / "clients", "clients-ca")
    other_ca = CA(tmp_path / "other", "other-ca")
    web = write_web(tmp_path / "web.yml", tls_server_config=tls_section(server_cert, clients_ca))
    with Listener(web_config_file=web) as listener:
        with client(ca) as anonymous, pytest.raises(httpx.TransportError):
            anonymous.get(listener.url)
        foreign = other_ca.issue("intruder", client=True)
        with client(ca, foreign) as intruder, pytest.raises(httpx.TransportError):
            intruder.get(listener.url)
        ops = clients_ca.issue("ops", client=True)
        with client(ca, ops) as known:
            assert known.get(listener.url + "/ok").text == "hello /ok"


def test_verify_if_given_lets_anonymous_in_but_not_a_foreign_certificate(
    tmp_path: Path, ca: CA, server_cert: Issued
) -> None:
    clients_ca = CA(tmp_path / "clients", "clients-ca")
    tls = tls_section(server_cert, clients_ca, client_auth_type="VerifyClientCertIfGiven")
    with Listener(web_config_file=write_web(tmp_path / "web.yml", tls_server_config=tls)) as it:
        with client(ca) as anonymous:
            assert anonymous.get(it.url).status_code == 200
        foreign = CA(tmp_path / "other", "other-ca").issue("intruder", client=True)
        with client(ca, foreign) as intruder, pytest.raises(httpx.TransportError):
            intruder.get(it.url)


def test_client_allowed_sans_admits_only_the_named_client(
    tmp_path: Path, ca: CA, server_cert: Issued
) -> None:
    clients_ca = CA(tmp_path / "clients", "clients-ca")
    tls = tls_section(server_cert, clients_ca, client_allowed_sans=["prometheus.monitoring"])
    with Listener(web_config_file=write_web(tmp_path / "web.yml", tls_server_config=tls)) as it:
        right = clients_ca.issue("prom", dns=("prometheus.monitoring",), ips=(), client=True)
        wrong = clients_ca.issue("other", dns=("grafana.monitoring",), ips=(), client=True)
        with client(ca, right) as prometheus:
            assert prometheus.get(it.url).status_code == 200
        with client(ca, wrong) as grafana, pytest.raises(httpx.TransportError):
            grafana.get(it.url)


def test_a_certificate_replaced_on_disk_is_served_without_a_restart(
    tls_listener: Listener, ca: CA, server_cert: Issued
) -> None:
    first = der_serial(tls_listener.served_certificate(ca.cert))
    assert first == serial_of(server_cert.cert.read_bytes())
    renewed = ca.issue("renewed")
    # As cert-manager or an operator would: new files over the old ones.
    server_cert.key.write_bytes(renewed.key.read_bytes())
    server_cert.cert.write_bytes(renewed.cert.read_bytes())
    wanted = serial_of(renewed.cert.read_bytes())
    wait_for(
        lambda: der_serial(tls_listener.served_certificate(ca.cert)) == wanted,
        15,
        "the renewed certificate to be served",
    )
    assert tls_listener.errors == 0


def test_a_broken_new_web_config_keeps_the_old_one_and_is_counted(
    tmp_path: Path, ca: CA, server_cert: Issued
) -> None:
    web = write_web(tmp_path / "web.yml", tls_server_config=tls_section(server_cert))
    with Listener(web_config_file=web) as listener:
        served = listener.served_certificate(ca.cert)
        web.write_text("tls_server_config:\n  cert_file: [not, a, path\n")
        wait_for(lambda: listener.errors == 1, 15, "the reload error to be counted")
        assert listener.served_certificate(ca.cert) == served
        with client(ca) as https:
            assert https.get(listener.url).status_code == 200
        # Fixed again: taken, and the error is not counted twice.
        renewed = ca.issue("renewed")
        write_web(web, tls_server_config=tls_section(renewed))
        wanted = serial_of(renewed.cert.read_bytes())
        wait_for(
            lambda: der_serial(listener.served_certificate(ca.cert)) == wanted,
            15,
            "the fixed file to be taken",
        )
        assert listener.errors == 1


# --- basic auth and headers ----------------------------------------------------------------


def _metrics_listener(tmp_path: Path, users: dict[str, str], **sections: Any) -> Listener:
    web = write_web(tmp_path / "web.yml", basic_auth_users=users, **sections)
    listener = Listener(web_config_file=web)
    listener._app = metrics_app(lambda: EXPOSITION, lambda: listener.web.state.users)
    return listener


def test_basic_auth_right_wrong_and_unknown_user(tmp_path: Path) -> None:
    cost = 8
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=cost)).decode()
    started = time.perf_counter()
    bcrypt.checkpw(b"x", hashed.encode())
    one_bcrypt = time.perf_counter() - started
    with _metrics_listener(tmp_path, {"prometheus": hashed}) as listener:
        right = listener.get("/metrics", auth=("prometheus", "s3cret"))
        assert right.status_code == 200
        assert right.content == EXPOSITION
        assert listener.get("/metrics").status_code == 401
        assert listener.get("/metrics").headers["www-authenticate"].startswith("Basic ")
        timings = {}
        for who, password in [("prometheus", "wrong"), ("nobody", "s3cret")]:
            started = time.perf_counter()
            assert listener.get("/metrics", auth=(who, password)).status_code == 401
            timings[who] = time.perf_counter() - started
        # A refusal costs a bcrypt comparison, for an unknown user too: its time says nothing.
        assert min(timings.values()) >= 0.5 * one_bcrypt, (timings, one_bcrypt)
        # The health answer of the metrics listener needs no password (kubelet probes).
        assert listener.get("/healthz").status_code == 200


def test_metrics_are_gzipped_when_asked(tmp_path: Path) -> None:
    with _metrics_listener(tmp_path, {}) as listener:
        answer = listener.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.content == EXPOSITION  # httpx unzips
        assert listener.get("/elsewhere").status_code == 404


def test_configured_headers_are_on_every_answer(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    headers = {"Strict-Transport-Security": "max-age=31536000", "X-Frame-Options": "deny"}
    listener = _metrics_listener(tmp_path, {"u": hashed}, http_server_config={"headers": headers})
    with listener:
        for answer in (listener.get("/metrics"), listener.get("/healthz")):
            assert answer.headers["strict-transport-security"] == "max-age=31536000"
            assert answer.headers["x-frame-options"] == "deny"
            assert answer.headers["date"]


# --- keep-alive, idle and slow clients -----------------------------------------------------


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head.split(b"\r\n")[0] + b" " + body


def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    with Listener() as listener, socket.create_connection(("127.0.0.1", listener.port), 5) as s:
        for path in (b"/one", b"/two"):
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_answer(s) == b"HTTP/1.1 200 OK hello " + path


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except ConnectionError:
        return True


def test_idle_and_slow_clients_are_cut_off_and_never_keep_others_waiting(
    tmp_path: Path, ca: CA, server_cert: Issued
) -> None:
    web = write_web(tmp_path / "web.yml", tls_server_config=tls_section(server_cert))
    with (
        Listener(read_timeout=2) as plain,
        Listener(web_config_file=web, read_timeout=2) as tls,
        contextlib.ExitStack() as closing,
    ):
        began = time.monotonic()
        idle = [
            closing.enter_context(socket.create_connection(("127.0.0.1", p.port), 5))
            for p in (plain, tls)
            for _ in range(40)
        ]
        slow = closing.enter_context(socket.create_connection(("127.0.0.1", plain.port), 5))
        for sock in [*idle, slow]:
            sock.settimeout(0.01)
        with client(ca) as https:
            for _ in range(5):
                assert plain.get("/").status_code == 200
                assert https.get(tls.url).status_code == 200
        # Long enough that a byte every 50 ms cannot complete it before the 2 s deadline.
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 300 + b"\r\n\r\n"
        sent = 0

        def slow_client_cut() -> bool:
            nonlocal sent
            try:
                slow.send(request[sent : sent + 1])
                sent += 1
            except OSError:
                return True
            return _closed_by_server(slow)

        # A byte every 50 ms keeps resetting uvicorn's keep-alive timer; the deadline holds.
        wait_for(slow_client_cut, 10, "the slow client to be cut off", step=0.05)
        wait_for(lambda: all(_closed_by_server(s) for s in idle), 15, "idle clients to be cut")
        # Plain ones at the 2 s read deadline; TLS ones (no handshake) at HANDSHAKE_TIMEOUT_S.
        assert time.monotonic() - began < 12
        assert plain.get("/").status_code == 200


# --- what the admin client says when TLS fails ---------------------------------------------


def test_the_admin_client_names_a_certificate_for_another_host_and_a_plain_listener(
    tmp_path: Path, ca: CA
) -> None:
    from rotator.cli.client import AdminClient, DaemonError

    elsewhere = ca.issue("elsewhere", dns=("rotator.example",), ips=())
    web = write_web(tmp_path / "web.yml", tls_server_config=tls_section(elsewhere))
    with Listener(web_config_file=web) as listener:
        with pytest.raises(DaemonError) as caught:
            AdminClient(listener.url, None, ca_cert=ca.cert).keys()
        assert caught.value.exit_code == 2
        assert "not for the host in" in str(caught.value)
    with Listener() as plain:
        https = plain.url.replace("http://", "https://")
        with pytest.raises(DaemonError) as caught:
            AdminClient(https, None, ca_cert=ca.cert).keys()
        assert caught.value.exit_code == 2
        assert "does not speak TLS: use http://" in str(caught.value)
    with pytest.raises(DaemonError, match="--client-key needs --client-cert"):
        AdminClient("https://127.0.0.1:1", None, client_key=elsewhere.key)
