"""One full run, then a search for the key everywhere it must not be.

A ``rotator run`` subprocess logs in to the real OpenBao through AppRole with exactly the
shipped policy (``deploy/vault/rotator-policy.hcl``), and manages one key with every kind
of sink: a file with a command reload that records its argv and environment, a second file
whose reload asks for the key in ``$MISTRAL_API_KEY`` (``pass_key_env``), an http sink to a
loopback receiver (with a bearer token from the environment) and a vault sink. It delivers
the first version, rotates to a second, rejects a third that Mistral refuses, rolls back
through the admin API, and answers ``rotator status --json`` and ``rotator check --json``.

Then every place a key could leak is read: all the daemon printed, every API answer,
``/metrics``, the CLI's output, both reload commands' argv and environment, the daemon's
``/proc/<pid>/cmdline`` and ``environ``, every file the run left (no temporary file in the
sink directory, none in ``$TMPDIR``), the rotation state in Vault. Key values may only be
in the sinks, at the receiver, at the vault sink's path and at the key's own path in Vault;
the rejected key in none of them.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, daemon_config
from tests.fixtures.openbao import OpenBaoServer, create_approle, write_private
from tests.fixtures.receiver import Receiver

NAME = "leak"
KEY_ENV = "MISTRAL_API_KEY"

# A reload command: appends what it was started with (argv, environment) as one JSON line.
RECORDER = """
import json, os, sys
with open(sys.argv[1], "a", encoding="utf-8") as f:
    f.write(json.dumps({"argv": sys.argv, "env": dict(os.environ)}) + "\\n")
