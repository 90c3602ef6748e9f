"""The overall deadline of a request to Vault (rotator.adapters.vault.deadline), against a
loopback server that answers at once, or sends its headers and then trickles its body."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from rotator.adapters.vault.deadline import WATCHDOG, deadline_session

BODY = b'{"data": {"ok": true}}'


class Server:
    """HTTP/1.1 keep-alive; ``trickle`` seconds between body bytes (0: all at once)."""

    def __init__(self) -> None:
        self.trickle = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while not self.stop.is_set():
                try:
                    if not conn.recv(65536):
                        return
                    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n"
                    conn.sendall((head + "Content-Type: application/json\r\n\r\n").encode())
                    for i in range(len(BODY)):
                        if self.trickle:
                            self.stop.wait(self.trickle)
                        conn.sendall(BODY[i : i + 1])
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def test_a_quick_answer_is_untouched_and_keeps_its_connection(server: Server) -> None:
    session = deadline_session()
    with WATCHDOG.call(0.5) as call:
        for _ in range(3):  # the same kept-alive connection, one deadline per request
            assert session.get(server.url, timeout=5).json() == {"data": {"ok": True}}
            time.sleep(0.3)  # together longer than the deadline: each request has its own
    assert not call.expired


def test_a_trickling_answer_is_cut_off_at_the_deadline(server: Server) -> None:
    server.trickle = 0.2  # each read gets a byte well within requests' 5 s read timeout
    session = deadline_session()
    started = time.monotonic()
    with WATCHDOG.call(0.5) as call, pytest.raises(requests.RequestException):
        session.get(server.url, timeout=5)
    assert call.expired
    assert time.monotonic() - started < 2  # not the ~4 s the trickle would take


def test_outside_a_call_nothing_is_watched(server: Server) -> None:
    server.trickle = 0.01
    answer = deadline_session().get(server.url, timeout=5)
    assert answer.json() == {"data": {"ok": True}}


def test_finished_calls_with_later_deadlines_do_not_delay_a_cut(server: Server) -> None:
    """A restart leaves thousands of finished requests with deadlines far ahead; the
    watchdog must still cut the one trickling request whose deadline comes first, and
    after a long deadline has passed, cut the next live one without waiting on dead ones."""
    session = deadline_session()
    for _ in range(200):
        with WATCHDOG.call(60) as quick:
            session.get(server.url, timeout=5)
        assert not quick.expired
    server.trickle = 0.2
    started = time.monotonic()
    with WATCHDOG.call(0.5) as slow, pytest.raises(requests.RequestException):
        session.get(server.url, timeout=5)
    assert slow.expired
    assert time.monotonic() - started < 2
