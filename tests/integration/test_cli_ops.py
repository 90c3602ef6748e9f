"""``rotator status / rotate / verify / rollback`` as a user runs them: subprocesses against a
running daemon. What is checked: the table, ``--json``, the exit statuses, the messages."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dates import expiry_in
from tests.fixtures.daemon import (
    Stack,
    assert_no_key_in,
    seeded_stack,
    sink_file,
)
from tests.fixtures.openbao import OpenBaoServer, write_private

EXPIRES_AT = expiry_in(200)
EXPIRES = EXPIRES_AT[:10]
NAMES = ("cli-a", "cli-b", "cli-rot", "cli-solo")


@pytest.fixture(scope="module")
def stack(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with seeded_stack(
        openbao, tmp_path_factory.mktemp("cli-ops"), "cli-ops", NAMES, EXPIRES_AT
    ) as s:
        yield s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- status --------------------------------------------------------------------------------


def test_status_table(stack: Stack) -> None:
    done = stack.daemon.cli("status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "KEY",
        "STATUS",
        "EXPIRES",
        "DAYS",
        "LEFT",
        "ASSUMED",
        "VERSION",
        "KEY",
        "ENDS",
        "NEXT",
    ]
    row = next(line.split() for line in lines if line.startswith("cli-a "))
    # The key expires 200 days and 6 hours on (tests/dates.py): 200 days left at any hour.
    assert row[:7] == ["cli-a", "valid", EXPIRES, "200", "no", "1/1", stack.first["cli-a"][-4:]]
    assert "\x1b[" not in done.stdout  # no colour off a terminal


def test_status_json_is_clean_json(stack: Stack) -> None:
    done = stack.daemon.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert {k["name"] for k in listing["keys"]} == set(NAMES)
    assert {k["status"] for k in listing["keys"]} == {"valid"}
    assert_no_key_in([done.stdout, done.stderr], stack.kit.values)


def test_status_colours_the_status_on_a_terminal(stack: Stack) -> None:
    main, secondary = pty.openpty()
    env = {
        **stack.daemon.base_env(),
        "ROTATOR_URL": stack.daemon.admin_url,
        "ROTATOR_ADMIN_TOKEN": stack.daemon.token or "",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rotator", "status"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(main)
    assert done.returncode == 0, done.stderr
    assert b"\x1b[32mvalid" in output  # green


def test_exit_statuses_follow_the_keys_health(stack: Stack) -> None:
    d = stack.daemon
    stack.standin.set_key(stack.first["cli-b"], "invalid")
    try:
        verified = d.cli("verify", "cli-b")
        assert verified.returncode == 1
        assert "invalid" in verified.stdout
        assert "create a new key" in verified.stdout
        status = d.cli("status")
        assert status.returncode == 1
        row = next(line.split() for line in status.stdout.splitlines() if "cli-b" in line)
        assert row[1] == "invalid"
    finally:
        stack.standin.set_key(stack.first["cli-b"], "valid")
    assert d.cli("verify", "cli-b").returncode == 0
    assert d.cli("status").returncode == 0


def test_verify_json(stack: Stack) -> None:
    done = stack.daemon.cli("verify", "cli-a", "--json")
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)
    assert key["name"] == "cli-a"
    assert key["status"] == "valid"
    assert key["fingerprint"] == stack.first["cli-a"][-4:]


# --- rotate and rollback -------------------------------------------------------------------


def test_rotate_force_version_and_rollback(stack: Stack) -> None:
    d = stack.daemon
    _, second = stack.kit.put("cli-rot", expires_at=EXPIRES_AT)
    rotated = d.cli("rotate", "cli-rot")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == f"cli-rot: rotated to version 2 (key ending {second[-4:]})"
    assert sink_file(d, "cli-rot").read_text().strip() == second

    nothing = d.cli("rotate", "cli-rot")
    assert nothing.returncode == 0
    assert "nothing to do: version 2 is already active" in nothing.stdout

    sink_file(d, "cli-rot").unlink()
    forced = d.cli("rotate", "cli-rot", "--force")
    assert forced.returncode == 0
    assert (
        forced.stdout.strip()
        == f"cli-rot: re-delivered version 2 to 1 sink(s) (key ending {second[-4:]})"
    )
    assert sink_file(d, "cli-rot").read_text().strip() == second

    stack.kit.put("cli-rot", "invalid")
    rejected = d.cli("rotate", "cli-rot", "--json")
    assert rejected.returncode == 1
    assert json.loads(rejected.stdout)["result"] == "rejected"
    assert sink_file(d, "cli-rot").read_text().strip() == second

    older = d.cli("rotate", "cli-rot", "--version", "1")
    assert older.returncode == 0, older.stdout
    assert "rotated to version 1" in older.stdout
    assert sink_file(d, "cli-rot").read_text().strip() == stack.first["cli-rot"]

    back = d.cli("rollback", "cli-rot")
    assert back.returncode == 0, back.stdout
    assert back.stdout.strip() == f"cli-rot: rolled back to version 2 (key ending {second[-4:]})"
    assert sink_file(d, "cli-rot").read_text().strip() == second


def test_rollback_without_a_previous_version_exits_1(stack: Stack) -> None:
    done = stack.daemon.cli("rollback", "cli-solo")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "rotator: the daemon could not do it: nothing to roll back to: cli-solo has no "
        "previous version"
    )


# --- when it cannot work -------------------------------------------------------------------


def test_daemon_unreachable_exits_2(stack: Stack) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["rotate", "cli-a"], ["verify", "cli-a"], ["rollback", "cli-a"]):
        done = stack.daemon.cli(*args, "--url", url)
        assert done.returncode == 2, args
        assert f"cannot reach the daemon at {url}" in done.stderr


def test_wrong_or_missing_token_exits_2(stack: Stack) -> None:
    wrong = stack.daemon.cli("status", token="a-wrong-token-of-some-length")
    assert wrong.returncode == 2
    assert "the admin token was refused" in wrong.stderr
    assert "a-wrong-token" not in wrong.stderr
    missing = stack.daemon.cli("rotate", "cli-a", token=None)
    assert missing.returncode == 2
    assert "wants an admin token" in missing.stderr


def test_token_file_option(stack: Stack, tmp_path: Path) -> None:
    path = write_private(tmp_path / "token", stack.daemon.token or "")
    done = stack.daemon.cli("status", "--token-file", str(path), token=None)
    assert done.returncode == 0, done.stderr
    absent = stack.daemon.cli("status", "--token-file", str(path) + ".nope", token=None)
    assert absent.returncode == 2
    assert "cannot read --token-file" in absent.stderr


def test_usage_errors_exit_2(stack: Stack) -> None:
    d = stack.daemon
    unknown = d.cli("rotate", "no-such-key")
    assert unknown.returncode == 2
    assert "unknown key: no-such-key" in unknown.stderr
    assert d.cli("rotate").returncode == 2
    assert d.cli("rotate", "cli-a", "--version", "0").returncode == 2
    bad_url = d.cli("status", "--url", "localhost:8080")
    assert bad_url.returncode == 2
    assert "--url must start with http:// or https://" in bad_url.stderr


def test_nothing_the_cli_printed_holds_a_key(stack: Stack) -> None:
    outputs = []
    for args in (["status"], ["status", "--json"], ["verify", "cli-a", "--json"]):
        done = stack.daemon.cli(*args)
        outputs += [done.stdout, done.stderr]
    assert_no_key_in(outputs, stack.kit.values)
    assert_no_key_in([stack.daemon.output()], stack.kit.values)
