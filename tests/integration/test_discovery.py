"""Discovery of tenant keys under a prefix, with Mistral's budget respected (real servers)."""

from __future__ import annotations

from pathlib import Path

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import KeyKit, assert_no_key_in, configured_daemon
from tests.fixtures.openbao import OpenBaoServer

TENANTS = 200
RATE = 40


def _max_per_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_discovers_200_tenants_follows_adds_and_deletes_within_the_rate_limit(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    for i in range(TENANTS):
        kit.put(f"tenant-{i:03d}", "valid")
    kit.put("Not_A_Valid_Name", "valid")
    daemon = configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        [],
        schedule={"poll_interval": "2s", "verify_interval": "1h"},
        mistral={"max_requests_per_second": RATE},
        discover={
            "prefix": kit.prefix,
            "sinks": [{"type": "file", "path": str(tmp_path / "sinks" / "{name}.key")}],
        },
    ).start()
    try:
        daemon.wait_until(
            lambda: daemon.metric("rotator_keys_managed") == TENANTS, 30, "200 keys managed"
        )
        daemon.wait_until(
            lambda: len(list((tmp_path / "sinks").glob("tenant-*.key"))) == TENANTS,
            60,
            "every tenant's file sink written",
        )
        assert (tmp_path / "sinks" / "tenant-007.key").read_text().strip() == kit.values[7]
        assert daemon.events("discover.skipped")[0]["name"] == "Not_A_Valid_Name"

        # A tenant added and one deleted while the daemon runs.
        kit.put("tenant-new", "valid")
        openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(path=kit.path("tenant-000"))
        daemon.wait_until(
            lambda: daemon.metric("mistral_key_status", key="tenant-new", status="valid") == 1,
            30,
            "the new tenant verified",
        )
        daemon.wait_until(
            lambda: daemon.metric("mistral_key_status", key="tenant-000", status="valid") is None,
            30,
            "the deleted tenant's series removed",
        )
        assert daemon.metric("rotator_keys_managed") == TENANTS
        assert daemon.metric("mistral_key_expiry_timestamp_seconds", key="tenant-000") is None
        # The first listing is one line with a count (200 lines said nothing more); a tenant
        # that arrives later is named.
        added = daemon.events("discover.added")
        assert [e.get("count") for e in added if "count" in e] == [TENANTS]
        assert [e["key"] for e in added if "key" in e] == ["tenant-new"]
    finally:
        daemon.stop()
    times = [r.at for r in mistral.requests]
    assert len(times) >= TENANTS
    # The pacer spaces request starts 1/RATE apart; allow one for a window's edge.
    assert _max_per_second(times) <= RATE + 1
    assert_no_key_in([daemon.output()], kit.values)
