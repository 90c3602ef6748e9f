"""The daemon's listeners for real: a ``rotator run`` subprocess against OpenBao and the
stand-in, its listeners found from its ``*.listening`` log events (a listener added later, such
as the intake page's, is covered once it logs one with its ``url``; it must answer
``/healthz``, or get its paths in ``HEALTH``).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import httpx
import pytest
import yaml

from rotator.cli.client import AdminClient, DaemonError
from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import DaemonProcess, KeyKit, configured_daemon, seeded
from tests.fixtures.openbao import OpenBaoServer
from tests.waiting import wait_for
from tests.web.certs import CA, Issued

HEALTH = {"admin": ["/healthz"], "metrics": ["/healthz", "/metrics"]}
IDLE_PER_LISTENER = 100
HOLD_S = 20.0


def listeners(daemon: DaemonProcess) -> dict[str, str]:
    """Every listener the daemon announced: its name (``admin`` for ``admin.listening``) and
    base URL."""
    found = {}
    for event in daemon.events():
        name = str(event.get("event", ""))
        if name.endswith(".listening") and ("url" in event or "address" in event):
            found[name.split(".")[0]] = event.get("url") or f"http://{event['address']}"
    return found


class IdleCrowd:
    """Keeps ``size`` connections that send nothing open to an address, opening a new one for
    each the server cuts, and records how long each cut one lived."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.size = size
        self.lifetimes: list[float] = []
        self._open: dict[socket.socket, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> IdleCrowd:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self._open:
            sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            while len(self._open) < self.size:
                sock = socket.create_connection(self.address, timeout=5)
                sock.setblocking(False)
                self._open[sock] = time.monotonic()
            readable, _, _ = select.select(list(self._open), [], [], 0.1)
            for sock in readable:
                try:
                    closed = sock.recv(1) == b""
                except (BlockingIOError, InterruptedError):
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    self.lifetimes.append(time.monotonic() - self._open.pop(sock))
                    sock.close()


@pytest.mark.slow
def test_issue11_defect1_idle_connections_starve_no_listener(
    daemon_factory: Any,
) -> None:
    """100 connections that send nothing on each listener, for 20 s, renewed as they are cut:
    every listener's health answer (and /metrics) still comes well within the 5 s an idle
    connection may hold a worker, each time."""
    daemon, _ = daemon_factory(seeded("alpha"))
    found = listeners(daemon)
    assert {"admin", "metrics"} <= set(found)
    slowest: dict[str, float] = {}
    crowds = [IdleCrowd(url, IDLE_PER_LISTENER) for url in found.values()]
    for crowd in crowds:
        crowd.__enter__()
    try:
        wait_for(lambda: all(len(c._open) == c.size for c in crowds), 10, "the idle crowds")
        ends = time.monotonic() + HOLD_S
        while time.monotonic() < ends:
            for name, url in found.items():
                for path in HEALTH.get(name, ["/healthz"]):
                    started = time.monotonic()
                    answer = httpx.get(url + path, timeout=5)
                    took = time.monotonic() - started
                    assert answer.status_code == 200, (name, path, answer.status_code)
                    slowest[f"{name}{path}"] = max(slowest.get(f"{name}{path}", 0), took)
            time.sleep(0.2)
    finally:
        for crowd in crowds:
            crowd.__exit__()
    print(f"\nslowest health answers under {IDLE_PER_LISTENER} idle connections: {slowest}")
    # A starved listener answers only when an idle connection is cut (5 s). Under a loaded
    # 2-core CI, a /metrics render alone took 1.3 s once, so the bound sits between the two.
    assert max(slowest.values()) < 2.5, slowest
    for url, crowd in zip(found.values(), crowds, strict=True):
        # Idle ones are cut after a few seconds (the 5 s read deadline), not at once.
        assert len(crowd.lifetimes) >= IDLE_PER_LISTENER, (url, len(crowd.lifetimes))
        assert min(crowd.lifetimes) > 3.0 and max(crowd.lifetimes) < 10.0, url


# --- TLS, basic auth, the CLI --------------------------------------------------------------


def refusal(client: AdminClient) -> str:
    """What the CLI would print for a refused call; its exit status is 2."""
    with pytest.raises(DaemonError) as caught:
        client.keys()
    assert caught.value.exit_code == 2
    return str(caught.value)


def _web(path: Path, served: Issued, hashed: str, **tls: Any) -> Path:
    section = {"cert_file": str(served.cert), "key_file": str(served.key), **tls}
    document = {"tls_server_config": section, "basic_auth_users": {"prometheus": hashed}}
    path.write_text(yaml.safe_dump(document))
    return path


def _context(ca: CA, client: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def test_tls_daemon_basic_auth_cli_and_a_reloaded_web_config(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    ca = CA(tmp_path / "pki")
    served = ca.issue("rotator")
    password = "pw-" + str(time.time_ns())
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = _web(tmp_path / "web.yml", served, hashed)
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("alpha")
    daemon = configured_daemon(
        tmp_path,
        openbao,
        mistral,
        kit,
        ["alpha"],
        server={"web_config_file": str(web)},
        intake={"listen": "127.0.0.1:0"},
    )
    daemon.verify = _context(ca)
    daemon.metrics_auth = ("prometheus", password)
    daemon.start()
    try:
        found = listeners(daemon)
        assert {"admin", "metrics", "intake"} <= set(found)
        intake = daemon.events("intake.listening")[-1]
        assert intake["public_url"] == found["intake"], "links must start with https://"
        assert httpx.get(f"{found['intake']}/healthz", verify=daemon.verify).status_code == 200
        for url in found.values():
            assert url.startswith("https://")
            with pytest.raises(httpx.TransportError):
                httpx.get(url.replace("https://", "http://") + "/healthz", timeout=5)
        metrics = found["metrics"]
        assert httpx.get(f"{metrics}/metrics", verify=daemon.verify).status_code == 401
        wrong = ("prometheus", "not-" + password)
        assert httpx.get(f"{metrics}/metrics", verify=daemon.verify, auth=wrong).status_code == 401
        assert daemon.events("metrics.auth_missing")[0]["caller"] == "127.0.0.1"
        assert daemon.events("metrics.auth_refused")[0]["caller"] == "127.0.0.1"
        assert daemon.metric("mistral_key_valid", key="alpha") == 1
        assert httpx.get(f"{metrics}/healthz", verify=daemon.verify).status_code == 200

        # The CLI verifies the daemon: with the CA it works, without it says what is wrong.
        ok = daemon.cli("status", "--ca-cert", str(ca.cert))
        assert ok.returncode == 0, ok.stderr
        assert "alpha" in ok.stdout
        unknown = daemon.cli("status")
        assert unknown.returncode == 2
        assert "not signed by a CA this client trusts" in unknown.stderr
        assert "--ca-cert" in unknown.stderr
        # The rest in-process (the CLI's own client, without a Python start-up each time).
        plain_url = daemon.admin_url.replace("https://", "http://")
        assert "use https://" in refusal(AdminClient(plain_url, daemon.token))

        # Client certificates required from now on: the new file is taken without a restart.
        clients = CA(tmp_path / "clients", "clients-ca")
        ops = clients.issue("ops", client=True)
        _web(
            web,
            served,
            hashed,
            client_ca_file=str(clients.cert),
            client_auth_type="RequireAndVerifyClientCert",
        )
        daemon.verify = _context(ca, ops)

        def anonymous_refused() -> bool:
            try:
                httpx.get(f"{daemon.admin_url}/healthz", verify=_context(ca), timeout=5)
            except httpx.TransportError:
                return True
            return False

        wait_for(anonymous_refused, 15, "client certificates to be required")
        anonymous = AdminClient(daemon.admin_url, daemon.token, ca_cert=ca.cert)
        assert "wants a client certificate" in refusal(anonymous)
        foreign = CA(tmp_path / "other", "other-ca").issue("intruder", client=True)
        intruder = AdminClient(
            daemon.admin_url,
            daemon.token,
            ca_cert=ca.cert,
            client_cert=foreign.cert,
            client_key=foreign.key,
        )
        assert "refused this client's certificate" in refusal(intruder)
        # The CLI with everything from the environment: CA, client certificate and key.
        env = {
            "ROTATOR_CA_CERT": str(ca.cert),
            "ROTATOR_CLIENT_CERT": str(ops.cert),
            "ROTATOR_CLIENT_KEY": str(ops.key),
        }
        accepted = daemon.cli("verify", "alpha", env=env)
        assert accepted.returncode == 0, accepted.stderr
        ops_client = AdminClient(
            daemon.admin_url,
            daemon.token,
            ca_cert=ca.cert,
            client_cert=ops.cert,
            client_key=ops.key,
        )

        # A broken file keeps the settings in force; it is logged and counted once.
        web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "x", "key_file": "y"}}))
        wait_for(
            lambda: daemon.metric("rotator_web_config_reload_errors_total") == 1,
            15,
            "the reload error to be counted",
        )
        assert daemon.metric("rotator_web_config_last_reload_successful") == 0
        (failed,) = daemon.events("web_config.reload_failed")
        assert "tls_server_config.cert_file: cannot read" in failed["problem"]
        assert [k["name"] for k in ops_client.keys()["keys"]] == ["alpha"]
    finally:
        daemon.stop()
    assert password not in daemon.output()
    assert hashed not in daemon.output()


def test_a_bad_web_config_file_stops_the_daemon_with_exit_2_naming_the_field(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    served = CA(tmp_path / "pki").issue("rotator")
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(served.cert),
                    "key_file": str(served.key),
                    "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"],
                }
            }
        )
    )
    kit = KeyKit(openbao, mistral, kv_prefix)
    kit.put("alpha")
    daemon = configured_daemon(
        tmp_path, openbao, mistral, kit, ["alpha"], server={"web_config_file": str(web)}
    )
    with pytest.raises(RuntimeError, match=r"exited \(2\)"):
        daemon.start(timeout=30)
    assert (
        f"server.web_config_file ({web}): tls_server_config.cipher_suites: "
        "[0] 'TLS_RSA_WITH_RC4_128_SHA' is not a cipher suite"
    ) in daemon.output()
