"""The one way the daemon builds a client TLS context (Mistral, http sinks, http reloads)."""

from __future__ import annotations

import ssl
from pathlib import Path

from rotator.errors import ConfigError


def client_tls(ca_cert: Path | None, *, where: str) -> ssl.SSLContext | bool:
    """Verify TLS always: against ``ca_cert`` when given, else the system's CAs (``True``).

    Raises ConfigError naming ``where`` (the setting or sink) when the file is unusable.
    """
    if ca_cert is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([f"{where}: ca_cert {ca_cert} is unusable ({reason})"]) from None
