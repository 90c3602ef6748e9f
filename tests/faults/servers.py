"""An OpenBao that stays sealed when sealed, for the seal faults and the soak.

The shared raft fixture (``tests.fixtures.openbao``) uses a static seal, which unseals the
server again by itself within a few seconds of ``seal()``. This one is unsealed with a
Shamir key: sealed, it waits for :meth:`unseal`; restarted, it is unsealed on the way up.
"""

from __future__ import annotations

import time
from pathlib import Path

import hvac

from tests.fixtures.openbao import _RAFT_CONFIG, OpenBaoServer


class SealableOpenBao(OpenBaoServer):
    @classmethod
    def shamir(cls, workdir: Path) -> SealableOpenBao:
        server = cls(workdir, persistent=True)
        (workdir / "raft").mkdir(parents=True, exist_ok=True)
        config = _RAFT_CONFIG.split('seal "static"')[0].format(
            data=workdir / "raft", port=server.port, cluster_port=server.port + 1
        )
        (workdir / "server.hcl").write_text(config, encoding="utf-8")
        server.start()
        wait_kv_writable(server)
        return server

    def _initialize(self) -> None:
        answer = hvac.Client(url=self.url, token="").sys.initialize(
            secret_shares=1, secret_threshold=1
        )
        self.root_token = answer["root_token"]
        self.recovery_key = answer["keys"][0]  # what unseal() submits
        self.wait_ready()
        self.client().sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})

    def wait_ready(self, timeout: float = 20) -> None:
        """Unsealed and active; a server that came up sealed (a restart) is unsealed first."""
        if self.recovery_key is not None:
            self._wait_health(initialized=False, timeout=timeout)
            status = self.health()
            if status and status.get("sealed"):
                hvac.Client(url=self.url, token="").sys.submit_unseal_key(self.recovery_key)
        super().wait_ready(timeout)


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
