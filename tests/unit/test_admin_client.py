"""The CLI's admin client against a scripted loopback server: what it sends, and what a
person reads for each way a daemon can answer (or not). TLS refusals are in
``tests/web/test_listeners.py`` and ``tests/web/test_daemon_listeners.py``; a real daemon in
``tests/integration/test_cli_ops.py``."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner

from rotator.cli import client as client_module
from rotator.cli.client import AdminClient, DaemonError
from rotator.cli.commands import cli

TOKEN = "admin-token-of-some-length"


def _answer(code: int, body: bytes, reason: str = "OK") -> bytes:
    head = f"HTTP/1.1 {code} {reason}\r\nContent-Length: {len(body)}\r\n"
    return (head + "Content-Type: application/json\r\nConnection: close\r\n\r\n").encode() + body


def json_answer(code: int, data: object) -> bytes:
    return _answer(code, json.dumps(data).encode())


@dataclass
class Scripted:
    """One connection at a time: reads a request, then does what ``reply`` says with it."""

    reply: Callable[[socket.socket, bytes], None]
    requests: list[bytes] = field(default_factory=list)
    server: socket.socket = field(default_factory=socket.socket)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                request = _read_request(conn)
                self.requests.append(request)
                self.reply(conn, request)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def daemon() -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], Scripted]]:
    started: list[Scripted] = []

    def start(reply: Callable[[socket.socket, bytes], None]) -> Scripted:
        scripted = Scripted(reply)
        scripted.server.bind(("127.0.0.1", 0))
        scripted.server.listen()
        threading.Thread(target=scripted.serve, daemon=True).start()
        started.append(scripted)
        return scripted

    yield start
    for scripted in started:
        scripted.server.close()


def send(answer: bytes) -> Callable[[socket.socket, bytes], None]:
    return lambda conn, _request: conn.sendall(answer)


def refusal(call: Callable[[], object]) -> DaemonError:
    with pytest.raises(DaemonError) as caught:
        call()
    return caught.value


def test_it_sends_the_token_and_a_json_body_under_the_urls_path(daemon: Callable) -> None:
    done = {"result": "rotated", "active_version": 3}
    server = daemon(send(json_answer(200, done)))
    client = AdminClient(server.url + "/behind/proxy/", TOKEN)
    assert client.operate("alpha", "rotate", {"version": None, "force": False}) == (200, done)
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /behind/proxy/api/v1/keys/alpha/rotate HTTP/1.1"
    assert f"Authorization: Bearer {TOKEN}" in lines
    assert "Content-Type: application/json" in lines
    assert json.loads(body) == {"version": None, "force": False}


def test_an_operation_that_outlives_the_daemons_wait_says_where_to_look(
    daemon: Callable,
) -> None:
    later = {"detail": "alpha: still rotating after 30 s"}
    server = daemon(send(json_answer(202, later)))
    done = CliRunner().invoke(cli, ["rotate", "alpha", "--url", server.url])
    assert done.exit_code == 1
    assert done.stdout == ""
    assert done.stderr == (
        "rotator: alpha: still rotating after 30 s; follow it with `rotator status`\n"
    )


@pytest.mark.parametrize(
    ("answer", "exit_code", "message"),
    [
        (json_answer(401, {"detail": "no"}), 2, "the daemon wants an admin token"),
        (json_answer(403, {"detail": "no"}), 2, "the admin token was refused"),
        (json_answer(404, {"detail": "unknown key: alpha"}), 2, "unknown key: alpha"),
        (
            json_answer(422, {"detail": [{"loc": ["body", "version"], "msg": "too small"}]}),
            2,
            "body.version: too small",
        ),
        (json_answer(500, {"detail": "Vault is sealed"}), 1, "the daemon could not do it: Vault"),
        (_answer(200, b"<html>a login page</html>"), 2, "(HTTP 200, not a JSON object)"),
        (_answer(502, b"\xff\xfe bad gateway"), 2, "(HTTP 502, not a JSON object)"),
    ],
    ids=["401", "403", "404", "422", "500", "html", "not-text"],
)
def test_each_answer_becomes_a_message_and_an_exit_status(
    daemon: Callable, answer: bytes, exit_code: int, message: str
) -> None:
    server = daemon(send(answer))
    error = refusal(AdminClient(server.url, TOKEN).keys)
    assert error.exit_code == exit_code
    assert message in str(error)
    assert TOKEN not in str(error)


def test_a_connection_closed_without_an_answer_suggests_tls(daemon: Callable) -> None:
    server = daemon(lambda conn, _request: None)  # reads the request, closes, says nothing
    error = refusal(AdminClient(server.url, TOKEN).keys)
    assert error.exit_code == 2
    assert str(error) == (
        f"the daemon at {server.url} closed the connection without an answer: if it serves "
        "TLS (server.web_config_file), use https://"
    )


def test_a_silent_daemon_times_out(daemon: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    server = daemon(lambda conn, _request: release.wait(10))
    monkeypatch.setattr(client_module, "READ_TIMEOUT_S", 0.3)
    try:
        error = refusal(AdminClient(server.url, TOKEN).keys)
    finally:
        release.set()
    assert error.exit_code == 1
    assert str(error) == f"the daemon at {server.url} did not answer within 0.3s"


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    error = refusal(AdminClient(url, TOKEN).keys)
    assert error.exit_code == 2
    assert str(error).startswith(f"cannot reach the daemon at {url} (")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:8080", "--url must start with http:// or https://"),
        ("http://127.0.0.1:port", "has no valid port"),
        ("http://127.0.0.1:70000", "has no valid port"),
        ("http://:8080", "names no host"),
    ],
)
def test_a_url_it_cannot_use_is_a_usage_error(url: str, message: str) -> None:
    error = refusal(lambda: AdminClient(url, TOKEN))
    assert error.exit_code == 2
    assert message in str(error)


def test_a_token_a_header_cannot_carry_is_refused_without_showing_it() -> None:
    token = "first-half\nsecond-half"
    error = refusal(lambda: AdminClient("http://127.0.0.1:1", token))
    assert error.exit_code == 2
    assert "first-half" not in str(error) and "second-half" not in str(error)
    assert "the admin token holds a character an HTTP header cannot carry" in str(error)


def test_a_name_that_is_no_key_name_never_reaches_the_daemon(daemon: Callable) -> None:
    server = daemon(send(json_answer(200, {})))
    client = AdminClient(server.url, TOKEN)
    for call in (
        lambda: client.operate("x/rollback?", "verify"),
        lambda: client.intake("x/../y"),
    ):
        assert "is not a key name" in str(refusal(call))
    assert server.requests == []


# --- the environment's proxy, as httpx honoured it -----------------------------------------

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_a_plain_daemon_is_asked_through_the_http_proxy(
    daemon: Callable, environment: pytest.MonkeyPatch
) -> None:
    proxy = daemon(send(json_answer(200, {"keys": []})))
    environment.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://ops:s%40cret@"))
    assert AdminClient("http://daemon.example:8080", TOKEN).keys() == {"keys": []}
    lines = proxy.requests[0].decode().split("\r\n")
    assert lines[0] == "GET http://daemon.example:8080/api/v1/keys HTTP/1.1"
    assert "Proxy-Authorization: Basic b3BzOnNAY3JldA==" in lines  # ops:s@cret


def test_no_proxy_reaches_the_daemon_directly(
    daemon: Callable, environment: pytest.MonkeyPatch
) -> None:
    server = daemon(send(json_answer(200, {"keys": []})))
    environment.setenv("http_proxy", "http://127.0.0.1:1")  # nothing there
    environment.setenv("NO_PROXY", "example.org, .127.0.0.1")
    assert AdminClient(server.url, TOKEN).keys() == {"keys": []}
    assert server.requests[0].startswith(b"GET /api/v1/keys HTTP/1.1\r\n")


def test_an_https_daemon_is_reached_through_a_tunnel(
    daemon: Callable, environment: pytest.MonkeyPatch
) -> None:
    proxy = daemon(send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
    environment.setenv("ALL_PROXY", proxy.url)
    error = refusal(AdminClient("https://daemon.example:8443", TOKEN).keys)
    assert proxy.requests[0].startswith(b"CONNECT daemon.example:8443 HTTP/1.")
    assert TOKEN.encode() not in proxy.requests[0]  # the token goes inside TLS only
    assert error.exit_code == 2
    assert "cannot reach the daemon at https://daemon.example:8443" in str(error)
    assert "403 Forbidden" in str(error)


def test_a_proxy_it_cannot_use_is_a_usage_error_without_its_password(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("HTTPS_PROXY", "socks5://ops:hunter2@proxy.example:1080")
    error = refusal(lambda: AdminClient("https://daemon.example", TOKEN))
    assert error.exit_code == 2
    assert "hunter2" not in str(error)
    assert str(error) == (
        "the proxy for https:// in the environment is no http:// URL: "
        "set NO_PROXY=daemon.example to reach the daemon directly"
    )
