"""Logging in to Vault (token, AppRole, Kubernetes) and keeping the token alive.

Everything here is synchronous and runs in a worker thread, under one lock, so that a burst
of calls finding the token expired logs in once, not once per call.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
from hvac import exceptions as hvac_exc

from rotator.adapters.credentials import read_credentials_file
from rotator.adapters.metrics.registry import Metrics
from rotator.config.vault import AppRoleAuth, KubernetesAuth, TokenAuth, VaultAuth
from rotator.errors import VaultError, VaultPermissionDenied
from rotator.logs import REDACTOR, get_logger
from rotator.secretfile import SecretFileError

log = get_logger(__name__)

RENEW_WHEN_LEFT = 1 / 3
"""Renew once less than this share of the token's TTL is left."""


class CredentialsError(VaultError):
    """A credentials file (token, role id, secret id, JWT) is missing, empty or unreadable."""


def read_credential(path: Path, what: str) -> str:
    """The stripped content of a credentials file; warns once if it is too open."""
    try:
        return read_credentials_file(
            path, what=what, exposed_event="vault.credentials_file_readable"
        )
    except SecretFileError as exc:
        if exc.reason is None:
            raise CredentialsError(f"{what} {path} is empty") from None
        raise CredentialsError(f"cannot read {what} {path}: {exc.reason}") from None


@dataclass(frozen=True)
class _TokenLease:
    ttl: int
    """What the token was issued with (seconds); 0 for a token that never expires."""
    renewable: bool
    expires_at: float
    """``time.monotonic()`` at expiry."""

    def left(self) -> float:
        return self.expires_at - time.monotonic()


