"""The CLI's side of the admin API: ``rotator status``, ``rotate``, ``verify``, ``rollback``.

Every way the daemon can fail to do what was asked becomes a :class:`DaemonError` with a
message for a person and the exit status the contract gives it (2: usage, unreachable,
auth refused; 1: the daemon tried and it did not work).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from rotator.admin import TOKEN_ENV
from rotator.domain.model import KEY_NAME, Outcome
from rotator.errors import EXIT_PROBLEM, EXIT_USAGE, RotatorError
from rotator.secretfile import SecretFileError, read_secret_file
from rotator.web.client import client_context, tls_failure

DEFAULT_URL = "http://127.0.0.1:8080"
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
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.has_client_cert = client_cert is not None
        # A plain http:// URL speaks no TLS, but httpx builds its default context anyway and
        # loads the CA bundle into it: 50 to 90 ms of every client command. A context with
        # no CA at all costs nothing and, were it ever used, would trust no certificate.
        self.verify: ssl.SSLContext = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if url.startswith("https://"):
            try:
                self.verify = client_context(ca_cert, client_cert, client_key)
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
        path = f"/api/v1/keys/{name}/intake"
        if revoke:
            return self._call("DELETE", path, READ_TIMEOUT_S)[1]
        body = {"ttl": ttl} if ttl is not None else None
        return self._call("POST", path, READ_TIMEOUT_S, body)[1]

    def _call(
        self, method: str, path: str, timeout: float, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        try:
            answer = httpx.request(
                method,
                self.url + path,
                json=body,
                headers=self.headers,
                timeout=timeout,
                verify=self.verify,
            )
        except httpx.TimeoutException:
            raise DaemonError(
                f"the daemon at {self.url} did not answer within {timeout:g}s", EXIT_PROBLEM
            ) from None
        except httpx.HTTPError as exc:
            refused = tls_failure(exc, self.url, has_client_cert=self.has_client_cert)
            if refused is not None:
                raise DaemonError(refused, EXIT_USAGE) from None
            raise DaemonError(
                f"cannot reach the daemon at {self.url} ({type(exc).__name__}: {exc})", EXIT_USAGE
            ) from None
        return answer.status_code, self._judge(answer)

    def _judge(self, answer: httpx.Response) -> dict[str, Any]:
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise DaemonError(
                f"unexpected answer from {self.url} (HTTP {answer.status_code}, not a JSON "
                "object): is this the rotator's admin API?",
                EXIT_USAGE,
            )
        code = answer.status_code
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
