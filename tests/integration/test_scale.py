"""A fleet of discovered tenants' keys against the real OpenBao and the stand-in: the load
on Mistral stays within the configured bounds.

``test_discovery.py`` covers 200 discovered keys, a tenant added and one deleted while the
daemon runs, and the request rate. These add, for a running daemon rather than the verifier
alone: a 429's Retry-After pauses every tenant, the concurrency limit holds, and later
verifications are spread over ``verify_interval`` instead of firing together; and a
daemon with ``server.metrics_per_key: compact`` exports one status series a tenant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, assert_no_key_in, configured_daemon
from tests.fixtures.openbao import OpenBaoServer


def _fleet_daemon(
    tmp_path: Path,
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kit: KeyKit,
    *,
    mistral_settings: dict[str, Any],
    schedule: dict[str, Any] | None = None,
) -> DaemonProcess:
    """A daemon discovering every tenant under ``kit.prefix`` (no static keys)."""
    return configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        [],
        schedule=schedule,
        mistral=mistral_settings,
        discover={"prefix": kit.prefix},
    ).start()


def _all_valid(daemon: DaemonProcess, count: int) -> bool:
    answer = daemon.api("GET", "/api/v1/keys")
    keys = answer.json()["keys"]
    return len(keys) == count and all(k["status"] == "valid" for k in keys)


def test_a_429_with_retry_after_pauses_every_tenant_for_that_long(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    tenants = 60
    # One tenant's key draws a 429 asking for 2 s; every other key must wait them out too.
    _, limited = kit.put("tenant-000", "seq:rate-limited:2,valid")
    for i in range(1, tenants):
        kit.put(f"tenant-{i:03d}", "valid")
    daemon = _fleet_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        mistral_settings={"max_requests_per_second": 20, "max_concurrency": 4, "retries": 1},
    )
    try:
        daemon.wait_until(lambda: _all_valid(daemon, tenants), 60, "every tenant valid")
    finally:
        daemon.stop()
    requests = sorted(mistral.requests, key=lambda r: r.at)
    first_429 = next(r.at for r in requests if r.fingerprint == limited[-4:])
    # Requests already past the pacer when the 429 arrived may land just after it.
    grace = 0.3
    during = [r for r in requests if first_429 + grace < r.at < first_429 + 2.0 - 0.05]
    after = [r for r in requests if r.at >= first_429 + 2.0 - 0.05]
    assert during == [], f"{len(during)} requests during the 2 s pause"
    assert len(after) >= 10, "the pause came too late to hold anything back"
    retried = [r.at for r in requests if r.fingerprint == limited[-4:]]
    assert len(retried) == 2 and retried[1] - retried[0] >= 1.95
    assert_no_key_in([daemon.output()], kit.values)


def test_concurrent_requests_never_exceed_max_concurrency(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    tenants = 80
    for i in range(tenants):
        kit.put(f"tenant-{i:03d}", "valid")
    mistral.latency = 0.2
    daemon = _fleet_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        mistral_settings={"max_requests_per_second": 1000, "max_concurrency": 4},
    )
    try:
        daemon.wait_until(lambda: _all_valid(daemon, tenants), 60, "every tenant valid")
    finally:
        daemon.stop()
    assert mistral.count() >= tenants
    # Reached, so the bound is what held the fleet back, and never passed.
    assert mistral.max_in_flight == 4


def test_later_verifications_are_spread_over_the_verify_interval(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    tenants, interval = 60, 12.0
    for i in range(tenants):
        kit.put(f"tenant-{i:03d}", "valid")
    daemon = _fleet_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        mistral_settings={"max_requests_per_second": 1000, "max_concurrency": 8},
        schedule={"poll_interval": "1h", "verify_interval": f"{interval:g}s"},
    )
    try:
        daemon.wait_until(lambda: _all_valid(daemon, tenants), 60, "every tenant valid")
        first_sweep = mistral.count()
        started = max(r.at for r in mistral.requests)
        # Each key's next check falls within the interval (plus its jitter) after the first.
        daemon.wait_until(
            lambda: mistral.count() >= first_sweep + tenants, interval * 1.5, "second checks"
        )
    finally:
        daemon.stop()
    later = sorted(r.at for r in mistral.requests if r.at > started)[:tenants]
    span = later[-1] - later[0]
    busiest = max(sum(1 for t in later if s <= t < s + 1.0) for s in later)
    # Fired together they would all land within a second; spread, they take most of the
    # interval and no second holds more than a fraction of them.
    assert span >= interval / 2, f"60 checks within {span:.1f}s"
    assert busiest <= tenants // 3, f"{busiest} checks within one second"


def test_compact_metrics_give_each_tenant_one_status_series(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("tenant-good", "valid")
    kit.put("tenant-unpaid", "billing")
    daemon = configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        [],
        server={"metrics_per_key": "compact"},
        discover={"prefix": kit.prefix},
    ).start()
    try:
        daemon.wait_until(
            lambda: daemon.metric("mistral_key_status_code", key="tenant-unpaid") == 2,
            30,
            "the billing-blocked tenant's code",
        )
        assert daemon.metric("mistral_key_status_code", key="tenant-good") == 0
        assert daemon.metric("mistral_key_status", key="tenant-good") is None
        assert daemon.metric("mistral_key_valid", key="tenant-unpaid") == 0
        assert (
            daemon.metric("mistral_key_rotations_total", key="tenant-good", result="rejected") == 0
        )
    finally:
        daemon.stop()
