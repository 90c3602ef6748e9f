"""Fixtures of the fault-injection suite (``tests/faults``).

One file per neighbour of the daemon (Vault, Mistral, sinks, its own process, the data in
Vault); every test runs the real daemon as a subprocess. The whole suite takes about 2 min
45 s on two cores; the tests marked ``slow`` (the 20-times SIGKILL loop, a SIGTERM that
outlasts the grace period) take about 70 s of it: ``pytest tests/faults -m "not slow"``
leaves them out. ``FAULTS_SEED=N`` replays the SIGKILL loop's random kill delays.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.faults.servers import SealableOpenBao, wait_kv_writable
from tests.faults.tools import Stack
from tests.fixtures.daemon import KeyKit
from tests.fixtures.openbao import OpenBaoServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a long fault test (loops, long waits)")


@pytest.fixture
def stack(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> Iterator[Stack]:
    """The session OpenBao (root token), a stand-in, keys under this test's own prefix."""
    world = Stack(openbao, mistral, KeyKit(openbao, mistral, kv_prefix), tmp_path)
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def sealable_stack(
    mistral: MistralStandIn, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> Iterator[Stack]:
    """A persistent OpenBao of the test's own that stays sealed when sealed."""
    server = SealableOpenBao.shamir(tmp_path_factory.mktemp("openbao-shamir"))
    try:
        world = Stack(server, mistral, KeyKit(server, mistral, "mistral/faults"), tmp_path)
        try:
            yield world
        finally:
            world.close()
    finally:
        server.stop()


@pytest.fixture
def raft_stack(
    openbao_raft: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> Iterator[Stack]:
    """A persistent OpenBao of the test's own, free to seal, restart and kill."""
    wait_kv_writable(openbao_raft)
    world = Stack(openbao_raft, mistral, KeyKit(openbao_raft, mistral, "mistral/faults"), tmp_path)
    try:
        yield world
    finally:
        world.close()
