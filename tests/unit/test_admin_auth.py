"""Where the admin token comes from, and when the admin API may run without one."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator import logs
from rotator.admin.auth import is_loopback, load_token
from rotator.config.server import ServerSettings
from rotator.errors import ConfigError

TOKEN = "t0ken-for-the-admin-api-0123456789"


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    """The structlog event names logged while the test runs."""
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.msg
            if isinstance(message, dict):
                seen.append(str(message.get("event")))

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure("json", "INFO")
    root.addHandler(Catch())
    yield seen
    root.handlers[:], level = saved
    root.setLevel(level)


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:8080", True),
        ("127.0.0.2:8080", True),
        ("localhost:8080", True),
        ("[::1]:8080", True),
        ("0.0.0.0:8080", False),
        ("10.1.2.3:8080", False),
        ("[::]:8080", False),
        ("admin.internal:8080", False),
    ],
)
def test_loopback_addresses(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


def test_token_file_wins_and_is_stripped(tmp_path: Path) -> None:
    path = private(tmp_path / "token", TOKEN)
    server = ServerSettings(admin_token_file=path)
    env = {"ROTATOR_ADMIN_TOKEN": "another-token-from-the-environment"}
    assert load_token(server, env) == TOKEN


def test_token_from_environment() -> None:
    assert load_token(ServerSettings(), {"ROTATOR_ADMIN_TOKEN": f"  {TOKEN}\n"}) == TOKEN


def test_no_token_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError) as err:
        load_token(ServerSettings(), {})
    assert "admin_token_file" in str(err.value)
    assert "ROTATOR_ADMIN_TOKEN" in str(err.value)


def test_insecure_loopback_runs_without_token(warnings_logged: list[str]) -> None:
    server = ServerSettings(admin_listen="127.0.0.1:8080", admin_insecure_loopback=True)
    assert load_token(server, {}) is None
    assert "admin.no_auth" in warnings_logged


def test_insecure_flag_ignored_off_loopback() -> None:
    server = ServerSettings(admin_listen="0.0.0.0:8080", admin_insecure_loopback=True)
    with pytest.raises(ConfigError, match="loopback"):
        load_token(server, {})


def test_insecure_loopback_still_uses_a_token_when_given() -> None:
    server = ServerSettings(admin_insecure_loopback=True)
    assert load_token(server, {"ROTATOR_ADMIN_TOKEN": TOKEN}) == TOKEN


def test_unreadable_empty_or_short_token_file(tmp_path: Path) -> None:
    missing = ServerSettings(admin_token_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"cannot read .*nope"):
        load_token(missing, {})
    empty = ServerSettings(admin_token_file=private(tmp_path / "empty", ""))
    with pytest.raises(ConfigError, match="is empty"):
        load_token(empty, {})
    short = ServerSettings(admin_token_file=private(tmp_path / "short", "abc"))
    with pytest.raises(ConfigError, match="too short"):
        load_token(short, {})


def test_token_file_readable_by_others_warns(tmp_path: Path, warnings_logged: list[str]) -> None:
    path = private(tmp_path / "token", TOKEN, mode=0o644)
    assert load_token(ServerSettings(admin_token_file=path), {}) == TOKEN
    assert "admin.token_file_readable" in warnings_logged


def test_private_token_file_does_not_warn(tmp_path: Path, warnings_logged: list[str]) -> None:
    path = private(tmp_path / "token", TOKEN)
    load_token(ServerSettings(admin_token_file=path), {})
    assert "admin.token_file_readable" not in warnings_logged
