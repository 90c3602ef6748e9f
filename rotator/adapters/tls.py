"""The one builder of client TLS contexts: the daemon's clients (Mistral, its Admin API, http
sinks and reloads, the reminder webhook and SMTP) and the CLI's admin client.

Standard library only (and ``rotator.errors``): the CLI imports it without the server stack.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from rotator.errors import ConfigError


class TlsFileError(ValueError):
    """A CA file or a client certificate (and its key) that TLS cannot use."""

    def __init__(self, path: Path, reason: str, *, client_cert: bool = False) -> None:
        self.path = path
        self.reason = reason
        self.client_cert = client_cert
        """True when it is the client certificate or key, False when it is the CA file."""
        super().__init__(f"{path}: {reason}")


def client_context(
    ca_cert: Path | None, client_cert: Path | None = None, client_key: Path | None = None
) -> ssl.SSLContext:
    """A context that verifies the server, against ``ca_cert`` when given, else the system's
    CAs; it presents ``client_cert`` (with ``client_key``, or the key inside it) when given.

    Raises TlsFileError naming the file that cannot be used.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(ca_cert or Path(), reason(exc)) from None
    if client_cert is not None:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFileError(client_cert, reason(exc), client_cert=True) from None
    return context


def client_tls(ca_cert: Path | None, *, where: str) -> ssl.SSLContext | bool:
    """What a daemon's httpx client verifies with: ``True`` (httpx's own CA bundle, built by
    the client when it first connects) without ``ca_cert``, else a context trusting it.

    Raises ConfigError naming ``where`` (the setting or sink) when the file is unusable.
    """
    if ca_cert is None:
        return True
    try:
        return client_context(ca_cert)
    except TlsFileError as exc:
        raise ConfigError([f"{where}: ca_cert {ca_cert} is unusable ({exc.reason})"]) from None


def reason(exc: BaseException) -> str:
    """Why TLS refused a file, in a few words: OpenSSL's reason, or the system's."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
