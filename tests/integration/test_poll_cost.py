"""What a poll costs Vault, counted by Vault itself (OpenBao's audit log).

On OpenBao a poll of N keys in one folder is one ``LIST .../detailed-metadata/<folder>``
per page of entries; a secret is read only when its newest live version moved. A token
whose policy refuses ``detailed-metadata`` (what HashiCorp Vault, which lacks the endpoint,
amounts to) falls back to one metadata read per key, and still works.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from pathlib import Path

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.vault.gateway import VaultStore
from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, configured_daemon
from tests.fixtures.openbao import (
    ROTATOR_POLICY,
    OpenBaoServer,
    audited_requests,
    settings_for,
    write_private,
)
from tests.waiting import wait_for

NO_DETAILED_METADATA = re.sub(r'path "secret/detailed-metadata/[^}]*}', "", ROTATOR_POLICY)
"""The shipped policy without its detailed-metadata stanza (as a restricted user has it)."""


def test_the_shipped_policy_grants_detailed_metadata() -> None:
    assert "detailed-metadata" in ROTATOR_POLICY
    assert "detailed-metadata" not in NO_DETAILED_METADATA


def _requests(server: OpenBaoServer, prefix: str, since: int = 0) -> list[tuple[str, str]]:
    """Requests touching ``prefix`` (the keys, their metadata, their state), from ``since``."""
    assert server.audit_log is not None
    return [
        (op, path)
        for op, path in audited_requests(server.audit_log, "secret/")[since:]
        if prefix in path
    ]


def _audit_size(server: OpenBaoServer) -> int:
    assert server.audit_log is not None
    return len(audited_requests(server.audit_log, "secret/"))


async def test_a_folder_of_250_secrets_is_three_lists_of_100(
    openbao_audited: OpenBaoServer, tmp_path: Path
) -> None:
    server = openbao_audited
    prefix = f"mistral/pages-{uuid.uuid4().hex[:8]}"
    kv = server.client().secrets.kv.v2
    for i in range(250):
        kv.create_or_update_secret(path=f"{prefix}/tenant-{i:03d}", secret={"api_key": f"k{i}"})
    kv.create_or_update_secret(path=f"{prefix}/tenant-007", secret={"api_key": "k7b"})
    kv.create_or_update_secret(path=f"{prefix}/tenant-008", secret={"api_key": "k8b"})
    kv.delete_secret_versions(f"{prefix}/tenant-008", versions=[2])  # newest live: 1
    kv.destroy_secret_versions(f"{prefix}/tenant-009", versions=[1])  # none live
    kv.create_or_update_secret(path=f"{prefix}/sub/folder", secret={"api_key": "x"})
    created = kv.read_secret_metadata(path=f"{prefix}/tenant-007")["data"]["created_time"]
    store = VaultStore(settings_for(server, tmp_path), Metrics(), list_page=100)
    since = _audit_size(server)
    try:
        listed = await store.scan_folder(prefix)
    finally:
        store.close()

    assert listed is not None
    assert len(listed) == 250  # the sub-folder is not a secret of this folder
    assert (listed["tenant-000"].version, listed["tenant-007"].version) == (1, 2)
    assert (listed["tenant-008"].version, listed["tenant-009"].version) == (1, 0)
    # Each secret's creation time, as its own metadata says: a restart checks the state's
    # identity against it instead of reading that metadata.
    assert listed["tenant-007"].created == created
    made = _requests(server, prefix, since)
    assert made == [("list", f"secret/detailed-metadata/{prefix}/")] * 3


async def test_a_policy_without_detailed_metadata_falls_back_to_reading_metadata(
    openbao_audited: OpenBaoServer, tmp_path: Path
) -> None:
    server = openbao_audited
    prefix = f"mistral/denied-{uuid.uuid4().hex[:8]}"
    root = server.client()
    root.secrets.kv.v2.create_or_update_secret(path=f"{prefix}/a", secret={"api_key": "k"})
    name = f"no-detailed-{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_policy(name=name, policy=NO_DETAILED_METADATA)
    token = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    settings = settings_for(server, tmp_path)
    settings.auth.token_file.write_text(token)  # type: ignore[union-attr]
    store = VaultStore(settings, Metrics())
    try:
        assert await store.scan_folder(prefix) is None
        assert await store.scan_folder(prefix) is None  # decided once: not asked again
        assert await store.latest_version(f"{prefix}/a") == 1
    finally:
        store.close()
    made = _requests(server, prefix)
    assert made.count(("list", f"secret/detailed-metadata/{prefix}/")) == 1


def _tenants(server: OpenBaoServer, standin: MistralStandIn, count: int) -> KeyKit:
    kit = KeyKit(server, standin, f"mistral/tenants-{uuid.uuid4().hex[:8]}")
    for i in range(count):
        kit.put(f"tenant-{i:02d}")
    return kit


def _discovering(
    workdir: Path, server: OpenBaoServer, standin: MistralStandIn, kit: KeyKit, poll: str
) -> DaemonProcess:
    return configured_daemon(
        workdir,
        server,
        standin,
        kit,
        [],
        schedule={"poll_interval": poll, "verify_interval": "1h"},
        discover={
            "prefix": kit.prefix,
            "sinks": [{"type": "file", "path": str(workdir / "sinks" / "{name}.key")}],
        },
    )


def _wait_checked(daemon: DaemonProcess, names: list[str]) -> None:
    """Until every key was verified (alone, or as part of its first delivery)."""

    def checked() -> bool:
        seen = {e["key"] for e in daemon.events() if e.get("event") in VERIFIED}
        return set(names) <= seen

    daemon.wait_until(checked, 60, f"{len(names)} keys checked")


VERIFIED = ("key.verified", "key.rotated")


def _lists(made: list[tuple[str, str]]) -> int:
    return sum(1 for op, path in made if op == "list" and "/detailed-metadata/" in path)


def test_a_daemon_with_30_discovered_keys_asks_vault_once_a_poll_and_reads_only_what_moved(
    openbao_audited: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    server = openbao_audited
    kit = _tenants(server, mistral, 30)
    names = [f"tenant-{i:02d}" for i in range(30)]
    tag = kit.prefix.rpartition("/")[2]  # in the keys' paths and in their state's
    daemon = _discovering(tmp_path, server, mistral, kit, "1s").start()
    try:
        _wait_checked(daemon, names)
        since = _audit_size(server)
        wait_for(lambda: _lists(_requests(server, tag, since)) >= 3, 30, "three more polls")
        quiet = _requests(server, tag, since)
        # Nothing changed: each poll was one LIST, no key's metadata, secret or state read.
        assert quiet == [("list", f"secret/detailed-metadata/{kit.prefix}/")] * len(quiet)

        since = _audit_size(server)
        _, value = kit.put("tenant-03")
        wait_for(lambda: sink_file_of(tmp_path, "tenant-03") == value, 30, "the new key")
        moved = [(op, p) for op, p in _requests(server, tag, since) if "/detailed-" not in p]
        assert ("read", f"secret/data/{kit.prefix}/tenant-03") in moved
        assert {p.rpartition("/")[2] for _, p in moved} == {"tenant-03"}
    finally:
        daemon.stop()


def sink_file_of(workdir: Path, name: str) -> str | None:
    try:
        return (workdir / "sinks" / f"{name}.key").read_text().strip()
    except FileNotFoundError:
        return None


def test_a_daemon_whose_policy_refuses_detailed_metadata_reads_each_key_and_still_works(
    openbao_audited: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    server = openbao_audited
    kit = _tenants(server, mistral, 5)
    names = [f"tenant-{i:02d}" for i in range(5)]
    tag = kit.prefix.rpartition("/")[2]
    root = server.client()
    policy = f"no-detailed-{tag}"
    root.sys.create_or_update_policy(name=policy, policy=NO_DETAILED_METADATA)
    token = root.auth.token.create(policies=[policy], ttl="10m")["auth"]["client_token"]
    daemon = _discovering(tmp_path, server, mistral, kit, "1s")
    write_private(Path(daemon.config["vault"]["auth"]["token_file"]), token)
    daemon.start()
    try:
        _wait_checked(daemon, names)
        since = _audit_size(server)
        wait_for(
            lambda: (
                Counter(_requests(server, tag, since))[("list", f"secret/metadata/{kit.prefix}/")]
                >= 2
            ),
            30,
            "two more polls",
        )
        polled = {p for op, p in _requests(server, tag, since) if op == "read"}
        assert {f"secret/metadata/{kit.prefix}/{n}" for n in names} <= polled
        assert len(daemon.events("vault.detailed_list_denied")) == 1

        _, value = kit.put("tenant-02")
        wait_for(lambda: sink_file_of(tmp_path, "tenant-02") == value, 30, "the new key")
    finally:
        daemon.stop()
    assert _lists(_requests(server, tag)) == 1  # asked once, at the start


def test_a_restart_reads_each_key_state_and_secret_once(
    openbao_audited: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    server = openbao_audited
    kit = _tenants(server, mistral, 20)
    names = [f"tenant-{i:02d}" for i in range(20)]
    tag = kit.prefix.rpartition("/")[2]
    first = _discovering(tmp_path, server, mistral, kit, "1h").start()
    try:
        _wait_checked(first, names)
    finally:
        first.stop()
    since = _audit_size(server)
    (tmp_path / "again").mkdir()
    second = DaemonProcess(tmp_path / "again", first.config, token=first.token).start()
    try:
        _wait_checked(second, names)
        assert second.metric("mistral_key_active_version", key=names[-1]) == 1
    finally:
        second.stop()
    made = Counter(_requests(server, tag, since))
    state = first.config["vault"]["state_path"]
    for name in names:
        assert made[("read", f"secret/data/{state}/{name}")] == 1, name
        assert made[("read", f"secret/data/{kit.prefix}/{name}")] == 1, name
        # The state's identity check (was the secret deleted and created again?) takes the
        # secret's creation time from the folder list, as the poll takes its version.
        assert made[("read", f"secret/metadata/{kit.prefix}/{name}")] == 0, name
    assert not [p for op, p in made if op in ("create", "update")]  # nothing to write


def test_a_tenant_deleted_and_created_again_while_stopped_starts_afresh_at_the_restart(
    openbao_audited: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    """The identity check, fed by the folder list instead of a metadata read, still tells a
    new secret of the same name from the one the state describes."""
    server = openbao_audited
    kit = _tenants(server, mistral, 3)
    names = [f"tenant-{i:02d}" for i in range(3)]
    _, v2 = kit.put("tenant-01")
    first = _discovering(tmp_path, server, mistral, kit, "1h").start()
    try:
        _wait_checked(first, names)
        wait_for(lambda: sink_file_of(tmp_path, "tenant-01") == v2, 30, "version 2 delivered")
    finally:
        first.stop()
    server.client().secrets.kv.v2.delete_metadata_and_all_versions(path=kit.path("tenant-01"))
    _, again = kit.put("tenant-01")  # version 1 of a new secret; the state says 2
    (tmp_path / "again").mkdir()
    second = DaemonProcess(tmp_path / "again", first.config, token=first.token).start()
    try:
        second.wait_until(
            lambda: sink_file_of(tmp_path, "tenant-01") == again, 30, "the new secret's key"
        )
        reset = second.events("key.state_reset")
        assert {e["key"] for e in reset} == {"tenant-01"}
        assert reset[0]["previous_active_version"] == 2
    finally:
        second.stop()
