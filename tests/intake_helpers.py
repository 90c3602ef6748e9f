"""Shared by the intake tests: a daemon with the intake listener, and one real browser.

The browser is Debian's Chromium (``/usr/bin/chromium``, installed by ``make system-deps``)
driven by Playwright; Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import hvac
import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, configured_daemon
from tests.fixtures.openbao import OpenBaoServer, write_private

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "img"
UPDATE_SCREENSHOTS = os.environ.get("ROTATOR_UPDATE_SCREENSHOTS") == "1"
"""``ROTATOR_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/integration/test_intake_browser.py``
rewrites the operator guide's screenshots in docs/img/; otherwise they go to a temporary
folder, so an ordinary run leaves the work tree clean."""


def iso_date(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module; each test opens its own context."""
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `make system-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if UPDATE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path / "img"


def intake_daemon(
    workdir: Path,
    openbao: OpenBaoServer,
    standin: MistralStandIn,
    kit: KeyKit,
    name: str,
    *,
    owner: dict[str, str] | None = None,
    intake: dict[str, Any] | None = None,
    **sections: Any,
) -> DaemonProcess:
    daemon = configured_daemon(workdir, openbao, standin, kit, [name], **sections)
    daemon.config["intake"] = {"listen": "127.0.0.1:0", **(intake or {})}
    if owner is not None:
        daemon.config["keys"][0]["owner"] = owner
    return daemon


def free_listen() -> str:
    """A free loopback address for ``intake.listen``: fixed, so that links made before a
    restart still lead to the page after it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def restart(daemon: DaemonProcess, name: str, env: dict[str, str] | None = None) -> str:
    """SIGTERM (a clean exit), then start again with ``env`` and wait until ``name`` is
    checked; the finished run's output."""
    assert daemon.stop() == 0
    output = daemon.output()
    # A fresh log, so that start() waits for the new process's addresses.
    daemon.log_path.unlink()
    daemon.env = env or {}
    daemon.start()
    daemon.wait_checked([name])
    return output


def intake_url(daemon: DaemonProcess) -> str:
    event = daemon.wait_until(lambda: daemon.events("intake.listening"), 20, "intake.listening")
    return str(event[-1]["public_url"])


def vault_versions(openbao: OpenBaoServer, path: str) -> int:
    client: hvac.Client = openbao.client()
    meta = client.secrets.kv.v2.read_secret_metadata(path=path)
    return int(meta["data"]["current_version"])


def new_value() -> str:
    return secrets.token_hex(16)


def save(page: Any, shots: Path, name: str, *, full: bool = False) -> None:
    """A PNG of what a phone shows (the whole page with ``full``): the message is on top."""
    shots.mkdir(parents=True, exist_ok=True)
    clip = None if full else {"x": 0, "y": 0, "width": 360, "height": 420}
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=full, clip=clip)
    optipng = shutil.which("optipng")
    if UPDATE_SCREENSHOTS and optipng:
        # Lossless, a third smaller: the PNGs are committed.
        subprocess.run([optipng, "-quiet", "-o2", "-strip", "all", str(path)], check=True)


# --- a real SMTP server: aiosmtpd with STARTTLS and AUTH ----------------------------------


class MailServer:
    """aiosmtpd on a free loopback port, in a thread: STARTTLS required before AUTH, AUTH
    required before mail. ``messages`` holds every message delivered, parsed. ``cert_days``:
    how long its certificate is valid (a daemon with a clock moved ahead must still trust it)."""

    def __init__(self, workdir: Path, cert_days: int = 2) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        from tests.faults.certs import self_signed, server_context

        self.user = "rotator"
        self.password = "pw-" + secrets.token_hex(8)
        self.accept_login = True
        self.cert, key = self_signed(workdir, "smtp", cert_days)
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        server = self

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                parsed = BytesParser(policy=default).parsebytes(envelope.original_content)
                server.messages.append(parsed)  # type: ignore[arg-type]
                return "250 OK"

        def authenticator(_s: Any, _session: Any, _e: Any, _m: str, data: Any) -> Any:
            ok = (
                server.accept_login
                and isinstance(data, LoginPassword)
                and data.login.decode() == server.user
                and data.password.decode() == server.password
            )
            server.logins.append("ok" if ok else "refused")
            # handled=False: aiosmtpd answers 235 or 535 itself.
            return AuthResult(success=ok, handled=False)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=server_context(self.cert, key),
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=authenticator,
        )
        self._controller.start()

    def settings(self, workdir: Path) -> dict[str, Any]:
        """The ``intake.notify.smtp`` section for this server (credentials in 0600 files)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "starttls": True,
            "from": "keys@platform.example",
            "username_file": str(write_private(workdir / "smtp-user", self.user)),
            "password_file": str(write_private(workdir / "smtp-password", self.password)),
            "ca_cert": str(self.cert),
        }

    def stop(self) -> None:
        self._controller.stop()


@pytest.fixture
def mail_server(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path)
    yield server
    server.stop()


def link_in(message: EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    found = re.search(r"https?://\S+/intake/\S+", text.get_content())
    assert found, "no link in the message"
    return found.group(0)
