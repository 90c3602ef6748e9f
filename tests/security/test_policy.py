"""The shipped Vault policy is enough for the daemon, and no more than it needs.

A ``rotator run`` subprocess logs in to the real OpenBao through an AppRole whose tokens
carry exactly ``deploy/vault/rotator-policy.hcl`` (``token_no_default_policy``: not even
OpenBao's default policy). It polls, verifies, rotates, writes its state and a vault sink,
and renews its short-lived token. What the policy leaves out fails visibly: a key outside
it is a ``vault.permission_denied`` naming the path while the other keys carry on, and a
vault sink outside it fails the rotation cleanly. With the very credentials the daemon
uses, nothing can write a key version, delete one, or read beyond the daemon's paths.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from hvac import exceptions as hvac_exc

from rotator.config.vault import AppRoleAuth
from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, daemon_config, new_key_value
from tests.fixtures.openbao import ROTATOR_POLICY, OpenBaoServer, write_private

ADMIN_TOKEN = "admin-policy-test-0123456789"


@dataclass
class Stack:
    daemon: DaemonProcess
    kit: KeyKit
    openbao: OpenBaoServer
    auth: AppRoleAuth
    policy: str
    vault_sink: str
    """Inside the policy (``portal/...``)."""
    foreign: str
    """A prefix outside the policy."""

    def root(self) -> hvac.Client:
        return self.openbao.client()

    def as_daemon(self) -> hvac.Client:
        """A client logged in with the daemon's own role id and secret id."""
        client = hvac.Client(url=self.openbao.url, timeout=5)
        client.auth.approle.login(
            role_id=self.auth.role_id_file.read_text().strip(),
            secret_id=self.auth.secret_id_file.read_text().strip(),
        )
        return client

    def read(self, path: str) -> dict[str, Any] | None:
        try:
            answer = self.root().secrets.kv.v2.read_secret_version(
                path=path, raise_on_deleted_version=True
            )
        except hvac_exc.InvalidPath:
            return None
        data: dict[str, Any] = answer["data"]["data"]
        return data


def shipped_policy_only(server: OpenBaoServer, directory: Path) -> tuple[AppRoleAuth, str]:
    """An AppRole whose tokens have the shipped policy and nothing else (12 s TTL)."""
    client = server.client()
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    name = f"rotator-only-{uuid.uuid4().hex[:8]}"
    client.sys.create_or_update_policy(name=name, policy=ROTATOR_POLICY)
    client.auth.approle.create_or_update_approle(
        role_name=name,
        token_policies=[name],
        token_no_default_policy=True,
        token_ttl="12s",
        token_max_ttl="5m",
    )
    role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    auth = AppRoleAuth(
        method="approle",
        role_id_file=write_private(directory / "role-id", role_id),
        secret_id_file=write_private(directory / "secret-id", secret_id),
    )
    return auth, name


