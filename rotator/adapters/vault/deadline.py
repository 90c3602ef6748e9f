"""An overall deadline for each request to Vault, not only for each read.

``requests``' timeout bounds the connect and each single read: a Vault (or a proxy, a
half-dead load balancer) that sends its headers and then one byte every few seconds never
trips it, and the worker thread waits for as long as the trickle lasts. A few such calls
used up the thread pool and the daemon stopped asking Vault anything at all.

Here every request made inside :meth:`Watchdog.call` gets a deadline, ``seconds`` from the
moment it is sent until its last body byte. When it passes, one watchdog thread shuts the
request's socket down; the blocked read returns at once, the call fails, and
``call.expired`` tells the caller that this was a timeout. So no call outlives its deadline
by more than the watchdog's reaction time, and hung calls cannot hold the pool.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Call:
    """One Vault call on one thread: the socket of its current request and its deadline."""

    def __init__(self, watchdog: Watchdog, seconds: float) -> None:
        self._watchdog = watchdog
        self.seconds = seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._request = 0
        """Counts the call's requests: a deadline armed for an earlier one is void."""
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        """A request is sent on ``sock``: its deadline starts now."""
        with self._lock:
            self._sock = sock
            self._request += 1
            if self.expired:
                _shut(sock)
                return
            request = self._request
        self._watchdog.arm(self, request, time.monotonic() + self.seconds)

    def follow(self, sock: socket.socket | None) -> None:
        """The same request now reads from ``sock`` (http.client reconnected a dropped
        keep-alive connection while sending): its deadline applies there."""
        with self._lock:
            if sock is self._sock:
                return
            self._sock = sock
            if self.expired:
                _shut(sock)

    def over(self, request: int) -> bool:
        """Whether ``request`` can no longer be cut: a later one replaced it, or the call
        ended. Read without the lock: a stale answer only delays the drop (or the cut,
        which :meth:`expire` checks again under the lock)."""
        return request != self._request or self._sock is None

    def expire(self, request: int) -> None:
        with self._lock:
            if request != self._request or self._sock is None:
                return  # a later request of this call, or the call is over
            self.expired = True
            _shut(self._sock)


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # socket.socket's own shutdown, not SSLSocket's (which drops the TLS object under the
    # reading thread): the reader sees end-of-file and gives up.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One thread that ends requests past their deadline."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._heap: list[tuple[float, int, Call, int]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def call(self, seconds: float) -> Iterator[Call]:
        """Requests made by this thread inside the block get ``seconds`` each."""
        current = Call(self, seconds)
        self._local.call = current
        try:
            yield current
        finally:
            self._local.call = None
            with current._lock:
                current._sock = None  # nothing left to shut: the call is over

    def current(self) -> Call | None:
        found: Call | None = getattr(self._local, "call", None)
        return found

    def arm(self, call: Call, request: int, at: float) -> None:
        entry = (at, next(self._order), call, request)
        with self._wake:
            heap = self._heap
            # The oldest requests are mostly over by now: dropped here, the heap holds about
            # the requests in flight, not every request of the last ``seconds``.
            while heap and heap[0][2].over(heap[0][3]):
                heapq.heappop(heap)
            heapq.heappush(heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="vault-deadline", daemon=True
                )
                self._thread.start()
            # Every deadline is "now + the same seconds", so a new one is almost never the
            # earliest: waking the thread for each request (two a key in a restart of
            # thousands) only made it fight the workers for the GIL.
            if heap[0] is entry:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].over(self._heap[0][3]):
                    # A finished request: nothing to cut, and no reason to wait for its
                    # deadline before looking at the next.
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                at, _, call, request = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
            call.expire(request)


WATCHDOG = Watchdog()


def _attach(sock: socket.socket | None) -> None:
    call = WATCHDOG.current()
    if call is not None:
        call.attach(sock)


def _follow(sock: socket.socket | None) -> None:
    call = WATCHDOG.current()
    if call is not None:
        call.follow(sock)


class _DeadlineHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is None:
            # Connect here, so the deadline covers the request itself, not the connect
            # (which has requests' connect timeout).
            self.connect()
        _attach(self.sock)
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        _follow(self.sock)
        return super().getresponse()


class _DeadlineHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is None:
            self.connect()
        _attach(self.sock)
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        _follow(self.sock)
        return super().getresponse()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def deadline_session(connections: int = 10) -> requests.Session:
    """A requests session whose requests honour :data:`WATCHDOG`'s deadlines, keeping up to
    ``connections`` open per host: one for each thread that may call at once (more threads
    than pooled connections would open and drop a connection per call)."""
    session = requests.Session()
    adapter = _DeadlineAdapter(pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
