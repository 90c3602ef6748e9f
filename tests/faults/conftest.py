"""Fixtures of the fault-injection suite (``tests/faults``).

The suite runs in about three minutes on two cores; the tests marked ``slow`` (the
20-times SIGKILL loop) take most of it: ``pytest tests/faults -m "not slow"`` leaves them out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from rotator.demo.standin import MistralStandIn
from tests.faults.tools import Stack
from tests.fixtures.daemon import KeyKit
from tests.fixtures.openbao import _RAFT_CONFIG, OpenBaoServer


class SealableOpenBao(OpenBaoServer):
    """Raft storage unsealed with a Shamir key: once sealed it stays sealed until
    :meth:`unseal` (the shared fixture's static seal unseals itself within seconds)."""

    @classmethod
    def shamir(cls, workdir: Path) -> SealableOpenBao:
        server = cls(workdir, persistent=True)
        (workdir / "raft").mkdir(parents=True, exist_ok=True)
        config = _RAFT_CONFIG.split('seal "static"')[0].format(
            data=workdir / "raft", port=server.port, cluster_port=server.port + 1
        )
        (workdir / "server.hcl").write_text(config, encoding="utf-8")
        server.start()
        return server

    def _initialize(self) -> None:
        answer = hvac.Client(url=self.url, token="").sys.initialize(
            secret_shares=1, secret_threshold=1
        )
        self.root_token = answer["root_token"]
        self.recovery_key = answer["keys"][0]  # what unseal() submits
        self.client().sys.submit_unseal_key(self.recovery_key)
        self.wait_ready()
        self.client().sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})


def wait_kv_writable(server: OpenBaoServer, timeout: float = 15) -> None:
    """A fresh KV v2 mount refuses writes for a moment ("upgrading to versioned data")."""
    kv = server.client().secrets.kv.v2
    deadline = time.monotonic() + timeout
    while True:
        try:
            kv.create_or_update_secret(path="faults-probe", secret={"ready": "yes"})
            return
        except hvac.exceptions.InvalidRequest:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


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
        wait_kv_writable(server)
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