class _Flight:
    """A login or a renewal under way; threads that need one meanwhile wait for its end."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class Authenticator:
    """Owns the client's token: logs in, renews before expiry, logs in again when needed.

    Vault calls run in many threads. The lock guards only decisions and bookkeeping, never a
    network call: one thread logs in (or renews) and the others that need it wait for that
    one to end, instead of queueing on a lock held across a request that may hang.
    """

    def __init__(self, client: hvac.Client, auth: VaultAuth, metrics: Metrics) -> None:
        self._client = client
        self._auth = auth
        self._metrics = metrics
        self._lock = threading.Lock()
        self._lease: _TokenLease | None = None
        self._generation = 0
        self._flight: _Flight | None = None

    @property
    def method(self) -> str:
        return self._auth.method

    def ensure(self) -> int:
        """Log in unless a live token is held; returns the login generation for ``relogin``."""

        def needed() -> bool:
            lease = self._lease
            return lease is None or bool(lease.ttl and lease.left() <= 0)

        return self._once(needed, self._login)

    def relogin(self, seen_generation: int) -> None:
        """Log in again after a refusal, unless another thread did since ``seen_generation``."""
        self._once(lambda: self._generation == seen_generation, self._login)

    def token_alive(self) -> bool:
        """Whether Vault still knows the token held (``lookup-self``, granted by the policy)."""
        try:
            self._client.auth.token.lookup_self()
        except hvac_exc.Forbidden:
            return False
        return True

    def maintain(self) -> None:
        """Renew the token when less than a third of its TTL is left; log in again at max TTL."""
        self._once(lambda: self._upkeep() is not None, self._do_upkeep)

    def _upkeep(self) -> str | None:
        """What the token needs now: "login", "renew" or nothing."""
        lease = self._lease
        if lease is None:
            return "login"
        if lease.ttl and lease.left() < lease.ttl * RENEW_WHEN_LEFT:
            if lease.renewable and lease.left() > 0:
                return "renew"
            if not isinstance(self._auth, TokenAuth) or lease.left() <= 0:
                # A given token cannot be re-obtained; once it runs out its file is read
                # again, where an agent may have put a new one.
                return "login"
        return None

    def _do_upkeep(self) -> None:
        with self._lock:
            action, lease = self._upkeep(), self._lease
        if action == "renew" and lease is not None:
            self._renew(lease)
        elif action == "login":
            self._login()

    def _once(self, needed: Callable[[], bool], work: Callable[[], None]) -> int:
        """Run ``work`` if ``needed()``, in one thread at a time, without holding the lock
        over it; a thread that finds it under way waits for its end and looks again."""
        while True:
            with self._lock:
                if not needed():
                    return self._generation
                flight = self._flight
                if flight is None:
                    flight = self._flight = _Flight()
                    break
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
        try:
            work()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()
        with self._lock:
            return self._generation

    def _renew(self, lease: _TokenLease) -> None:
        try:
            answer = self._client.auth.token.renew_self(increment=lease.ttl)
        except hvac_exc.Forbidden:
            log.info("vault.renew_refused", method=self.method)
            self._login()
            return
        granted = int(answer["auth"]["lease_duration"])
        capped = granted < lease.ttl
        # Capped by its max TTL, renewing again buys nothing: a given token then just runs
        # out (and its file is read again); a token we log in for is replaced right away.
        renewed = _TokenLease(lease.ttl, not capped, time.monotonic() + granted)
        with self._lock:
            self._set_lease(renewed, granted)
        log.info("vault.auth_renewed", ttl=granted, max_ttl_reached=capped)
        if capped and not isinstance(self._auth, TokenAuth):
            self._login()

    def _login(self) -> None:
        login_path = _login_path(self._auth)
        try:
            lease = self._do_login()
        except (hvac_exc.Forbidden, hvac_exc.InvalidRequest, hvac_exc.Unauthorized) as exc:
            with self._lock:
                self._lease = None
            words = REDACTOR.scrub(", ".join(str(e) for e in exc.errors or ()))[:200]
            raise VaultPermissionDenied(login_path, words) from None
        with self._lock:
            self._generation += 1
            self._set_lease(lease, lease.ttl)
        # The token Vault handed out: scrubbed from logs like any credential.
        REDACTOR.add(str(self._client.token or ""))
        log.info("vault.login", method=self.method, ttl=lease.ttl, renewable=lease.renewable)

    def _do_login(self) -> _TokenLease:
        auth = self._auth
        if isinstance(auth, TokenAuth):
            self._client.token = _token(auth)
            data = _vault_answer(self._client.auth.token.lookup_self(), "data")
            ttl = int(data.get("creation_ttl") or data.get("ttl") or 0)
            left = int(data.get("ttl") or 0)
            return _TokenLease(ttl, bool(data.get("renewable")), time.monotonic() + left)
        if isinstance(auth, AppRoleAuth):
            # Read at every login: a rotated secret-id file is picked up without a restart.
            answer = self._client.auth.approle.login(
                role_id=read_credential(auth.role_id_file, "AppRole role id"),
                secret_id=read_credential(auth.secret_id_file, "AppRole secret id"),
                mount_point=auth.mount_path,
            )
        else:
            answer = self._client.auth.kubernetes.login(
                role=auth.role,
                jwt=read_credential(auth.jwt_file, "Kubernetes service-account token"),
                mount_point=auth.mount_path,
            )
        return _lease_of(_vault_answer(answer, "auth", whole=True))

    def _set_lease(self, lease: _TokenLease, seconds_left: int) -> None:
        self._lease = lease
        expiry = time.time() + seconds_left if lease.ttl else 0
        self._metrics.vault_token_expiry.set(expiry)


def _vault_answer(answer: object, part: str, *, whole: bool = False) -> dict[str, Any]:
    """``answer[part]`` (or ``answer`` itself) when it is Vault's JSON; hvac hands back a raw
    response for a 200 that is not JSON (a proxy's page): that is an unexpected answer, not a
    TypeError deep in the login."""
    if not isinstance(answer, dict) or not isinstance(answer.get(part), dict):
        raise hvac_exc.UnexpectedError(f"not a Vault answer (no {part})")
    found: dict[str, Any] = answer if whole else answer[part]
    return found


def _lease_of(answer: dict[str, Any]) -> _TokenLease:
    auth = answer["auth"]
    ttl = int(auth["lease_duration"])
    return _TokenLease(ttl, bool(auth["renewable"]), time.monotonic() + ttl)


def _token(auth: TokenAuth) -> str:
    if auth.token_file is not None:
        return read_credential(auth.token_file, "Vault token file")
    token = os.environ.get("VAULT_TOKEN", "").strip()
    if not token:
        raise CredentialsError("no Vault token: set vault.auth.token_file or $VAULT_TOKEN")
    REDACTOR.add(token)
    return token


def _login_path(auth: VaultAuth) -> str:
    if isinstance(auth, AppRoleAuth | KubernetesAuth):
        return f"auth/{auth.mount_path}/login"
    return "auth/token/lookup-self"
