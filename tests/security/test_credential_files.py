"""The daemon's own credentials files: one rule for all (``rotator.adapters.credentials``).

Owner read/write and group read are fine (0600, 0640, 0400, 0440); group write or any
access for other users is a warning event naming the file, once per file, and the daemon
carries on. ``tests/integration/test_vault_auth.py`` shows a 0644 secret-id file warned
about through a real AppRole login; here every file kind and mode, and a whole daemon.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rotator.adapters.vault.auth import read_credential
from rotator.admin.auth import load_token
from rotator.config.server import ServerSettings
from rotator.demo.standin import MistralStandIn
from rotator.logs import REDACTOR
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, daemon_config
from tests.fixtures.openbao import OpenBaoServer, create_approle, write_private

Events = Callable[[], list[dict[str, Any]]]
# Random: the leak scan looks for any 8 characters of it, and words would match file names.
TOKEN = "admin-" + secrets.token_hex(16)
QUIET = [0o600, 0o640, 0o400, 0o440]
LOUD = [0o644, 0o604, 0o660, 0o620, 0o666, 0o602]


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == name]


def file_with(path: Path, text: str, mode: int) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def read_admin(path: Path) -> str | None:
    return load_token(ServerSettings(admin_token_file=path), {})


def read_vault(path: Path) -> str:
    return read_credential(path, "AppRole secret id")


READERS = {
    "admin.token_file_readable": read_admin,
    "vault.credentials_file_readable": read_vault,
}


@pytest.mark.parametrize("event", READERS)
@pytest.mark.parametrize("mode", QUIET + LOUD, ids=lambda m: f"{m:04o}")
def test_one_rule_for_every_credentials_file(
    tmp_path: Path, captured_log: Events, event: str, mode: int
) -> None:
    path = file_with(tmp_path / "credential", TOKEN, mode)
    assert READERS[event](path) == TOKEN  # read either way: a warning, never a refusal
    warned = named(captured_log(), event)
    if mode in QUIET:
        assert warned == []
    else:
        ((w,),) = [warned]
        assert (w["path"], w["mode"], w["level"]) == (str(path), oct(mode), "warning")
        assert w["action"].startswith(f"chmod 600 {path}")
    assert TOKEN not in str(captured_log())


def test_warned_once_per_file_however_often_it_is_read(
    tmp_path: Path, captured_log: Events
) -> None:
    first = file_with(tmp_path / "secret-id", TOKEN, 0o644)
    second = file_with(tmp_path / "token", TOKEN, 0o666)
    for _ in range(3):  # a login per token lifetime reads the files again
        read_vault(first)
        read_vault(second)
    warned = named(captured_log(), "vault.credentials_file_readable")
    assert [w["path"] for w in warned] == [str(first), str(second)]


def test_credentials_read_are_scrubbed_from_logs(tmp_path: Path) -> None:
    secret = "secret-id-" + "9f8e7d6c5b4a"
    read_vault(file_with(tmp_path / "secret-id", secret, 0o600))
    assert REDACTOR.scrub(f"login with {secret} failed") == "login with [REDACTED] failed"


def test_the_daemon_warns_about_its_open_files_and_keeps_running(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("creds")
    approle = create_approle(openbao, tmp_path, token_ttl="3s", token_max_ttl="6s")
    approle.secret_id_file.chmod(0o604)  # others may read: warned
    approle.role_id_file.chmod(0o440)  # group may read: fine
    admin_file = write_private(tmp_path / "admin-token", TOKEN)
    admin_file.chmod(0o644)
    config = daemon_config(tmp_path, openbao, mistral, kit, ["creds"], admin_token_file=admin_file)
    config["vault"]["auth"] = {
        "method": "approle",
        "role_id_file": str(approle.role_id_file),
        "secret_id_file": str(approle.secret_id_file),
    }
    daemon = DaemonProcess(tmp_path, config, token=TOKEN)
    daemon.start()
    try:
        daemon.wait_checked(["creds"])
        # Past the max TTL: the daemon logs in again and reads both files again.
        daemon.wait_until(lambda: len(daemon.events("vault.login")) >= 2, 20, "a second login")
        assert daemon.key("creds")["status"] == "valid"
    finally:
        assert daemon.stop() == 0
    admin = daemon.events("admin.token_file_readable")
    vault = daemon.events("vault.credentials_file_readable")
    assert [(e["path"], e["mode"]) for e in admin] == [(str(admin_file), "0o644")]
    assert [(e["path"], e["mode"], e["what"]) for e in vault] == [
        (str(approle.secret_id_file), "0o604", "AppRole secret id")
    ]
    secret_id = approle.secret_id_file.read_text().strip()
    assert_no_key_in([daemon.output()], [*kit.values, secret_id, TOKEN])
