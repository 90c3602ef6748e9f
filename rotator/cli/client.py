"""The CLI's side of the admin API: ``rotator status``, ``rotate``, ``verify``, ``rollback``.

Every way the daemon can fail to do what was asked becomes a :class:`DaemonError` with a
message for a person and the exit status the contract gives it (2: usage, unreachable,
auth refused; 1: the daemon tried and it did not work).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from rotator.admin import TOKEN_ENV
from rotator.cli.proxy import environment_proxy
from rotator.domain.terms import KEY_NAME, Outcome
from rotator.errors import EXIT_PROBLEM, EXIT_USAGE, RotatorError
from rotator.secretfile import SecretFileError, read_secret_file
from rotator.web.client import client_context, tls_failure

DEFAULT_URL = "http://127.0.0.1:8080"
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")
READ_TIMEOUT_S = 15.0
OPERATION_TIMEOUT_S = 45.0
"""Longer than the daemon's own wait (30 s), after which it answers 202."""


class DaemonError(RotatorError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def read_token(token_file: Path | None) -> str | None:
    """``--token-file`` if given, else ``$ROTATOR_ADMIN_TOKEN``, else none."""
    if token_file is None:
        return os.environ.get(TOKEN_ENV, "").strip() or None
    try:
        return read_secret_file(token_file)
    except SecretFileError as exc:
        if exc.reason is None:
            raise DaemonError(f"--token-file {token_file} is empty", EXIT_USAGE) from None
        message = f"cannot read --token-file {token_file} ({exc.reason})"
        raise DaemonError(message, EXIT_USAGE) from None


def key_segment(name: str) -> str:
    """``name`` as one URL path segment, after checking that it can be a key's name at all.

    Unchecked, ``x/rollback?`` became ``/keys/x/rollback?/verify``: a rollback of ``x``.
    """
    if not KEY_NAME.match(name):
        raise DaemonError(
            f"{name!r} is not a key name (lower-case letters, digits and '-', at most 63)",
            EXIT_USAGE,
        )
    return quote(name, safe="")


class AdminClient:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        ca_cert: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
    ) -> None:
        """For an ``https://`` URL the daemon's certificate is verified with the system's CAs
        or ``ca_cert``; ``client_cert``/``client_key`` answer a daemon that asks for one."""
        if not url.startswith(("http://", "https://")):
            raise DaemonError(f"--url must start with http:// or https://, got {url!r}", EXIT_USAGE)
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        try:
            self.port = parts.port
        except ValueError:  # not a number, or not one from 0 to 65535
            raise DaemonError(f"--url {url!r} has no valid port", EXIT_USAGE) from None
        if not parts.hostname:
            raise DaemonError(f"--url {url!r} names no host", EXIT_USAGE)
        self.host = parts.hostname
        self.base_path = quote(parts.path, safe="/%")
        """A daemon behind a reverse proxy may answer under a path: every request is below it."""
        try:
            self.proxy = environment_proxy(parts.scheme, self.host, self.port)
        except ValueError as exc:
            message = f"{exc}: set NO_PROXY={self.host} to reach the daemon directly"
            raise DaemonError(message, EXIT_USAGE) from None
        if token and not _HEADER_SAFE.fullmatch(token):
            # Said here, without the token: sent as it is, the HTTP library's refusal of the
            # header would quote it.
            raise DaemonError(
                "the admin token holds a character an HTTP header cannot carry "
                "(printable ASCII only)",
                EXIT_USAGE,
            )
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.has_client_cert = client_cert is not None
        self.context: ssl.SSLContext | None = None
        """Only for https://: a plain URL builds no context and loads no CA bundle."""
        if parts.scheme == "https":
            try:
                self.context = client_context(ca_cert, client_cert, client_key)
            except ValueError as exc:
                raise DaemonError(str(exc), EXIT_USAGE) from None

    def keys(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/keys", READ_TIMEOUT_S)[1]

    def inventory(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/inventory", READ_TIMEOUT_S)[1]

    def operate(
        self, name: str, action: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST an operation; (200, outcome) or (202, where to look)."""
        path = f"/api/v1/keys/{key_segment(name)}/{action}"
        return self._call("POST", path, OPERATION_TIMEOUT_S, body)

    def intake(self, name: str, *, ttl: str | None = None, revoke: bool = False) -> dict[str, Any]:
        """A fresh intake link for ``name`` (``{url, expires_at}``), or withdraw its links."""
        path = f"/api/v1/keys/{key_segment(name)}/intake"
        if revoke:
            return self._call("DELETE", path, READ_TIMEOUT_S)[1]
        body = {"ttl": ttl} if ttl is not None else None
        return self._call("POST", path, READ_TIMEOUT_S, body)[1]

    def _call(
        self, method: str, path: str, timeout: float, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        # ``timeout`` bounds each step (connecting, the TLS handshake, every read), not the
        # whole call: a daemon that is working on the answer keeps the connection quiet.
        connection = self._connection(timeout)
        try:
            try:
                connection.connect()  # and, for https://, the TLS handshake
            except TimeoutError:
                raise self._timed_out(timeout) from None
            except ssl.SSLError as exc:
                raise self._failed(exc) from None
            except OSError as exc:  # refused, no route, no such host
                raise self._unreachable(exc) from None
            headers = dict(self.headers)
            if self.proxy is not None and self.proxy.authorization and self.context is None:
                headers["Proxy-Authorization"] = self.proxy.authorization
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            try:
                connection.request(method, self._target(path), payload, headers)
                answer = connection.getresponse()
                content = answer.read()
            except TimeoutError:
                raise self._timed_out(timeout) from None
            except (OSError, http.client.HTTPException) as exc:
                raise self._failed(exc) from None
        finally:
            connection.close()
        return answer.status, self._judge(answer.status, content)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.proxy is None:
            host, port = self.host, self.port
        else:
            host, port = self.proxy.host, self.proxy.port
        if self.context is None:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self.context)
        if self.proxy is not None:  # CONNECT through it; TLS (and its checks) with the daemon
            login = self.proxy.authorization
            tunnel = None if login is None else {"Proxy-Authorization": login}
            connection.set_tunnel(self.host, self.port, tunnel)
        return connection

    def _target(self, path: str) -> str:
        """The request's target: the path, or the whole URL for a plain proxy to forward."""
        if self.proxy is None or self.context is not None:
            return self.base_path + path
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port is None else f"{host}:{self.port}"
        return f"http://{netloc}{self.base_path}{path}"

    def _timed_out(self, timeout: float) -> DaemonError:
        return DaemonError(
            f"the daemon at {self.url} did not answer within {timeout:g}s", EXIT_PROBLEM
        )

    def _failed(self, exc: Exception) -> DaemonError:
        refused = tls_failure(exc, self.url, has_client_cert=self.has_client_cert)
        if refused is not None:
            return DaemonError(refused, EXIT_USAGE)
        return self._unreachable(exc)

    def _unreachable(self, exc: Exception) -> DaemonError:
        return DaemonError(
            f"cannot reach the daemon at {self.url} ({type(exc).__name__}: {exc})", EXIT_USAGE
        )

    def _judge(self, code: int, content: bytes) -> dict[str, Any]:
        try:
            data = json.loads(content)
        except ValueError:  # not JSON, or not text at all (UnicodeDecodeError)
            data = None
        if not isinstance(data, dict):
            raise DaemonError(
                f"unexpected answer from {self.url} (HTTP {code}, not a JSON "
                "object): is this the rotator's admin API?",
                EXIT_USAGE,
            )
        detail = data.get("detail", "")
        if code == 401:
            raise DaemonError(
                f"the daemon wants an admin token: set ${TOKEN_ENV} or pass --token-file",
                EXIT_USAGE,
            )
        if code == 403:
            raise DaemonError("the admin token was refused", EXIT_USAGE)
        if code in (404, 413, 422):
            raise DaemonError(_detail_text(detail), EXIT_USAGE)
        if code >= 400:
            raise DaemonError(f"the daemon could not do it: {_detail_text(detail)}", EXIT_PROBLEM)
        return data


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}" for e in detail
        )
    return str(detail)


# --- what the answers mean for a person and for the exit status ----------------------------

ROTATE_OK = frozenset({Outcome.ROTATED, Outcome.NOOP})
ROLLBACK_OK = frozenset({Outcome.ROLLED_BACK})


def answer_line(name: str, answer: dict[str, Any]) -> str:
    """One line for a rotate or rollback answer."""
    result = answer.get("result")
    active = answer.get("active_version")
    reason = answer.get("reason") or ""
    ends = f" (key ending {answer['fingerprint']})" if answer.get("fingerprint") else ""
    stays = f"; version {active} stays active" if active is not None else ""
    if result == Outcome.ROTATED:
        return f"{name}: rotated to version {active}{ends}"
    if result == Outcome.ROLLED_BACK:
        return f"{name}: rolled back to version {active}{ends}"
    if result == Outcome.NOOP and reason.startswith("re-delivered"):
        return f"{name}: {reason}{ends}"
    if result == Outcome.NOOP:
        return f"{name}: nothing to do: {reason} (active version {active}){ends}"
    if result == Outcome.REJECTED:
        return f"{name}: version {answer.get('version')} rejected: {reason}{stays}"
    if result == Outcome.POSTPONED:
        return f"{name}: postponed: {reason}{stays}; the daemon tries again on its own"
    return f"{name}: {result}: {reason}{stays}"
