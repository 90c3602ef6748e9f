"""The hot reads on urllib3's pool (rotator/adapters/vault/direct.py) against a real OpenBao:
the namespace header, the deadline watchdog, a proxy from the environment, hvac's answers."""

from __future__ import annotations

import http.client
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import hvac
import pytest
from hvac import exceptions as hvac_exc

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.vault.direct import Answer
from rotator.adapters.vault.gateway import VaultStore
from rotator.domain.model import KeyState
from rotator.errors import VaultError
from tests.faults.proxy import FaultProxy
from tests.fixtures.openbao import OpenBaoServer, settings_for

KEY = "mk-direct-test-0123456789abQRST"


def metric(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_hot_reads_carry_the_namespace(openbao: OpenBaoServer, tmp_path: Path) -> None:
    namespace = f"direct-{secrets.token_hex(3)}"
    openbao.client().sys.create_namespace(path=namespace)
    inside = hvac.Client(url=openbao.url, token=openbao.root_token, namespace=namespace)
    inside.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    for _ in range(2):
        inside.secrets.kv.v2.create_or_update_secret(path="team/k", secret={"api_key": KEY})
    # Not in the root namespace: an answer proves the header went with each request.
    with pytest.raises(hvac_exc.InvalidPath):
        openbao.client().secrets.kv.v2.read_secret_metadata(path="team/k")

    store = VaultStore(settings_for(openbao, tmp_path, namespace=namespace), Metrics())
    try:
        secret = await store.read_secret("team/k")  # a version read, then none needed
        assert (secret.version, secret.api_key) == (2, KEY)
        assert (await store.read_secret("team/k", 1)).version == 1
        assert await store.current_version("team/k") == 2  # a metadata read
        listed = await store.scan_folder("team")  # a detailed-metadata page
        assert listed is not None and listed["k"].version == 2
        # The state: written with hvac, read back on the direct path, in the namespace.
        version = await store.write_state("k", KeyState(active_version=2), cas=0)
        state, read_version = await store.read_state("k")
        assert (state.active_version, state.namespace, read_version) == (2, namespace, version)
    finally:
        store.close()


async def test_a_namespace_typo_is_named_on_the_hot_path(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    metrics = Metrics()
    store = VaultStore(settings_for(openbao, tmp_path, namespace="no-such-ns"), metrics)
    try:
        for read in (store.read_secret("team/k"), store.current_version("team/k")):
            with pytest.raises(VaultError, match=r"namespace 'no-such-ns' not found"):
                await read
        assert metric(metrics, "rotator_vault_up") == 1  # Vault answered
    finally:
        store.close()


@pytest.fixture
def trickling(openbao: OpenBaoServer) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", openbao.port)) as proxy:
        yield proxy


async def test_hot_reads_end_at_the_deadline_when_vault_trickles(
    openbao: OpenBaoServer, tmp_path: Path, trickling: FaultProxy
) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path="mistral/direct-trickle/k", secret={"api_key": KEY}
    )
    metrics = Metrics()
    settings = settings_for(openbao, tmp_path, address=trickling.url, timeout_seconds=1)
    store = VaultStore(settings, metrics)
    try:
        assert (await store.read_secret("mistral/direct-trickle/k")).api_key == KEY
        trickling.trickle(0.3)  # a byte every 0.3 s: no single read waits the 1 s timeout
        reads = {
            "read_secret": lambda: store.read_secret("mistral/direct-trickle/k"),
            "current_version": lambda: store.current_version("mistral/direct-trickle/k"),
            "scan_folder": lambda: store.scan_folder("mistral/direct-trickle"),
        }
        for name, read in reads.items():
            reasons = []
            for _ in range(3):  # connections the proxy dropped to start trickling fail first
                started = time.monotonic()
                with pytest.raises(VaultError) as failure:
                    await read()
                took = time.monotonic() - started
                reasons.append(str(failure.value))
                if "timed out" in str(failure.value):
                    break
            assert "timed out" in reasons[-1], (name, reasons)
            assert "no complete answer within 1s" in reasons[-1], (name, reasons)
            assert took < 2.5, (name, took)  # the deadline, not the trickle's length
        assert metric(metrics, "rotator_vault_up") == 0
        trickling.passthrough()
        assert (await store.read_secret("mistral/direct-trickle/k")).api_key == KEY
        assert metric(metrics, "rotator_vault_up") == 1
    finally:
        store.close()


class _ForwardProxy(ThreadingHTTPServer):
    """A plain HTTP forward proxy: takes absolute-URL requests, records their request lines."""

    daemon_threads = True

    def __init__(self) -> None:
        self.lines: list[str] = []
        super().__init__(("127.0.0.1", 0), _Forward)


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ForwardProxy

    def _forward(self) -> None:
        self.server.lines.append(f"{self.command} {self.path}")
        target = urlsplit(self.path)
        if not target.scheme:
            self.send_error(400, "not a proxy request")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection",)}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_LIST = do_DELETE = _forward

    def log_message(self, *args: object) -> None:
        pass


async def test_hot_reads_take_the_proxy_from_the_environment(
    openbao: OpenBaoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path="mistral/direct-proxy/k", secret={"api_key": KEY}
    )
    proxy = _ForwardProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    store = VaultStore(settings_for(openbao, tmp_path), Metrics())
    try:
        assert (await store.read_secret("mistral/direct-proxy/k")).api_key == KEY
        assert await store.current_version("mistral/direct-proxy/k") == 1
        listed = await store.scan_folder("mistral/direct-proxy")
        assert listed is not None and set(listed) == {"k"}
    finally:
        store.close()
        proxy.shutdown()
        proxy.server_close()
    base = openbao.url
    assert f"GET {base}/v1/secret/data/mistral/direct-proxy/k" in proxy.lines
    assert f"GET {base}/v1/secret/metadata/mistral/direct-proxy/k" in proxy.lines
    assert f"LIST {base}/v1/secret/detailed-metadata/mistral/direct-proxy?limit=1000" in (
        proxy.lines
    )


async def test_answers_match_hvacs(openbao: OpenBaoServer, tmp_path: Path) -> None:
    """The same requests through hvac and on the pool: the same JSON, the same exceptions."""
    client = openbao.client()
    client.secrets.kv.v2.create_or_update_secret(
        path="mistral/direct-same/k", secret={"api_key": KEY}
    )
    store = VaultStore(settings_for(openbao, tmp_path), Metrics())
    try:
        await store.read_secret("mistral/direct-same/k")  # logged in
        direct = store._direct  # the object under test
        adapter = store._client.adapter
        url = "/v1/secret/data/mistral/direct-same/k"
        mine, theirs = direct.request("get", url), adapter.request("get", url)
        assert isinstance(mine, dict) and isinstance(theirs, dict)
        assert mine["data"] == theirs["data"]
        for bad in ("/v1/secret/data/mistral/direct-same/none", "/v1/no-mount/data/x"):
            with pytest.raises(hvac_exc.InvalidPath) as mine_exc:
                direct.request("get", bad)
            with pytest.raises(hvac_exc.InvalidPath) as theirs_exc:
                adapter.request("get", bad)
            assert mine_exc.value.errors == theirs_exc.value.errors
            assert str(mine_exc.value) == str(theirs_exc.value)
        listed = direct.request("list", "/v1/secret/metadata/nothing-here/", raise_exception=False)
        assert isinstance(listed, Answer) and listed.status_code == 404
        assert (
            listed.json()
            == adapter.request(
                "list", "/v1/secret/metadata/nothing-here/", raise_exception=False
            ).json()
        )
    finally:
        store.close()
