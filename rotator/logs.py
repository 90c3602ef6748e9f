"""Structured logs: JSON lines off a terminal, and a last step that scrubs secrets.

Every key value the daemon reads is registered with :data:`REDACTOR`; the scrubber
replaces it (and any ``Bearer ...``) in the final rendered line, whatever the path
that put it there, including third-party libraries logging through ``logging``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from typing import Any, Literal, TextIO

import structlog

_BEARER = re.compile(r"(Bearer\s+)[^\s\"',}]+", re.IGNORECASE)
_MIN_SECRET = 8
_DIRECT_MAX = 32
"""Up to this many secrets, each is looked for in turn (faster than a scan for few)."""


class Redactor:
    """Knows every secret value in play and takes them out of text.

    A daemon of 10,000 tenants knows 10,000 keys: trying each one on every log line cost
    about 2 ms a line. Beyond a few dozen secrets, lines are scanned once instead, looking
    each window of ``_MIN_SECRET`` characters up in an index of the secrets' beginnings.
    """

    def __init__(self) -> None:
        self._secrets: frozenset[str] | set[str] = frozenset()
        """Replaced whole while :meth:`scrub` iterates it (a few); past ``_DIRECT_MAX`` it is
        only asked for membership and grows in place: copying it for each new secret made
        registering 10,000 keys quadratic."""
        self._by_head: dict[str, tuple[str, ...]] = {}
        """First ``_MIN_SECRET`` characters -> the secrets that start so, longest first."""
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        # A value with a line break or a quote is quoted escaped by reprs and JSON (an error
        # text such as "Illegal header value b'...\\n...'"): those spellings are secrets too.
        for spelling in {
            secret.encode("unicode_escape").decode("ascii"),
            json.dumps(secret)[1:-1],
            repr(secret.encode("utf-8", "replace"))[2:-1],
        } - {secret}:
            self._add(spelling)
        self._add(secret)

    def _add(self, secret: str) -> None:
        # Very short values would blank out ordinary words; such a "key" is refused anyway.
        if len(secret) >= _MIN_SECRET and secret not in self._secrets:
            with self._lock:
                head = secret[:_MIN_SECRET]
                same = (*self._by_head.get(head, ()), secret)
                # Readers only look values up: replacing one tuple is safe without the lock.
                self._by_head[head] = tuple(sorted(same, key=len, reverse=True))
                if len(self._secrets) < _DIRECT_MAX:
                    self._secrets = self._secrets | {secret}
                elif isinstance(self._secrets, frozenset):
                    self._secrets = {*self._secrets, secret}
                else:
                    self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        secrets = self._secrets
        if len(secrets) <= _DIRECT_MAX:
            for secret in secrets:
                if secret in text:
                    text = text.replace(secret, "[REDACTED]")
        elif len(text) >= _MIN_SECRET:
            text = self._scrub_indexed(text)
        return _BEARER.sub(r"\1[REDACTED]", text)

    def _scrub_indexed(self, text: str) -> str:
        index, parts, start, i = self._by_head, [], 0, 0
        last = len(text) - _MIN_SECRET
        while i <= last:
            candidates = index.get(text[i : i + _MIN_SECRET])
            found = candidates and next((s for s in candidates if text.startswith(s, i)), None)
            if not found:
                i += 1
                continue
            parts += [text[start:i], "[REDACTED]"]
            i = start = i + len(found)
        return "".join(parts) + text[start:] if parts else text


REDACTOR = Redactor()


def _scrub_rendered(_: Any, __: str, rendered: Any) -> Any:
    if isinstance(rendered, bytes):
        rendered = rendered.decode("utf-8", "replace")
    return REDACTOR.scrub(rendered)


def configure(
    fmt: Literal["json", "console"] | None = None, level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Set up structlog and route stdlib logging through the same renderer and scrubber.

    The daemon logs to stdout (containers); one-shot commands pass stderr so that their
    output (``--json``) stays clean.
    """
    stream = stream or sys.stdout
    if fmt is None:
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
            _scrub_rendered,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries chatter at INFO about every request; their warnings still come through.
    for noisy in ("httpx", "httpcore", "apscheduler", "uvicorn.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
