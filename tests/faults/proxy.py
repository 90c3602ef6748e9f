"""A loopback TCP proxy that a test turns into a faulty network: slow, refusing, resetting,
hanging, or presenting a TLS certificate of the test's choosing.

It sits between the daemon and a real server (OpenBao, the Mistral stand-in), so the daemon
meets the fault through its real client code, not a mock. Threads only; every socket it
opens it closes in :meth:`FaultProxy.stop`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator

_CHUNK = 65536


class FaultProxy:
    """``FaultProxy(("127.0.0.1", port))``: forwards to that address until told otherwise.

    ``delay(s)`` holds every chunk coming back from the server for ``s`` seconds;
    ``refuse()`` closes the listening socket (connections are refused) and ``accept()``
    opens it again on the same port; ``reset()`` answers each new connection with a TCP
    reset; ``hang()`` reads the request and never answers; ``tls(context)`` terminates TLS
    with ``context`` (a server context) before forwarding in plain text.
    """

    def __init__(self, target: tuple[str, int], *, tls: ssl.SSLContext | None = None) -> None:
        self.target = target
        self._tls = tls
        self._mode = "pass"
        """pass | reset | hang, for connections accepted from now on."""
        self._delay = 0.0
        """Read again before every chunk, so it applies to open connections too."""
        self._trickle = 0.0
        """Seconds between body bytes (0: off), read again before every byte."""
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.connections = 0
        self._listener: socket.socket | None = None
        self.port = 0
        self.accept()

    # --- what a test changes -----------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def passthrough(self) -> None:
        self._mode = "pass"
        self._delay = 0.0
        self._trickle = 0.0

    def trickle(self, seconds: float) -> None:
        """Pass the server's answer headers at once, then its body one byte every
        ``seconds``: each read gets a byte in time, so only an overall deadline ends it."""
        self._trickle = seconds
        self.drop()

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def reset(self) -> None:
        self._mode = "reset"
        self.drop()

    def hang(self) -> None:
        self._mode = "hang"
        self.drop()

    def tls(self, context: ssl.SSLContext) -> None:
        self._tls = context
        self.drop()

    def refuse(self) -> None:
        """Stop listening (a connect now gets ECONNREFUSED) and drop open connections."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.drop()

    def drop(self) -> None:
        """End every open connection, so that a client's pooled one meets the new mode too."""
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def accept(self) -> None:
        """Listen (again, on the same port once one was taken)."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept_loop, listener)

    def stop(self) -> None:
        self._stopping.set()
        self.refuse()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the work ----------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set() and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by refuse() or stop()
            self.connections += 1
            self._track(client)
            self._spawn(self._serve, client, self._mode)

    def _serve(self, client: socket.socket, mode: str) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(None)
            if mode == "reset":
                # Linger 0 turns the close into a TCP reset instead of an orderly FIN.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if self._tls is not None:
                client = self._handshake(client)
                if client is None:
                    return  # the daemon refused our certificate: that is the fault
            if mode == "hang":
                with contextlib.suppress(OSError):
                    while not self._stopping.is_set() and client.recv(_CHUNK):
                        pass
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                return
            upstream.settimeout(None)
            self._track(upstream)
            reset = threading.Event()
            back = threading.Thread(
                target=self._pump, args=(client, upstream, False, reset), daemon=True
            )
            back.start()
            self._pump(upstream, client, True, reset)
            back.join(timeout=5)
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._untrack(sock)
                    sock.close()

    def _handshake(self, client: socket.socket) -> ssl.SSLSocket | None:
        assert self._tls is not None
        self._untrack(client)
        try:
            wrapped = self._tls.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()
            return None
        self._track(wrapped)
        return wrapped

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _pump(
        self, source: socket.socket, sink: socket.socket, to_client: bool, reset: threading.Event
    ) -> None:
        """Copy until ``source`` ends, then end both directions (a reset stays a reset)."""
        try:
            for chunk in _chunks(source):
                if to_client and self._delay:
                    self._stopping.wait(self._delay)
                if to_client and self._trickle:
                    self._trickle_out(chunk, sink)
                    continue
                sink.sendall(chunk)
        except ConnectionResetError:
            if to_client:  # the server reset: the client gets a reset too (linger 0, close)
                with contextlib.suppress(OSError):
                    sink.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                reset.set()
        except OSError:
            pass
        finally:
            client = sink if to_client else source
            for sock in (source, sink):
                # SHUT_RD sends nothing on the client after a reset: it only wakes the
                # other pump's recv; the close in _serve then sends the RST.
                how = socket.SHUT_RD if reset.is_set() and sock is client else socket.SHUT_RDWR
                with contextlib.suppress(OSError):
                    sock.shutdown(how)

    def _trickle_out(self, chunk: bytes, sink: socket.socket) -> None:
        head, sep, body = chunk.partition(b"\r\n\r\n")
        if sep:
            sink.sendall(head + sep)
        else:
            body = chunk
        for i in range(len(body)):
            if not self._trickle or self._stopping.is_set():
                sink.sendall(body[i:])
                return
            sink.sendall(body[i : i + 1])
            self._stopping.wait(self._trickle)


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        chunk = sock.recv(_CHUNK)
        if not chunk:
            return
        yield chunk


def wait_port_free(port: int, timeout: float = 5) -> None:
    """Until nothing accepts on ``port`` (a refused connect)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} still accepts connections")
