"""Server-side TLS from ``tls_server_config``, and a context that can be swapped while serving.

asyncio asks the context it was given for each new connection (``wrap_bio``), so a
:class:`SwitchingContext` handed to ``create_server`` once serves every later handshake with
whatever context is current: a renewed certificate is used from the next connection on,
connections already open keep theirs.
"""

from __future__ import annotations

import ipaddress
import ssl
import warnings
from typing import Any

from rotator.web.config import GO_CIPHER_SUITES, TlsServerConfig

VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


def server_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """A server context, or ``ValueError`` naming the field whose file is unusable."""
    for name in ("cert_file", "key_file", "client_ca_file"):
        path = getattr(tls, name)
        try:
            if path is not None:
                path.read_bytes()
        except OSError as exc:
            raise ValueError(f"tls_server_config.{name}: cannot read ({_reason(exc)})") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except OSError as exc:
        raise ValueError(
            "tls_server_config.cert_file/key_file: cannot use them "
            f"({_reason(exc)}): is key_file the key of cert_file, both PEM?"
        ) from None
    context.verify_mode = VERIFY_MODES[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"tls_server_config.client_ca_file: {_reason(exc)}") from None
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in Python too; asked for explicitly, they are allowed.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = VERSIONS[tls.min_version]
        context.maximum_version = VERSIONS[tls.max_version]
    suites = [GO_CIPHER_SUITES[n] for n in tls.cipher_suites if n in GO_CIPHER_SUITES]
    if suites:
        try:
            context.set_ciphers(":".join(suites))
        except ssl.SSLError:
            raise ValueError(
                "tls_server_config.cipher_suites: OpenSSL here offers none of them"
            ) from None
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


class SwitchingContext(ssl.SSLContext):
    """Hands every new connection to ``current``; assign ``current`` to switch."""

    current: ssl.SSLContext

    def __new__(cls, current: ssl.SSLContext) -> SwitchingContext:
        self = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        self.current = current
        return self

    def __init__(self, current: ssl.SSLContext) -> None:
        pass  # SSLContext is set up in __new__

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        return self.current.wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self.current.wrap_socket(*args, **kwargs)


def peer_allowed(peercert: Any, allowed: tuple[str, ...]) -> bool:
    """``client_allowed_sans``: one of the client certificate's SANs is in ``allowed``."""
    if not allowed:
        return True
    if not isinstance(peercert, dict):
        return False
    wanted = {_canonical(a) for a in allowed}
    sans = peercert.get("subjectAltName", ())
    return any(_canonical(value) in wanted for _kind, value in sans)


def _canonical(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value.strip()
