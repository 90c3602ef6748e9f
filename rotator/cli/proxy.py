"""The proxy the environment names for the daemon's admin API (``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY``, and ``NO_PROXY`` for the hosts to reach directly).

The admin client honoured them when it was httpx; it keeps doing so on ``http.client``, with
the same reading: the lower-case variable first, ``NO_PROXY`` as names (a domain covers the
names under it), ``host:port`` or ``*``.
"""

from __future__ import annotations

import os
from typing import NamedTuple
from urllib.parse import unquote, urlsplit


class Proxy(NamedTuple):
    host: str
    port: int
    authorization: str | None
    """``Proxy-Authorization`` for a proxy URL with a user (and password), else None."""


def environment_proxy(scheme: str, host: str, port: int | None) -> Proxy | None:
    """The environment's proxy for ``scheme://host:port``, or None to connect directly.

    Raises ValueError when it is no ``http://`` proxy URL (the message leaves the URL out:
    it may hold a password).
    """
    proxy = _variable(f"{scheme}_proxy") or _variable("all_proxy")
    if not proxy or _bypassed(host, port):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        proxy_port = parts.port or 80
    except ValueError:
        proxy_port = 0
    if parts.scheme != "http" or not parts.hostname or not proxy_port:
        raise ValueError(f"the proxy for {scheme}:// in the environment is no http:// URL")
    authorization = None
    if parts.username is not None:
        import base64

        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(user.encode()).decode()
    return Proxy(parts.hostname, proxy_port, authorization)


def _variable(name: str) -> str:
    return (os.environ.get(name) or os.environ.get(name.upper()) or "").strip()


def _bypassed(host: str, port: int | None) -> bool:
    host = host.lower()
    for entry in _variable("no_proxy").split(","):
        name = entry.strip().lower().lstrip(".")
        if name == "*":
            return True
        if name.startswith("[") and "]" in name:  # [::1] or [::1]:8080
            address, _, rest = name[1:].partition("]")
            name = address + rest
        if name and (host == name or host.endswith("." + name) or f"{host}:{port}" == name):
            return True
    return False
