"""The client side of the listeners' TLS, for the admin-API clients (``rotator status`` ...).

``client_context`` builds what the client verifies the daemon with (through the one
builder, ``rotator.adapters.tls``): the system's CAs, or ``--ca-cert``; a client certificate
when ``--client-cert``/``--client-key`` are given; it words a refused file as the option's.
``tls_failure`` turns the exception of a refused connection into a sentence that says which
side refused what: the daemon's certificate (unknown CA, wrong name, expired), this client's
certificate, or TLS spoken to a plain listener and the other way round.

Standard library only (``http.client``, ``ssl``): ``rotator status`` starts without httpx.
"""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

from rotator.adapters import tls

CA_ENV = "ROTATOR_CA_CERT"
CERT_ENV = "ROTATOR_CLIENT_CERT"
KEY_ENV = "ROTATOR_CLIENT_KEY"

_UNKNOWN_CA = {18, 19, 20, 21}
"""OpenSSL's X509_V_ERR_*: self-signed, self-signed in chain, unknown issuer (local or leaf)."""
_NAME_MISMATCH = {62, 64}
"""Host name, IP address."""
_EXPIRED = 10
_CLIENT_CERT_REFUSED = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "ACCESS_DENIED",
    "UNSUPPORTED_CERTIFICATE",
)
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


def client_context(
    ca_cert: Path | None, client_cert: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    """``ValueError`` naming the option whose file cannot be used."""
    if client_key is not None and client_cert is None:
        raise ValueError(f"--client-key needs --client-cert (or ${CERT_ENV})")
    try:
        return tls.client_context(ca_cert, client_cert, client_key)
    except tls.TlsFileError as exc:
        if not exc.client_cert:
            raise ValueError(f"--ca-cert {ca_cert}: {exc.reason}") from None
        raise ValueError(
            f"--client-cert {client_cert} / --client-key {client_key}: {exc.reason} "
            "(PEM files; the key may be inside --client-cert or in --client-key)"
        ) from None


def tls_failure(exc: BaseException, url: str, *, has_client_cert: bool) -> str | None:
    """What went wrong in TLS terms, or None when it was not about TLS.

    ``exc`` is what connecting (TLS handshake included) or the exchange after it raised: an
    ``ssl.SSLError`` (or one in its chain), or, for the exchange only, the connection ending
    without an answer (:func:`closed_without_answer`).
    """
    cause = _ssl_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = cause.verify_code
        if code in _UNKNOWN_CA:
            return (
                f"the daemon's certificate at {url} is not signed by a CA this client trusts "
                f"({cause.verify_message}): pass --ca-cert (or ${CA_ENV}) with the CA that "
                "signed it"
            )
        if code in _NAME_MISMATCH:
            return (
                f"the daemon's certificate is not for the host in {url} "
                f"({cause.verify_message}): use a --url with a name the certificate holds"
            )
        if code == _EXPIRED:
            return f"the daemon's certificate at {url} has expired: renew it"
        return f"the daemon's certificate at {url} was refused ({cause.verify_message})"
    if isinstance(cause, ssl.SSLError):
        reason = str(cause.reason or "")
        if any(r in reason for r in _CLIENT_CERT_REFUSED):
            if not has_client_cert:
                return (
                    f"the daemon at {url} wants a client certificate: pass --client-cert and "
                    f"--client-key (or ${CERT_ENV}, ${KEY_ENV})"
                )
            return (
                f"the daemon at {url} refused this client's certificate ({reason}): it must be "
                "signed by the CA in the daemon's client_ca_file"
            )
        if any(r in reason for r in _NOT_TLS):
            return f"the daemon at {url} does not speak TLS: use http://"
        return f"TLS with the daemon at {url} failed ({reason or cause})"
    if closed_without_answer(exc):
        # A TLS server that refuses a client certificate closes the connection after the
        # handshake, without an answer (asyncio sends no alert); a TLS listener does the same
        # to plain HTTP.
        if url.startswith("http://"):
            return (
                f"the daemon at {url} closed the connection without an answer: if it serves "
                "TLS (server.web_config_file), use https://"
            )
        if not has_client_cert:
            return (
                f"the daemon at {url} closed the connection without an answer: it probably "
                f"wants a client certificate: pass --client-cert and --client-key "
                f"(or ${CERT_ENV}, ${KEY_ENV})"
            )
        return (
            f"the daemon at {url} closed the connection without an answer: it probably "
            "refused this client's certificate (it must be signed by the CA in the daemon's "
            "client_ca_file, and hold a name in client_allowed_sans if that is set)"
        )
    return None


def closed_without_answer(exc: BaseException) -> bool:
    """True when the daemon ended the connection instead of answering the request sent on it
    (closed, reset, or bytes that are no HTTP answer): a TLS listener does that to plain HTTP,
    and a daemon that refuses the client's certificate after the TLS 1.3 handshake. Only for
    errors of the exchange: a refused connect is not this."""
    if isinstance(exc, http.client.InvalidURL):  # about the request, not the answer
        return False
    return isinstance(exc, http.client.HTTPException | ConnectionResetError | BrokenPipeError)


def _ssl_cause(exc: BaseException) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
