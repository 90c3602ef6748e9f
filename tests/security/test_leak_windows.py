"""Issue 11, defects 5 and 6: a key (or a header token) must not leak in pieces.

A real daemon on the session OpenBao and the Mistral stand-in, three keys whose delivery
fails in a way that puts outside text into the error:

- ``http-tail``: the receiver answers 500 with the key in its body, placed so that the
  body's tail (what the error keeps) cuts the key in half;
- ``cmd-tail``: a reload command prints the key to stderr and exits 1, the key cut the same way;
- ``hdr-newline``: the http sink's X-Portal-Token header comes from a file whose token holds a
  line break (an illegal header value, whose error text quotes it escaped).

Every output channel (the daemon's log, every admin API answer, ``rotator status --json``,
the state in Vault) is searched for every 8-character window of every key and token.
"""

from __future__ import annotations

import json
import secrets
import sys
import uuid
from pathlib import Path

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import KeyKit, assert_no_key_in, configured_daemon, new_key_value
from tests.fixtures.openbao import OpenBaoServer, write_private
from tests.fixtures.receiver import Receiver
from tests.waiting import wait_for

STDERR_ECHO = """
import os, sys
sys.stderr.write(os.environ["THE_KEY"] + " " + "z" * 480 + "\\n")
sys.exit(1)
"""


def _put(kit: KeyKit, name: str, value: str) -> None:
    kit.values.append(value)
    kit.standin.set_key(value, "valid")
    kit.openbao.client().secrets.kv.v2.create_or_update_secret(
        path=kit.path(name), secret={"api_key": value}
    )


def test_no_piece_of_a_key_or_token_reaches_any_output(
    openbao: OpenBaoServer, mistral: MistralStandIn, receiver: Receiver, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, f"mistral/leak-windows-{uuid.uuid4().hex[:8]}")
    http_key, cmd_key = new_key_value(), new_key_value()
    # 218 characters: the last 200 start 18 characters into the key.
    receiver.respond(500, (http_key + " " + "y" * 185).encode())
    _put(kit, "http-tail", http_key)
    _put(kit, "cmd-tail", cmd_key)
    kit.put("hdr-newline")
    token = f"line1-{secrets.token_hex(12)}\nline2-{secrets.token_hex(12)}"
    token_file = write_private(tmp_path / "portal-token", token)
    echo = tmp_path / "echo.py"
    echo.write_text(STDERR_ECHO)

    names = ["http-tail", "cmd-tail", "hdr-newline"]
    daemon = configured_daemon(tmp_path, openbao, mistral, kit, names)
    sinks = {k["name"]: k["sinks"] for k in daemon.config["keys"]}
    sinks["http-tail"][:] = [{"type": "http", "url": f"{receiver.url}/tail", "method": "PUT"}]
    sinks["cmd-tail"][0]["reload"] = {
        "command": [sys.executable, str(echo)],
        "pass_key_env": "THE_KEY",
    }
    sinks["hdr-newline"][:] = [
        {
            "type": "http",
            "url": f"{receiver.url}/hdr",
            "headers": {"X-Portal-Token": f"${{file:{token_file}}}"},
        }
    ]
    daemon.start(wait_ready=False)
    try:
        daemon.wait_until(daemon.ready, 30, "ready")
        state_path = daemon.config["vault"]["state_path"]
        kv = openbao.client().secrets.kv.v2

        def last_result(name: str) -> str:
            try:
                answer = kv.read_secret_version(
                    path=f"{state_path}/{name}", raise_on_deleted_version=True
                )
            except Exception:
                return ""
            return str(answer["data"]["data"].get("last_result") or "")

        for name in names:
            wait_for(lambda n=name: last_result(n).startswith("failed:"), 20, f"{name} failed")
        states = [last_result(n) for n in names]
        assert "HTTP 500" in states[0] and "exited with 1" in states[1], states
        assert "header X-Portal-Token" in states[2], states
        status = daemon.cli("status", "--json")
        listing = json.loads(status.stdout)
        assert {k["name"] for k in listing["keys"]} == set(names)
        for name in names:
            daemon.key(name)
    finally:
        daemon.stop()

    pieces = [*kit.values, *token.split("\n"), token]
    assert_no_key_in([daemon.output()], pieces)
    assert_no_key_in(daemon.answers, pieces)
    assert_no_key_in([status.stdout, status.stderr], pieces)
    assert_no_key_in(states, pieces)
