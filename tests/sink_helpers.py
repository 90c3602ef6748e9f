"""Values and log capture shared by the sink tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from rotator.domain.model import Delivery

KEY_NAME = "jtel-live-agent"
V1 = Delivery(
    key=KEY_NAME,
    version=1,
    api_key="Zq4Rk7Lm2Np9Tx3Vb8Hc1Jd6Fg5Ws0Aa",
    expires_at=datetime(2027, 1, 31, 12, 0, tzinfo=UTC),
)
V2 = Delivery(key=KEY_NAME, version=2, api_key="Yp3Qj6Kl1Mo8Sw2Ua7Gb0Ic5Ef4Vr9Bb")


@dataclass
class LogView:
    """Events from structlog (as dicts, before any scrubbing) and from stdlib logging."""

    captured: list[dict[str, Any]]
    caplog: pytest.LogCaptureFixture

    def events(self) -> list[dict[str, Any]]:
        from_stdlib = [r.msg for r in self.caplog.records if isinstance(r.msg, dict)]
        return [*self.captured, *from_stdlib]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def mentions(self, secret: str) -> bool:
        return any(secret in repr(e) for e in self.events()) or secret in self.caplog.text


@contextmanager
def capture(caplog: pytest.LogCaptureFixture) -> Iterator[LogView]:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as captured:
        yield LogView(captured, caplog)


def error_texts(exc: BaseException) -> str:
    """Everything an operator could read off an exception and the chain behind it."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(getattr(seen, "args", ()))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


# A stand-in integration: on each SIGHUP it appends the last four characters of its key
# file to a log (argv: key file, log file, pid file), so tests see what every reload read.
HUP_APP = """
import os, signal, sys
key_file, log_file, pid_file = sys.argv[1:4]
def on_hup(signum, frame):
    try:
        with open(key_file) as f:
            tail = f.read().strip()[-4:]
    except OSError:
        tail = "-"
    with open(log_file, "a") as f:
        f.write(tail + "\\n")
signal.signal(signal.SIGHUP, on_hup)
with open(pid_file + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pid_file + ".tmp", pid_file)
while True:
    signal.pause()
"""