@pytest.fixture(scope="module")
def stack(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("policy")
    tag = uuid.uuid4().hex[:8]
    with MistralStandIn() as standin:
        kit = KeyKit(openbao, standin, f"mistral/policy-{tag}")
        kit.put("granted")
        kit.put("sink-outside")
        foreign = f"other-team/{tag}"
        value = new_key_value()
        standin.set_key(value, "valid")
        openbao.client().secrets.kv.v2.create_or_update_secret(
            path=f"{foreign}/key", secret={"api_key": value}
        )
        auth, policy = shipped_policy_only(openbao, workdir)
        config = daemon_config(
            workdir,
            openbao,
            standin,
            kit,
            ["granted", "sink-outside"],
            admin_token_file=write_private(workdir / "admin-token", ADMIN_TOKEN),
            schedule={"poll_interval": "2s"},
        )
        (workdir / "vault-token").unlink()  # the root token daemon_config wrote: not used
        config["vault"]["auth"] = {
            "method": "approle",
            "role_id_file": str(auth.role_id_file),
            "secret_id_file": str(auth.secret_id_file),
        }
        vault_sink = f"portal/policy-{tag}"
        keys = {k["name"]: k for k in config["keys"]}
        keys["granted"]["sinks"].append({"type": "vault", "path": vault_sink})
        keys["sink-outside"]["sinks"] = [{"type": "vault", "path": f"{foreign}/copy"}]
        config["keys"].append({"name": "foreign", "vault_path": f"{foreign}/key", "sinks": []})
        daemon = DaemonProcess(workdir, config, token=ADMIN_TOKEN)
        daemon.start()
        try:
            yield Stack(daemon, kit, openbao, auth, policy, vault_sink, foreign)
        finally:
            assert daemon.stop() == 0, daemon.tail()


def wait(stack: Stack, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    return stack.daemon.wait_until(check, timeout, what)


# --- what the policy allows ----------------------------------------------------------------


def test_the_daemons_token_has_the_shipped_policy_and_nothing_else(stack: Stack) -> None:
    data = stack.as_daemon().auth.token.lookup_self()["data"]
    assert data["policies"] == [stack.policy]
    assert stack.root().sys.read_policy(stack.policy)["data"]["rules"] == ROTATOR_POLICY


def test_it_polls_verifies_delivers_and_records_state(stack: Stack) -> None:
    d = stack.daemon
    wait(stack, lambda: d.key("granted")["active_version"] == 1, "version 1 active")
    assert d.key("granted")["status"] == "valid"
    assert d.metric("mistral_key_status", key="granted", status="valid") == 1
    first = stack.kit.values[0]
    assert (d.workdir / "sinks" / "granted.key").read_text().strip() == first
    assert stack.read(stack.vault_sink)["api_key"] == first  # type: ignore[index]
    state_path = f"{d.config['vault']['state_path']}/granted"
    assert stack.read(state_path)["active_version"] == 1  # type: ignore[index]

    # A new version: the scheduled poll finds it and rotates, with state and sink written.
    _, second = stack.kit.put("granted")
    wait(stack, lambda: d.key("granted")["active_version"] == 2, "the poll rotates to 2")
    assert stack.read(stack.vault_sink)["api_key"] == second  # type: ignore[index]
    assert stack.read(state_path)["active_version"] == 2  # type: ignore[index]
    assert stack.read(state_path)["previous_version"] == 1  # type: ignore[index]
    assert d.api("POST", "/api/v1/keys/granted/verify").json()["status"] == "valid"


def test_it_looks_up_and_renews_its_token_with_this_policy_alone(stack: Stack) -> None:
    # Readiness looks the token up; upkeep renews it once a third of its 12 s is left. Both
    # are granted by the shipped policy itself: OpenBao's default policy is absent here.
    d = stack.daemon
    assert d.ready()
    renewed = wait(stack, lambda: d.events("vault.auth_renewed"), "a renewal", timeout=30)
    assert renewed[0]["ttl"] == 12
    assert not [e for e in d.events("vault.permission_denied") if e["path"].startswith("auth/")]


# --- what it does not allow, seen from the daemon ------------------------------------------


def test_a_key_outside_the_policy_is_denied_by_path_and_others_carry_on(stack: Stack) -> None:
    d = stack.daemon
    path = f"secret/metadata/{stack.foreign}/key"
    wait(stack, lambda: path in [e["path"] for e in d.events("vault.permission_denied")], path)
    foreign = d.key("foreign")
    assert foreign["active_version"] is None
    assert f"permission denied on {path}" in foreign["problem"]
    errors = d.metric("rotator_errors_total", component="vault")
    assert errors is not None and errors >= 1
    assert d.metric("rotator_vault_up") == 1  # Vault answered: it is the policy, not an outage
    assert d.key("granted")["status"] == "valid"


def test_a_refusal_is_not_answered_with_a_new_login(stack: Stack) -> None:
    # Each poll of the key outside the policy is refused. A login per refusal would mint a
    # token every poll and use up a secret id limited to a number of uses.
    d = stack.daemon
    path = f"secret/metadata/{stack.foreign}/key"

    def refusals() -> int:
        return len([e for e in d.events("vault.permission_denied") if e["path"] == path])

    seen = refusals()
    wait(stack, lambda: refusals() >= seen + 3, "three more refusals (2 s polls)")
    assert len(d.events("vault.login")) == 1


def test_a_vault_sink_outside_the_policy_fails_the_rotation_and_writes_nothing(
    stack: Stack,
) -> None:
    d = stack.daemon
    sink = f"vault:secret/{stack.foreign}/copy"
    failed = wait(
        stack,
        lambda: [e for e in d.events("sink.failed") if e.get("sink") == sink],
        "the outside sink to fail",
    )
    assert f"permission denied on secret/data/{stack.foreign}/copy" in failed[0]["reason"]
    assert d.metric("mistral_key_rotations_total", key="sink-outside", result="failed")
    assert d.key("sink-outside")["active_version"] is None
    assert stack.read(f"{stack.foreign}/copy") is None


def test_rotator_stage_with_the_daemons_identity_cannot_write_a_key(stack: Stack) -> None:
    d = stack.daemon
    new = new_key_value()
    stack.kit.standin.set_key(new, "valid")  # a good key: only Vault can say no
    before = stack.root().secrets.kv.v2.read_secret_metadata(path=stack.kit.path("granted"))
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "stage", "granted", "--config", str(d.config_path)],
        input=new + "\n",
        capture_output=True,
        text=True,
        env=d.base_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"permission denied on secret/data/{stack.kit.path('granted')}" in done.stderr
    after = stack.root().secrets.kv.v2.read_secret_metadata(path=stack.kit.path("granted"))
    assert after["data"]["current_version"] == before["data"]["current_version"]
    assert new not in done.stdout + done.stderr


# --- what it does not allow, with the daemon's own credentials -----------------------------

FORBIDDEN: dict[str, Callable[[hvac.Client, Stack], Any]] = {
    "write a new key version": lambda c, s: c.secrets.kv.v2.create_or_update_secret(
        path=s.kit.path("granted"), secret={"api_key": "mk-not-from-the-daemon-000000"}
    ),
    "patch a key": lambda c, s: c.adapter.request(
        "PATCH",
        f"/v1/secret/data/{s.kit.path('granted')}",
        json={"data": {"expires_at": "2099-01-01"}},
        headers={"Content-Type": "application/merge-patch+json"},
    ),
    "delete a key version": lambda c, s: c.secrets.kv.v2.delete_latest_version_of_secret(
        path=s.kit.path("granted")
    ),
    "destroy a key version": lambda c, s: c.secrets.kv.v2.destroy_secret_versions(
        path=s.kit.path("granted"), versions=[1]
    ),
    "change a key's metadata": lambda c, s: c.secrets.kv.v2.update_metadata(
        path=s.kit.path("granted"), max_versions=1
    ),
    "delete a key with its history": lambda c, s: c.secrets.kv.v2.delete_metadata_and_all_versions(
        path=s.kit.path("granted")
    ),
    "erase the state's history": lambda c, s: c.secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"{s.daemon.config['vault']['state_path']}/granted"
    ),
    "read another team's secret": lambda c, s: c.secrets.kv.v2.read_secret_version(
        path=f"{s.foreign}/key", raise_on_deleted_version=True
    ),
    "list the whole mount": lambda c, s: c.secrets.kv.v2.list_secrets(path=""),
    "list another team's secrets": lambda c, s: c.secrets.kv.v2.list_secrets(path=s.foreign),
    "read a policy": lambda c, s: c.sys.read_policy(s.policy),
    "list auth methods": lambda c, s: c.sys.list_auth_methods(),
    "create a token": lambda c, s: c.auth.token.create(policies=[s.policy]),
    "mint a secret id": lambda c, s: c.auth.approle.generate_secret_id(s.policy),
}


@pytest.mark.parametrize("what", FORBIDDEN)
def test_the_daemons_credentials_cannot(stack: Stack, what: str) -> None:
    with pytest.raises(hvac_exc.Forbidden):
        FORBIDDEN[what](stack.as_daemon(), stack)


def test_nothing_was_changed_by_those_attempts(stack: Stack) -> None:
    metadata = stack.root().secrets.kv.v2.read_secret_metadata(path=stack.kit.path("granted"))
    versions = metadata["data"]["versions"]
    assert all(not v["deletion_time"] and not v["destroyed"] for v in versions.values())
    assert stack.read(f"{stack.foreign}/key") is not None


def test_docs_quote_the_shipped_policy_verbatim() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    quoted = docs.split("```hcl\n", 1)[1].split("```", 1)[0]
    assert quoted == ROTATOR_POLICY
