"""Logging in, renewing and logging in again, with the shipped least-privilege policy."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hvac
import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.vault.auth import Authenticator, CredentialsError
from rotator.adapters.vault.gateway import VaultStore
from rotator.config.vault import KubernetesAuth, TokenAuth
from rotator.domain.model import KeyState
from rotator.errors import VaultError, VaultPermissionDenied
from tests.faults.proxy import FaultProxy
from tests.fixtures.openbao import (
    ROTATOR_POLICY,
    OpenBaoServer,
    create_approle,
    settings_for,
    write_private,
)
from tests.waiting import wait_for

KEY = "mk-auth-test-0123456789abLMNO"
Events = Callable[[], list[dict[str, Any]]]


def metric(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == name]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def store_for(
    openbao: OpenBaoServer, tmp_path: Path, metrics: Metrics
) -> Iterator[Callable[..., VaultStore]]:
    stores: list[VaultStore] = []

    def make(auth: object) -> VaultStore:
        store = VaultStore(settings_for(openbao, tmp_path, auth=auth), metrics)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


async def test_shipped_policy_allows_what_the_daemon_does_and_nothing_else(
    openbao: OpenBaoServer,
    tmp_path: Path,
    put_key: Callable[..., int],
    kv_prefix: str,
    store_for: Callable[..., VaultStore],
    metrics: Metrics,
    captured_log: Events,
) -> None:
    put_key(f"{kv_prefix}/tenants/acme", KEY)
    store = store_for(create_approle(openbao, tmp_path))

    assert (await store.read_secret(f"{kv_prefix}/tenants/acme")).api_key == KEY
    assert await store.latest_version(f"{kv_prefix}/tenants/acme") == 1
    assert await store.list_names(f"{kv_prefix}/tenants/") == ["acme"]
    _state, cas = await store.read_state(f"policy-{kv_prefix[-8:]}")
    await store.write_state(f"policy-{kv_prefix[-8:]}", KeyState(active_version=1), cas)
    await store.write_kv("secret", f"portal/{kv_prefix[-8:]}", {"api_key": KEY})
    assert await store.read_kv("secret", f"portal/{kv_prefix[-8:]}") == {"api_key": KEY}
    assert await store.ready() == (True, "ok")
    errors_before = metric(metrics, "rotator_errors_total", component="vault") or 0

    # The daemon never writes keys, nor reads outside its paths.
    with pytest.raises(VaultPermissionDenied) as denied:
        await store.write_secret(f"{kv_prefix}/tenants/acme", {"api_key": KEY}, cas=1)
    assert str(denied.value) == f"permission denied on secret/data/{kv_prefix}/tenants/acme"
    with pytest.raises(VaultPermissionDenied, match="secret/metadata/other/thing"):
        await store.latest_version("other/thing")

    # Vault answered: it is up. The refusal is counted and logged with the path.
    assert metric(metrics, "rotator_vault_up") == 1
    assert metric(metrics, "rotator_errors_total", component="vault") == errors_before + 2
    logged = named(captured_log(), "vault.permission_denied")
    assert [e["path"] for e in logged][-1] == "secret/metadata/other/thing"
    assert KEY not in json.dumps(captured_log())


async def test_short_lived_approle_token_is_renewed_then_replaced(
    openbao: OpenBaoServer,
    tmp_path: Path,
    put_key: Callable[..., int],
    kv_prefix: str,
    store_for: Callable[..., VaultStore],
    metrics: Metrics,
    captured_log: Events,
) -> None:
    put_key(f"{kv_prefix}/k", KEY)
    auth = create_approle(openbao, tmp_path, token_ttl="5s", token_max_ttl="15s")
    store = store_for(auth)

    started = time.monotonic()
    while time.monotonic() - started < 25:
        await store.maintain_token()
        assert (await store.read_secret(f"{kv_prefix}/k")).api_key == KEY
        expiry = metric(metrics, "rotator_vault_token_expiry_timestamp_seconds") or 0
        assert time.time() < expiry <= time.time() + 5.5
        await asyncio.sleep(1)

    events = captured_log()
    renewals = named(events, "vault.auth_renewed")
    logins = named(events, "vault.login")
    assert renewals, "the token was never renewed"
    assert any(r["max_ttl_reached"] for r in renewals)
    assert len(logins) >= 2, "no fresh login once the max TTL capped renewals"
    assert {e["method"] for e in logins} == {"approle"}
    assert not named(events, "vault.permission_denied")
    assert metric(metrics, "rotator_vault_up") == 1


async def test_revoked_token_logs_in_again_with_a_rotated_secret_id(
    openbao: OpenBaoServer,
    tmp_path: Path,
    put_key: Callable[..., int],
    kv_prefix: str,
    store_for: Callable[..., VaultStore],
    captured_log: Events,
) -> None:
    put_key(f"{kv_prefix}/k", KEY)
    auth = create_approle(openbao, tmp_path)
    store = store_for(auth)
    await store.read_secret(f"{kv_prefix}/k")
    root = openbao.client()
    role = auth.role_id_file.stem
    root.auth.token.revoke_accessor(_accessor_of_role(root, role))
    # The operator rotates the secret id in the file and destroys the old one.
    old_secret_id = auth.secret_id_file.read_text().strip()
    new = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    write_private(auth.secret_id_file, new)
    root.auth.approle.destroy_secret_id(role, old_secret_id)

    assert (await store.read_secret(f"{kv_prefix}/k")).api_key == KEY
    assert len(named(captured_log(), "vault.login")) == 2


def _accessor_of_role(root: Any, role: str) -> str:
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        meta = root.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
        if meta.get("role_name") == role:
            return str(accessor)
    raise AssertionError(f"no token of role {role}")


async def test_token_from_file_is_read_again_after_revocation(
    openbao: OpenBaoServer,
    tmp_path: Path,
    put_key: Callable[..., int],
    kv_prefix: str,
    store_for: Callable[..., VaultStore],
    metrics: Metrics,
) -> None:
    put_key(f"{kv_prefix}/k", KEY)
    root = openbao.client()
    root.sys.create_or_update_policy("rotator-shipped", ROTATOR_POLICY)
    token_file = write_private(tmp_path / "token", _child_token(root))
    store = store_for(TokenAuth(token_file=token_file))
    await store.maintain_token()
    assert metric(metrics, "rotator_vault_token_expiry_timestamp_seconds") == pytest.approx(
        time.time() + 3600, abs=10
    )

    root.auth.token.revoke(token_file.read_text().strip())
    with pytest.raises(VaultPermissionDenied, match="auth/token/lookup-self"):
        await store.read_secret(f"{kv_prefix}/k")
    # An agent (or an operator) puts a new token in the file: picked up without a restart.
    write_private(token_file, _child_token(root))
    assert (await store.read_secret(f"{kv_prefix}/k")).api_key == KEY


def _child_token(root: Any, ttl: str = "1h", explicit_max_ttl: str | None = None) -> str:
    answer = root.auth.token.create(
        policies=["rotator-shipped"],
        ttl=ttl,
        explicit_max_ttl=explicit_max_ttl,
        no_default_policy=True,
    )
    return str(answer["auth"]["client_token"])


async def test_given_token_is_renewed_to_its_max_then_replaced_from_its_file(
    openbao: OpenBaoServer,
    tmp_path: Path,
    put_key: Callable[..., int],
    kv_prefix: str,
    store_for: Callable[..., VaultStore],
    captured_log: Events,
) -> None:
    put_key(f"{kv_prefix}/k", KEY)
    root = openbao.client()
    root.sys.create_or_update_policy("rotator-shipped", ROTATOR_POLICY)
    token_file = write_private(tmp_path / "token", _child_token(root, "3s", "5s"))
    store = store_for(TokenAuth(token_file=token_file))

    started = time.monotonic()
    replaced = False
    while time.monotonic() - started < 7:
        if not replaced and time.monotonic() - started > 3.5:
            # What an agent does: a new token in the file before the old one runs out.
            write_private(token_file, _child_token(root))
            replaced = True
        await store.maintain_token()
        assert (await store.read_secret(f"{kv_prefix}/k")).api_key == KEY
        await asyncio.sleep(0.25)

    events = captured_log()
    renewals = named(events, "vault.auth_renewed")
    assert [r["max_ttl_reached"] for r in renewals][-1] is True
    assert sum(r["max_ttl_reached"] for r in renewals) == 1, "renewed again past its max TTL"
    assert [(e["method"], e["ttl"]) for e in named(events, "vault.login")] == [
        ("token", 3),
        ("token", 3600),
    ]
    assert not named(events, "vault.permission_denied")


async def test_root_token_never_expires(
    openbao: OpenBaoServer, tmp_path: Path, store_for: Callable[..., VaultStore], metrics: Metrics
) -> None:
    store = store_for(TokenAuth(token_file=write_private(tmp_path / "t", openbao.root_token)))
    await store.maintain_token()
    assert await store.ready() == (True, "ok")
    assert metric(metrics, "rotator_vault_token_expiry_timestamp_seconds") == 0


async def test_token_from_environment(
    openbao: OpenBaoServer,
    store_for: Callable[..., VaultStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    assert await store_for(TokenAuth()).ready() == (True, "ok")
    monkeypatch.delenv("VAULT_TOKEN")
    other = store_for(TokenAuth())
    with pytest.raises(CredentialsError, match=r"set vault.auth.token_file or \$VAULT_TOKEN"):
        await other.latest_version("mistral/anything")


async def test_wrong_secret_id_is_a_denied_login(
    openbao: OpenBaoServer,
    tmp_path: Path,
    store_for: Callable[..., VaultStore],
    metrics: Metrics,
) -> None:
    auth = create_approle(openbao, tmp_path)
    write_private(auth.secret_id_file, "00000000-0000-0000-0000-000000000000")
    store = store_for(auth)
    with pytest.raises(VaultPermissionDenied, match="auth/approle/login"):
        await store.latest_version("mistral/anything")
    ready, reason = await store.ready()
    assert not ready and "auth/approle/login" in reason
    assert metric(metrics, "rotator_vault_up") == 1


async def test_credentials_files_missing_empty_or_readable_by_others(
    openbao: OpenBaoServer,
    tmp_path: Path,
    store_for: Callable[..., VaultStore],
    captured_log: Events,
) -> None:
    auth = create_approle(openbao, tmp_path)
    auth.secret_id_file.chmod(0o644)
    assert (await store_for(auth).ready())[0]
    warned = named(captured_log(), "vault.credentials_file_readable")
    assert [(w["path"], w["mode"]) for w in warned] == [(str(auth.secret_id_file), "0o644")]

    missing = auth.model_copy(update={"role_id_file": tmp_path / "nope"})
    with pytest.raises(CredentialsError, match=f"cannot read AppRole role id {tmp_path}/nope"):
        await store_for(missing).latest_version("mistral/x")
    write_private(auth.secret_id_file, "")
    with pytest.raises(CredentialsError, match=r"AppRole secret id .* is empty"):
        await store_for(auth).latest_version("mistral/x")
    assert issubclass(CredentialsError, VaultError)


# --- Kubernetes ----------------------------------------------------------------------------
#
# OpenBao checks a service-account JWT by asking the Kubernetes API (TokenReview). A small
# real HTTP server stands in for that one endpoint: it accepts exactly the token it issued.
# What this cannot show is a real cluster signing and projecting the token.


class _TokenReview(BaseHTTPRequestHandler):
    accepted = ""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = body["spec"]["token"] == self.accepted
        user = {"username": "system:serviceaccount:ops:rotator", "uid": "uid-1"}
        status = {"authenticated": True, "user": user} if ok else {"authenticated": False}
        out = json.dumps({"kind": "TokenReview", "status": status}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_: object) -> None:
        pass


def _jwt() -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:ops:rotator",
        "kubernetes.io/serviceaccount/namespace": "ops",
        "kubernetes.io/serviceaccount/service-account.name": "rotator",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def kubernetes_auth(openbao: OpenBaoServer, tmp_path: Path) -> Iterator[KubernetesAuth]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the CA certificate OpenBao's config demands")
    subprocess.run(
        [
            *["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=test-k8s"],
            *["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            *["-keyout", str(tmp_path / "ca.key"), "-out", str(tmp_path / "ca.pem")],
        ],
        check=True,
        capture_output=True,
    )
    jwt = _jwt()
    handler = type("Review", (_TokenReview,), {"accepted": jwt})
    api = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    mount = f"k8s-{tmp_path.name[-12:].strip('_')}"
    root = openbao.client()
    root.sys.enable_auth_method("kubernetes", path=mount)
    root.auth.kubernetes.configure(
        kubernetes_host=f"http://127.0.0.1:{api.server_address[1]}",
        kubernetes_ca_cert=(tmp_path / "ca.pem").read_text(),
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    root.sys.create_or_update_policy("rotator-shipped", ROTATOR_POLICY)
    root.auth.kubernetes.create_role(
        "rotator",
        bound_service_account_names=["rotator"],
        bound_service_account_namespaces=["ops"],
        policies=["rotator-shipped"],
        ttl="1h",
        mount_point=mount,
    )
    token_file = write_private(tmp_path / "sa-token", jwt)
    yield KubernetesAuth(method="kubernetes", role="rotator", jwt_file=token_file, mount_path=mount)
    api.shutdown()
    api.server_close()
    root.sys.disable_auth_method(mount)


async def test_kubernetes_login_with_the_service_account_token(
    kubernetes_auth: KubernetesAuth,
    put_key: Callable[..., int],
    kv_prefix: str,
    store_for: Callable[..., VaultStore],
    captured_log: Events,
) -> None:
    put_key(f"{kv_prefix}/k", KEY)
    store = store_for(kubernetes_auth)
    assert (await store.read_secret(f"{kv_prefix}/k")).api_key == KEY
    assert [e["method"] for e in named(captured_log(), "vault.login")] == ["kubernetes"]

    write_private(kubernetes_auth.jwt_file, _jwt().replace("c2lnbmF0dXJl", "Zm9yZ2Vk"))
    with pytest.raises(VaultPermissionDenied, match=f"auth/{kubernetes_auth.mount_path}/login"):
        await store_for(kubernetes_auth).latest_version(f"{kv_prefix}/k")


async def test_kubernetes_missing_token_file_is_a_clear_error(
    tmp_path: Path, store_for: Callable[..., VaultStore]
) -> None:
    auth = KubernetesAuth(method="kubernetes", role="rotator", jwt_file=tmp_path / "absent")
    with pytest.raises(
        CredentialsError,
        match=f"cannot read Kubernetes service-account token {tmp_path}/absent: No such file",
    ):
        await store_for(auth).latest_version("mistral/x")


def test_one_slow_login_serves_every_waiting_thread_without_holding_the_lock(
    openbao: OpenBaoServer, tmp_path: Path, metrics: Metrics, captured_log: Events
) -> None:
    auth = create_approle(openbao, tmp_path)
    with FaultProxy(("127.0.0.1", openbao.port)) as proxy:
        proxy.delay(1.0)  # every answer from Vault comes a second late
        authenticator = Authenticator(
            hvac.Client(url=proxy.url, token="", timeout=10), auth, metrics
        )
        generations: list[int] = []
        callers = [
            threading.Thread(target=lambda: generations.append(authenticator.ensure()))
            for _ in range(4)
        ]
        for caller in callers:
            caller.start()
        # While the login is under way (it takes a second), the lock is free.
        wait_for(lambda: authenticator._flight is not None, 10, "a login under way")
        lock = authenticator._lock  # the property under test is about this very lock
        assert lock.acquire(timeout=0.5), "the lock is held across the login request"
        lock.release()
        for caller in callers:
            caller.join(timeout=30)
    assert generations == [1, 1, 1, 1]
    assert len(named(captured_log(), "vault.login")) == 1
