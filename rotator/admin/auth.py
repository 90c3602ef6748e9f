"""The admin API's bearer token: where it comes from, when none is acceptable, how it is checked.

The token is read once at start-up (``server.admin_token_file``, else ``$ROTATOR_ADMIN_TOKEN``).
Without one the admin API does not start, unless it listens on loopback and
``server.admin_insecure_loopback: true`` says that anyone on this host may act.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rotator.adapters.credentials import read_credentials_file
from rotator.admin import TOKEN_ENV
from rotator.config.server import ServerSettings
from rotator.errors import ConfigError
from rotator.listen import split_listen
from rotator.logs import REDACTOR, get_logger
from rotator.secretfile import SecretFileError

log = get_logger(__name__)

MIN_TOKEN_LENGTH = 16


def is_loopback(listen: str) -> bool:
    host, _ = split_listen(listen)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_token(server: ServerSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The admin token, or None when running without one is allowed; ConfigError otherwise."""
    env = os.environ if env is None else env
    if server.admin_token_file is not None:
        token = _read_token_file(server.admin_token_file)
    else:
        token = env.get(TOKEN_ENV, "").strip()
    if token:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                [f"admin token: too short ({len(token)} characters, at least {MIN_TOKEN_LENGTH})"]
            )
        REDACTOR.add(token)
        return token
    if server.admin_insecure_loopback and is_loopback(server.admin_listen):
        log.warning("admin.no_auth", address=server.admin_listen, reason="admin_insecure_loopback")
        return None
    if server.admin_insecure_loopback:
        raise ConfigError(
            [
                "server.admin_insecure_loopback: only allowed when admin_listen is a loopback "
                f"address, not {server.admin_listen}; give an admin token"
            ]
        )
    raise ConfigError(
        [
            "server.admin_token_file: no admin token: set admin_token_file or "
            f"${TOKEN_ENV} (or, on loopback only, admin_insecure_loopback: true)"
        ]
    )


def _read_token_file(path: Path) -> str:
    try:
        return read_credentials_file(
            path, what="admin token", exposed_event="admin.token_file_readable"
        )
    except SecretFileError as exc:
        if exc.reason is None:
            raise ConfigError([f"server.admin_token_file: {path} is empty"]) from None
        problem = f"server.admin_token_file: cannot read {path} ({exc.reason})"
        raise ConfigError([problem]) from None


_bearer = HTTPBearer(auto_error=False, description="The admin token (`server.admin_token_file`).")


def require_token(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> None:
    """401 without a bearer token, 403 with a wrong one; nothing when auth is off."""
    expected: str | None = request.app.state.admin.token
    if expected is None:
        return
    caller = request.client.host if request.client else "-"
    if credentials is None:
        log.warning("admin.auth_missing", caller=caller, path=request.url.path)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing Authorization: Bearer <admin token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode()
    if not hmac.compare_digest(given, expected.encode()):
        log.warning("admin.auth_refused", caller=caller, path=request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the admin token was refused")
