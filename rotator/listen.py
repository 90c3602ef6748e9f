"""Listen addresses (``host:port``, ``[v6]:port``): the one parser."""

from __future__ import annotations


def split_listen(listen: str) -> tuple[str, int]:
    """``("0.0.0.0", 9102)`` for ``"0.0.0.0:9102"``; an IPv6 host loses its brackets.

    Raises ValueError naming the value when it is not HOST:PORT with a port in 0-65535.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)
