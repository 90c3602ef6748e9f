"""The proxy the environment names for the daemon's admin API (``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY``, and ``NO_PROXY`` for the hosts to reach directly).

The admin client honoured them when it was httpx; it keeps doing so on ``http.client``, read
as the standard library reads them (``urllib.request.getproxies_environment`` and
``proxy_bypass``: the lower-case variable first, ``NO_PROXY`` as names, a domain
covering the names under it, ``host:port`` or ``*``).
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
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    # The standard library's reading of the variables (urllib.request, about 15 ms of
    # imports), only when one is set: most runs have none.
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    where = host if ":" not in host else f"[{host}]"
    # On Linux proxy_bypass is the environment's NO_PROXY (proxy_bypass_environment).
    if not proxy or urllib.request.proxy_bypass(where if port is None else f"{where}:{port}"):
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