"""


@dataclass
class Run:
    """What the full run produced, for the checks below."""

    daemon: DaemonProcess
    kit: KeyKit
    receiver: Receiver
    workdir: Path
    values: dict[int, str]
    """Vault version -> key value: 1 and 2 valid, 3 refused by Mistral."""
    other_secrets: dict[str, str]
    """Credentials that belong in no output: admin token, AppRole secret id, portal token."""
    vault_sink_path: str
    state_path: str
    outcomes: list[str] = field(default_factory=list)
    cli_output: list[str] = field(default_factory=list)
    metrics_text: str = ""
    proc: dict[str, str] = field(default_factory=dict)

    @property
    def sinks(self) -> Path:
        return self.workdir / "sinks"

    def records(self, which: str) -> list[dict[str, Any]]:
        path = self.workdir / "records" / f"{which}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


def sinks_config(workdir: Path, receiver: Receiver, vault_sink_path: str) -> list[dict[str, Any]]:
    recorder = workdir / "reload.py"
    recorder.write_text(RECORDER)
    records = workdir / "records"
    records.mkdir()

    def command(which: str) -> list[str]:
        return [sys.executable, str(recorder), str(records / f"{which}.jsonl"), "--reloaded"]

    return [
        {
            "type": "file",
            "path": str(workdir / "sinks" / f"{NAME}.key"),
            "reload": {"command": command("plain")},
        },
        {
            "type": "file",
            "path": str(workdir / "sinks" / f"{NAME}.env"),
            "format": "env",
            "reload": {"command": command("with-key"), "pass_key_env": KEY_ENV},
        },
        {
            "type": "http",
            "url": f"{receiver.url}/api/mistral-key",
            "headers": {"Authorization": "Bearer ${env:PORTAL_TOKEN}"},
        },
        {"type": "vault", "path": vault_sink_path},
    ]


def operate(daemon: DaemonProcess, action: str) -> dict[str, Any]:
    answer = daemon.api("POST", f"/api/v1/keys/{NAME}/{action}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def held(run: Run) -> dict[str, str]:
    """The key each sink holds now."""
    vault = run.kit.openbao.client().secrets.kv.v2.read_secret_version(
        path=run.vault_sink_path, raise_on_deleted_version=True
    )
    return {
        "file": (run.sinks / f"{NAME}.key").read_text().strip(),
        "env": (run.sinks / f"{NAME}.env").read_text().strip().removeprefix(f"{KEY_ENV}="),
        "http": json.loads(run.receiver.requests[-1].body)["api_key"],
        "vault": vault["data"]["data"]["api_key"],
    }


def everywhere(value: str) -> dict[str, str]:
    return dict.fromkeys(("file", "env", "http", "vault"), value)


@pytest.fixture(scope="module")
def run(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("leak-scan")
    receiver = Receiver()
    receiver.start()
    with MistralStandIn() as standin:
        kit = KeyKit(openbao, standin, f"mistral/leak-scan-{uuid.uuid4().hex[:8]}")
        values = {1: kit.put(NAME)[1]}
        approle = create_approle(openbao, workdir)
        admin_token = "admin-" + secrets.token_hex(16)
        portal_token = "portal-" + secrets.token_hex(16)
        vault_sink_path = f"portal/leak-scan-{uuid.uuid4().hex[:8]}"
        config = daemon_config(
            workdir,
            openbao,
            standin,
            kit,
            [NAME],
            admin_token_file=write_private(workdir / "admin-token", admin_token),
        )
        config["vault"]["auth"] = {
            "method": "approle",
            "role_id_file": str(approle.role_id_file),
            "secret_id_file": str(approle.secret_id_file),
        }
        (workdir / "vault-token").unlink()  # daemon_config's root token: not used, not left
        config["keys"][0]["sinks"] = sinks_config(workdir, receiver, vault_sink_path)
        (workdir / "tmp").mkdir()
        env = {"PORTAL_TOKEN": portal_token, "TMPDIR": str(workdir / "tmp")}
        daemon = DaemonProcess(workdir, config, token=admin_token, env=env)
        result = Run(
            daemon,
            kit,
            receiver,
            workdir,
            values,
            {
                "admin token": admin_token,
                "AppRole secret id": approle.secret_id_file.read_text().strip(),
                "portal token": portal_token,
            },
            vault_sink_path,
            f"{config['vault']['state_path']}/{NAME}",
        )
        daemon.start()
        try:
            exercise(result)
        finally:
            code = daemon.stop()
            receiver.stop()
        assert code == 0, daemon.tail()
        yield result


def exercise(run: Run) -> None:
    d, kit = run.daemon, run.kit
    d.wait_checked([NAME])
    d.wait_until(lambda: d.key(NAME)["active_version"] == 1, 20, "version 1 delivered")
    assert held(run) == everywhere(run.values[1])

    _, run.values[2] = kit.put(NAME)
    run.outcomes.append(operate(d, "rotate")["result"])
    assert held(run) == everywhere(run.values[2])

    _, run.values[3] = kit.put(NAME, "invalid")
    run.outcomes.append(operate(d, "rotate")["result"])
    assert held(run) == everywhere(run.values[2])

    run.outcomes.append(operate(d, "rollback")["result"])
    assert held(run) == everywhere(run.values[1])

    d.api("GET", "/api/v1/keys")
    d.api("GET", f"/api/v1/keys/{NAME}")
    d.api("POST", f"/api/v1/keys/{NAME}/verify")
    for path in ("/healthz", "/readyz", "/openapi.json"):
        d.api("GET", path)
    for args in (("status", "--json"), ("check", "--json", "--config", str(d.config_path))):
        done = d.cli(*args)
        assert done.returncode == 0, done.stderr
        run.cli_output += [done.stdout, done.stderr]
    run.metrics_text = httpx.get(f"{d.metrics_url}/metrics", timeout=5).text
    # The fixture keeps the process private; its pid is what /proc needs.
    pid = d._process.pid if d._process else None
    assert pid is not None
    for name in ("cmdline", "environ"):
        run.proc[name] = Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode()


# --- the run itself ------------------------------------------------------------------------


def test_the_run_rotated_rejected_and_rolled_back(run: Run) -> None:
    assert run.outcomes == ["rotated", "rejected", "rolled_back"]
    assert [json.loads(r.body)["api_key"] for r in run.receiver.requests] == [
        run.values[1],
        run.values[2],
        run.values[1],
    ]
    assert {r.headers["authorization"] for r in run.receiver.requests} == {
        f"Bearer {run.other_secrets['portal token']}"
    }
    assert len(run.daemon.answers) >= 8
    assert run.daemon.events("vault.login")[0]["method"] == "approle"


# --- where the key must not be -------------------------------------------------------------


def secrets_of(run: Run) -> list[str]:
    return [*run.values.values(), *run.other_secrets.values()]


def test_nothing_the_daemon_printed_holds_a_key_or_credential(run: Run) -> None:
    output = run.daemon.output()
    assert "sink.delivered" in output and "admin.rollback" in output
    assert_no_key_in([output], secrets_of(run))
    assert "Traceback" not in output


def test_no_api_answer_cli_output_or_metric_holds_one(run: Run) -> None:
    assert_no_key_in(run.daemon.answers, secrets_of(run))
    assert_no_key_in(run.cli_output, secrets_of(run))
    assert f'mistral_key_active_version{{key="{NAME}"}} 1.0' in run.metrics_text
    assert_no_key_in([run.metrics_text], secrets_of(run))


def test_the_daemons_command_line_and_environment_hold_none(run: Run) -> None:
    assert "rotator run --config" in run.proc["cmdline"]
    assert "PORTAL_TOKEN=" in run.proc["environ"]  # given to it for the http sink's header
    assert_no_key_in([run.proc["cmdline"], run.proc["environ"]], run.values.values())
    assert_no_key_in([run.proc["cmdline"]], run.other_secrets.values())
    credentials = [run.other_secrets["admin token"], run.other_secrets["AppRole secret id"]]
    assert_no_key_in([run.proc["environ"]], credentials)


def test_a_reload_command_never_gets_the_key_or_the_daemons_secrets(run: Run) -> None:
    records = run.records("plain")
    assert len(records) == 3  # version 1, version 2, the rollback to 1
    assert all(r["argv"][2:] == ["--reloaded"] for r in records)
    assert all(r["env"]["PATH"] == os.environ["PATH"] for r in records)
    assert_no_key_in([json.dumps(r) for r in records], secrets_of(run))


def test_pass_key_env_hands_over_the_key_in_that_variable_only(run: Run) -> None:
    records = run.records("with-key")
    assert [r["env"][KEY_ENV] for r in records] == [
        run.values[1],
        run.values[2],
        run.values[1],
    ]
    for record in records:
        rest = {k: v for k, v in record["env"].items() if k != KEY_ENV}
        assert_no_key_in([json.dumps(record["argv"]), json.dumps(rest)], secrets_of(run))


def test_sink_directory_holds_the_sinks_files_only_private(run: Run) -> None:
    files = sorted(os.listdir(run.sinks))
    assert files == [f"{NAME}.env", f"{NAME}.key"]  # no temporary file left behind
    for name in files:
        assert stat.S_IMODE(os.stat(run.sinks / name).st_mode) == 0o600
    assert os.listdir(run.workdir / "tmp") == []


def test_no_other_file_of_the_run_holds_a_key(run: Run) -> None:
    allowed = {run.sinks / f"{NAME}.key", run.sinks / f"{NAME}.env"}
    allowed.add(run.workdir / "records" / "with-key.jsonl")
    scanned = []
    for path in run.workdir.rglob("*"):
        if path.is_file() and path not in allowed:
            scanned.append(path)
            assert_no_key_in([path.read_text(errors="replace")], run.values.values())
    assert run.daemon.log_path in scanned and run.daemon.config_path in scanned


def test_vault_holds_keys_only_at_their_paths_and_never_the_rejected_one(run: Run) -> None:
    client = run.kit.openbao.client()
    state = client.secrets.kv.v2.read_secret_version(
        path=run.state_path, raise_on_deleted_version=True
    )["data"]["data"]
    assert state["active_version"] == 1
    assert_no_key_in([json.dumps(state)], run.values.values())
    sink_versions = client.secrets.kv.v2.read_secret_metadata(path=run.vault_sink_path)
    seen = [
        client.secrets.kv.v2.read_secret_version(
            path=run.vault_sink_path, version=int(v), raise_on_deleted_version=True
        )["data"]["data"]["api_key"]
        for v in sorted(sink_versions["data"]["versions"], key=int)
    ]
    assert seen == [run.values[1], run.values[2], run.values[1]]


def test_the_rejected_key_reached_no_sink(run: Run) -> None:
    rejected = run.values[3]
    delivered = [
        (run.sinks / f"{NAME}.key").read_text(),
        (run.sinks / f"{NAME}.env").read_text(),
        (run.workdir / "records" / "with-key.jsonl").read_text(),
        *(r.body.decode() for r in run.receiver.requests),
    ]
    assert_no_key_in(delivered, [rejected])
