"""The daemon's own process cut short: SIGKILL at random points of a rotation, twenty times
in a row, and SIGTERM in the middle of one.

One key with three sinks: a file, an HTTP endpoint whose answers come back slowly (a real
loopback receiver behind a :class:`~tests.faults.proxy.FaultProxy` that delays them, which
widens the window between the first and the last sink), and a second file. Each run stages a
new version in Vault, kills the daemon after a random delay (or right when the endpoint got
the new key: certainly mid-rotation), starts a new one and waits for it to settle.

What must hold after every restart: the state in Vault, both files and the endpoint's last
request agree on one version, the newest; the restarted daemon delivered nothing older than
the version the state recorded as active when the old one died; no lease is left behind.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rotator.app.daemon import STOP_TIMEOUT_S
from tests.faults.proxy import FaultProxy
from tests.faults.tools import Stack, read_key, sigkill
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.receiver import Receiver

RUNS = 20
BODY = '{"key": "{name}", "version": {version}, "api_key": "{api_key}"}'
# The lease outlives a rotation (well under a second here) with room to spare, and is short
# enough that a restart after a kill mid-rotation does not wait long for it to run out.
ROTATION = {"lease": "2s", "retry_backoff": "0.5s", "max_backoff": "1s"}


@pytest.fixture
def slow_endpoint(receiver: Receiver) -> Iterator[FaultProxy]:
    host, port = receiver.url.removeprefix("http://").rsplit(":", 1)
    with FaultProxy((host, int(port))) as proxy:
        proxy.delay(0.3)
        yield proxy


@dataclass
class World:
    stack: Stack
    receiver: Receiver
    config: dict[str, Any]
    values: dict[int, str] = field(default_factory=dict)
    """Version -> key value."""

    @property
    def files(self) -> list[Path]:
        return [Path(self.config["keys"][0]["sinks"][i]["path"]) for i in (0, 2)]

    def received(self) -> list[tuple[int, str]]:
        return [(r.json()["version"], r.json()["api_key"]) for r in self.receiver.requests]

    def state(self) -> dict[str, Any]:
        return self.stack.state(self.config, "portal")

    def agreed(self) -> int | None:
        """The version every sink and the state hold, once no rotation is under way."""
        state = self.state()
        active = state.get("active_version")
        if active is None or "pending_version" in state:
            return None
        value = self.values[active]
        if any(read_key(f) != value for f in self.files):
            return None
        if self.received()[-1:] != [(active, value)]:
            return None
        return int(active)


@pytest.fixture
def world(stack: Stack, receiver: Receiver, slow_endpoint: FaultProxy) -> World:
    config = stack.config(["portal"], rotation=ROTATION)
    sinks = stack.workdir / "sinks"
    config["keys"][0]["sinks"] = [
        {"type": "file", "path": str(sinks / "first.key")},
        {
            "type": "http",
            "url": f"{slow_endpoint.url}/mistral-key",
            "method": "PUT",
            "body": BODY,
            "timeout_seconds": 10,
        },
        {"type": "file", "path": str(sinks / "last.key")},
    ]
    version, value = stack.kit.put("portal")
    return World(stack, receiver, config, {version: value})


def settle(world: World, daemon: DaemonProcess, version: int, timeout: float = 15) -> None:
    daemon.wait_until(lambda: world.agreed() == version, timeout, f"every sink at v{version}")


@pytest.mark.slow
def test_sigkill_at_random_points_of_a_rotation_twenty_times(world: World) -> None:
    seed = int(os.environ.get("FAULTS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    daemon = world.stack.start(world.config)
    settle(world, daemon, 1)
    landed = {"before": 0, "mid": 0, "after": 0}

    for run in range(1, RUNS + 1):
        where = f"run {run} (FAULTS_SEED={seed})"
        version, value = world.stack.kit.put("portal")
        world.values[version] = value
        sent = len(world.receiver.requests)
        if run % 3 == 0:  # for certain mid-rotation: the endpoint holds the new key
            daemon.wait_until(lambda n=sent: len(world.receiver.requests) > n, 10, where)
        else:
            time.sleep(rng.uniform(0, 1.6))
        sigkill(daemon)
        at_kill = world.state()
        active_at_kill = int(at_kill["active_version"])
        landed[phase(at_kill, version)] += 1

        daemon = world.stack.start(world.config, checked=False)
        settle(world, daemon, version)
        delivered = [e["version"] for e in daemon.events("sink.delivered")]
        assert all(v >= active_at_kill for v in delivered), f"{where}: delivered {delivered}"
        assert world.state()["active_version"] == version, where
        assert daemon.metric("mistral_key_active_version", key="portal") == version, where

    print(f"kills landed {landed} (FAULTS_SEED={seed})")
    assert landed["mid"] >= RUNS // 3
    # The endpoint never heard of an older version after a newer one.
    heard = [v for v, _ in world.received()]
    assert all(b >= a for a, b in itertools.pairwise(heard)), heard
    world.stack.assert_no_key_leaked()


def phase(state: dict[str, Any], version: int) -> str:
    if state["active_version"] == version:
        return "after"
    return "mid" if state.get("pending_version") == version else "before"


def test_sigterm_mid_rotation_completes_or_puts_back_within_the_grace_period(
    world: World, slow_endpoint: FaultProxy
) -> None:
    slow_endpoint.delay(1.5)  # the endpoint takes 3 s to answer (two chunks)
    daemon = world.stack.start(world.config)
    settle(world, daemon, 1)
    version, value = world.stack.kit.put("portal")
    world.values[version] = value
    sent = len(world.receiver.requests)
    daemon.wait_until(lambda: len(world.receiver.requests) > sent, 10, "v2 at the endpoint")
    assert read_key(world.files[0]) == value and read_key(world.files[1]) == world.values[1]

    started = time.monotonic()
    process = daemon._process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    code = process.wait(15)
    stopped_in = time.monotonic() - started

    assert code == 0, daemon.tail()
    assert stopped_in < 10, f"took {stopped_in:.1f}s to stop"
    # Completed (all at 2) or put back (all at 1): either way, no lease left, all agree.
    agreed = world.agreed()
    assert agreed in (1, 2), (world.state(), [read_key(f) for f in world.files])
    assert [e["event"] for e in daemon.events()][-1] == "rotator.stopped"
    world.stack.assert_no_key_leaked()


@pytest.mark.slow
def test_sigterm_mid_rotation_longer_than_the_grace_period_is_finished_by_the_next_start(
    world: World, slow_endpoint: FaultProxy
) -> None:
    daemon = world.stack.start(world.config)
    settle(world, daemon, 1)
    slow_endpoint.delay(10)  # the endpoint answers after 10 s: past the 8 s grace period
    version, value = world.stack.kit.put("portal")
    world.values[version] = value
    sent = len(world.receiver.requests)
    daemon.wait_until(lambda: len(world.receiver.requests) > sent, 10, "v2 at the endpoint")

    started = time.monotonic()
    code = daemon.stop(timeout=30)
    stopped_in = time.monotonic() - started
    assert code == 0, daemon.tail()
    assert stopped_in < STOP_TIMEOUT_S + 3, f"took {stopped_in:.1f}s to stop"
    # Cut short like a SIGKILL: the lease is left for the next start to clear.
    assert world.state().get("pending_version") == 2

    slow_endpoint.delay(0)
    restarted = world.stack.start(world.config, checked=False)
    settle(world, restarted, 2)
    world.stack.assert_no_key_leaked()
