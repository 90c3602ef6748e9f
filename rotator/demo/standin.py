"""A stand-in for Mistral's ``GET /v1/models`` over real HTTP: for tests, the demo, benchmarks.

Each key is given a *behaviour* that decides how the stand-in answers for it; unknown keys
get 401, as from Mistral. Behaviours (``name`` or ``name:argument``):

``valid``                 200 and the model list (cards as Mistral's: ``answers.py``)
``invalid``               401 with Mistral's documented error shape
``invalid-detail``        401 ``{"detail": "Unauthorized"}``
``invalid-message``       401 ``{"message": "Unauthorized", "request_id": ...}``
``invalid-empty``         401 with an empty body
``billing``               402
``forbidden``             403
``not-found``             404
``no-model[:MODEL]``      200, the list without MODEL under any of its names (default: the
                          first of ``models``)
``rate-limited[:N]``      429 with ``Retry-After: N`` (default 1; ``none`` leaves it out)
``unavailable``           503 with a JSON body
``bad-gateway``           502 with an HTML body, as from a proxy
``slow:SECONDS``          waits, then as ``valid``
``reset``                 starts an answer, then resets the connection
``not-json``              200 with a text body
``no-list``               200, JSON without ``data``
``redirect[:URL]``        302 to URL (a verifier must not follow it with the key)
``seq:B1,B2,...``         one behaviour per request in turn; the last one repeats

The answers' bodies and headers are Mistral's shapes (``answers.py``); what Mistral's own
Python SDK makes of each behaviour is listed in ``tests/integration/test_standin_sdk.py``.

Control, for callers in another process (kept tiny on purpose):
``PUT /_standin/keys`` with ``{"api_key": ..., "behaviour": ...}`` and ``GET /_standin/stats``.

Run in the foreground: ``python -m rotator.demo.standin --port 8099 --latency 0.05``.
Standard library only; keys are held as salted digests and shown as fingerprints.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import struct
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

from rotator.demo.answers import Answer, answer, encode
from rotator.demo.standin_admin import ADMIN_PREFIX, CONTROL_PATH, AdminStandIn
from rotator.domain.model import fingerprint

DEFAULT_MODELS = (
    "mistral-large-latest",
    "mistral-small-latest",
    "codestral-latest",
    "open-mistral-nemo",
)
KEYS_PATH = "/_standin/keys"
STATS_PATH = "/_standin/stats"
MODELS_PATH = "/v1/models"

_PLAIN = {
    "valid",
    "invalid",
    "invalid-detail",
    "invalid-message",
    "invalid-empty",
    "billing",
    "forbidden",
    "not-found",
    "unavailable",
    "bad-gateway",
    "reset",
    "not-json",
    "no-list",
}
_WITH_ARG = {"no-model", "rate-limited", "slow", "redirect"}
BEHAVIOURS = frozenset(_PLAIN | _WITH_ARG)

Step = tuple[str, str | None]


def parse_behaviour(text: str) -> list[Step]:
    """``"seq:unavailable,valid"`` -> ``[("unavailable", None), ("valid", None)]``."""
    text = text.strip()
    items = text.removeprefix("seq:").split(",") if text.startswith("seq:") else [text]
    return [_parse_step(item.strip()) for item in items]


def _parse_step(item: str) -> Step:
    name, sep, arg = item.partition(":")
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {name!r}; known: {', '.join(sorted(BEHAVIOURS))}")
    if sep and name in _PLAIN:
        raise ValueError(f"behaviour {name!r} takes no argument")
    if name == "slow" and not sep:
        raise ValueError("behaviour 'slow' needs seconds, e.g. slow:2")
    if name in ("slow", "rate-limited") and sep and arg != "none":
        try:
            seconds = float(arg)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:
            raise ValueError(f"behaviour {name!r} needs a number of seconds >= 0, got {arg!r}")
    return name, (arg if sep else None)


@dataclass(frozen=True)
class StandInRequest:
    """One request to the API (control requests are not recorded)."""

    at: float
    """``time.monotonic()`` on arrival."""
    path: str
    fingerprint: str
    """Last four characters of the bearer key; empty when none was sent."""
    key_digest: str = field(repr=False, compare=False)


class _State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, latency: float, models: tuple[str, ...]) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.salt = secrets.token_bytes(16)
        self.default_latency = latency
        self.models = models
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.latency = self.default_latency
            self.keys: dict[str, list[Step]] = {}
            self.records: list[StandInRequest] = []
            self.in_flight = 0
            self.max_in_flight = 0

    def digest(self, api_key: str) -> str:
        return hashlib.blake2b(api_key.encode(), key=self.salt, digest_size=16).hexdigest()

    def set_key(self, api_key: str, behaviour: str) -> None:
        steps = parse_behaviour(behaviour)
        with self.lock:
            self.keys[self.digest(api_key)] = steps

    def arrive(self, api_key: str | None, path: str) -> Step | None:
        """Record the request and take the key's next step (None: unknown key)."""
        now = time.monotonic()
        digest = self.digest(api_key) if api_key else ""
        record = StandInRequest(now, path, fingerprint(api_key) if api_key else "", digest)
        with self.lock:
            self.records.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            steps = self.keys.get(digest)
            if not steps:
                return None
            return steps.pop(0) if len(steps) > 1 else steps[0]

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            by_key = Counter(r.fingerprint for r in self.records)
            return {
                "total": len(self.records),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "by_fingerprint": dict(by_key),
            }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], state: _State, admin: AdminStandIn) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.state = state
        self.admin = admin
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.open_lock:
            self.open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.open_lock:
                self.open.discard(request)

    def close_connections(self) -> None:
        with self.open_lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, resets) are part of the job, not errors.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "mistral-standin/1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _admin(self, method: str) -> bool:
        """Requests for the Admin API (and its control path) go to ``standin_admin``."""
        if not self.path.startswith((ADMIN_PREFIX, CONTROL_PATH)):
            return False
        self.server.admin.handle(self, method)
        return True

    def do_POST(self) -> None:
        if not self._admin("POST"):
            self._send(404, {"detail": "Not Found"})

    def do_DELETE(self) -> None:
        if not self._admin("DELETE"):
            self._send(404, {"detail": "Not Found"})

    def do_GET(self) -> None:
        if self._admin("GET"):
            return
        if self.path == STATS_PATH:
            self._send(200, self.server.state.stats())
            return
        auth = self.headers.get("Authorization", "")
        api_key = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        state = self.server.state
        step = state.arrive(api_key, self.path)
        try:
            if self.path.split("?")[0] != MODELS_PATH:
                self._send(404, {"detail": "Not Found"})
                return
            state.stopping.wait(state.latency)
            self._answer(step or ("invalid", None))
        finally:
            state.leave()

    def do_PUT(self) -> None:
        if self._admin("PUT"):
            return
        if self.path != KEYS_PATH:
            self._send(404, {"detail": "Not Found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            data = json.loads(self.rfile.read(length))
            api_key, behaviour = data["api_key"], data["behaviour"]
            if not isinstance(api_key, str) or not isinstance(behaviour, str) or not api_key:
                raise ValueError("api_key and behaviour must be non-empty strings")
            self.server.state.set_key(api_key, behaviour)
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._send(200, {"fingerprint": fingerprint(api_key)})

    def _answer(self, step: Step) -> None:
        name, arg = step
        state = self.server.state
        if name == "reset":
            self._reset()
            return
        if name == "slow":
            state.stopping.wait(float(arg or 0))
        canned = answer(name, arg, state.models)
        if canned is not None:
            self._write(canned)

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._write(encode(code, body, tuple((headers or {}).items())))

    def _write(self, canned: Answer) -> None:
        self.send_response(canned.status)
        for name, value in canned.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(canned.body)))
        self.end_headers()
        self.wfile.write(canned.body)

    def _reset(self) -> None:
        partial = b'HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n{"object": "li'
        self.wfile.write(partial)
        # Linger 0 turns the close into a TCP reset instead of an orderly FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        os.close(self.connection.detach())


class MistralStandIn:
    """The stand-in server, run in daemon threads. ``with MistralStandIn() as m: m.url``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        models: tuple[str, ...] = DEFAULT_MODELS,
    ) -> None:
        if not models:
            raise ValueError("models must name at least one model")
        self._address = (host, port)
        self._state = _State(latency, tuple(models))
        self.admin = AdminStandIn(self._state)
        """Mistral's Admin API: the organization's keys, policy, warm-up and faults."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MistralStandIn:
        if self._server is not None:
            return self
        self._state.stopping.clear()
        self._server = _Server(self._address, self._state, self.admin)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="mistral-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MistralStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        address = self._server.server_address
        host, port = str(address[0]), address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def latency(self) -> float:
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    def set_key(self, api_key: str, behaviour: str) -> None:
        """Answer requests with ``api_key`` as ``behaviour`` says (ValueError if unknown)."""
        self._state.set_key(api_key, behaviour)

    def reset(self) -> None:
        """Forget every key and request, restore the latency given at construction."""
        self._state.reset()
        self.admin.reset()

    @property
    def requests(self) -> list[StandInRequest]:
        with self._state.lock:
            return list(self._state.records)

    def count(self, api_key: str | None = None) -> int:
        """Requests received, in all or with ``api_key``."""
        records = self.requests
        if api_key is None:
            return len(records)
        digest = self._state.digest(api_key)
        return sum(1 for r in records if r.key_digest == digest)

    @property
    def max_in_flight(self) -> int:
        """The most API requests being answered at the same time since the last reset."""
        return self._state.max_in_flight


def put_key(url: str, api_key: str, behaviour: str, timeout: float = 5.0) -> None:
    """Set a key's behaviour on a stand-in running elsewhere (e.g. ``rotator demo``'s)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the stand-in's URL must be http:// or https://, got {url!r}")
    request = urllib.request.Request(  # noqa: S310 - the caller's own stand-in URL
        url.rstrip("/") + KEYS_PATH,
        data=json.dumps({"api_key": api_key, "behaviour": behaviour}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    # An http(s) URL, checked above: no file:// or other scheme.
    with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310  # nosec B310
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mistral API stand-in (GET /v1/models).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to answers")
    args = parser.parse_args(argv)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with MistralStandIn(args.host, args.port, latency=args.latency) as standin:
        print(f"mistral stand-in listening on {standin.url}", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
