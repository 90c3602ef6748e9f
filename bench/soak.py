"""Soak: the daemon for a while with many keys, under the faults of ``tests/faults`` at random.

A real ``rotator run`` subprocess (AppRole login with the shipped least-privilege policy)
manages ``--keys`` keys, each with a file sink, the first ten also with an HTTP sink. Around
it, all on loopback: a persistent OpenBao that can be sealed, the Mistral stand-in, an HTTP
receiver, and fault proxies in front of Vault, Mistral and the receiver. While it runs, new
key versions are staged all the time and faults are injected at random, each healed after a
few seconds: Vault sealed, restarted, slow, its token revoked, its policy tightened under one
key; Mistral refusing, resetting, hanging or answering nonsense; a sink's directory removed, a
symlink planted, the HTTP sink hanging, redirecting or failing; a broken secret staged; the
daemon itself SIGKILLed or SIGTERMed and started again.

At the end every fault is healed, the daemon is given time to settle, and the script checks
that for every key the state in Vault, the file sink and the HTTP sink agree on the newest
version, and that no key value appears in anything the daemon printed. It prints the number
of faults, rotations, restarts and the daemon's RSS at start and end; the exit status is 1
when a key did not settle or a key value leaked.

    .venv/bin/python bench/soak.py [--minutes 10] [--keys 100] [--seed N]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rotator.demo.standin import MistralStandIn  # noqa: E402
from tests.faults.proxy import FaultProxy  # noqa: E402
from tests.faults.servers import SealableOpenBao  # noqa: E402
from tests.fixtures.daemon import DaemonProcess, KeyKit, daemon_config  # noqa: E402
from tests.fixtures.openbao import ROTATOR_POLICY, create_approle, write_private  # noqa: E402
from tests.fixtures.receiver import Receiver  # noqa: E402

HTTP_KEYS = 10
BODY = '{"key": "{name}", "version": {version}, "api_key": "{api_key}"}'
HOLD_S = (2.0, 8.0)
"""How long a fault lasts before it is healed."""
GAP_S = (1.0, 4.0)
"""Between two faults."""
PROCESS_FAULTS_UNTIL = 0.6
"""Share of the run after which the daemon is no longer killed, so that its last life is long
enough for the RSS at its start and end to say something."""
SAMPLE_S = 30
_KEY_VALUE = re.compile(r"[0-9a-f]{32}")
VAULT_BUSY = (hvac.exceptions.VaultError, requests.exceptions.RequestException)
"""What a direct Vault call of the harness raises while Vault is sealed or restarting."""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Life:
    """One daemon process: its RSS shortly after start and at its end."""

    daemon: DaemonProcess
    started: float
    rss_start: float | None = None
    rss_end: float | None = None
    samples: list[float] = field(default_factory=list)
    """RSS every SAMPLE_S seconds after the first 15."""
    ended: float | None = None


@dataclass
class Active:
    kind: str
    heal: Callable[[], None]
    until: float


@dataclass
class Soak:
    workdir: Path
    keys: int
    minutes: float
    seed: int
    with_faults: bool = True
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    lives: list[Life] = field(default_factory=list)
    active: list[Active] = field(default_factory=list)
    staged: int = 0
    rotated_in_run: int = 0
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    """Faults that could not be injected at that moment (Vault busy with another)."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # --- set-up ------------------------------------------------------------------------

    def setup(self) -> None:
        self.openbao = SealableOpenBao.shamir(self.workdir / "openbao")
        self.standin = MistralStandIn(latency=0.01).start()
        self.receiver = Receiver()
        self.receiver.start()
        self.vault_proxy = FaultProxy(("127.0.0.1", self.openbao.port))
        self.mistral_proxy = FaultProxy(_address(self.standin.url))
        self.http_proxy = FaultProxy(_address(self.receiver.url))
        self.kit = KeyKit(self.openbao, self.standin, "mistral/soak")
        self.names = [f"k{i:03d}" for i in range(self.keys)]
        for name in self.names:
            self.kit.put(name)
        self.auth = create_approle(self.openbao, self.workdir)
        self.policy = self.auth.role_id_file.stem
        self.token = "admin-soak-" + "".join(self.rng.choices("0123456789abcdef", k=24))
        self.config = self._config()

    def _config(self) -> dict[str, Any]:
        config = daemon_config(
            self.workdir,
            self.openbao,
            self.standin,
            self.kit,
            self.names,
            admin_token_file=write_private(self.workdir / "admin-token", self.token),
            schedule={"poll_interval": "2s", "verify_interval": "30s"},
        )
        config["vault"].update(
            address=self.vault_proxy.url,
            timeout_seconds=2,
            auth={
                "method": "approle",
                "role_id_file": str(self.auth.role_id_file),
                "secret_id_file": str(self.auth.secret_id_file),
            },
        )
        config["mistral"].update(
            base_url=self.mistral_proxy.url,
            timeout_seconds=2,
            retries=1,
            max_requests_per_second=50,
        )
        config["rotation"] = {
            "retry_backoff": "1s",
            "max_backoff": "8s",
            "sink_attempts": 2,
            "lease": "10s",
        }
        for i, key in enumerate(config["keys"]):
            directory = self.workdir / "sinks" / key["name"]
            directory.mkdir(parents=True, mode=0o700)
            key["sinks"] = [{"type": "file", "path": str(directory / "api-key")}]
            if i < HTTP_KEYS:
                key["sinks"].append(
                    {
                        "type": "http",
                        "url": f"{self.http_proxy.url}/mistral-key",
                        "method": "PUT",
                        "body": BODY,
                        "timeout_seconds": 2,
                    }
                )
        return config

    # --- the daemon ------------------------------------------------------------------------

    @property
    def daemon(self) -> DaemonProcess:
        return self.lives[-1].daemon

    def start_daemon(self) -> None:
        workdir = self.workdir / f"daemon-{len(self.lives)}"
        workdir.mkdir()
        daemon = DaemonProcess(workdir, self.config, token=self.token)
        daemon.start(timeout=60, wait_ready=False)
        self.lives.append(Life(daemon, time.monotonic()))

    def end_life(self, how: str) -> None:
        life = self.lives[-1]
        process = life.daemon._process
        assert process is not None
        life.rss_end = rss_mib(process.pid)
        life.ended = time.monotonic()
        if how == "kill":
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        else:
            life.daemon.stop(timeout=30)

    def note_rss(self) -> None:
        life = self.lives[-1]
        process = life.daemon._process
        age = time.monotonic() - life.started
        if process is None or age < 15:
            return
        if life.rss_start is None:
            life.rss_start = rss_mib(process.pid)
        if age >= 15 + SAMPLE_S * len(life.samples):
            life.samples.append(rss_mib(process.pid))

    # --- faults ----------------------------------------------------------------------------

    def inject(self, progress: float) -> None:
        if not self.with_faults:
            return
        kinds = [k for k in FAULTS if k not in {a.kind for a in self.active}]
        if progress > PROCESS_FAULTS_UNTIL:
            kinds = [k for k in kinds if not k.startswith("daemon")]
        if any(a.kind.startswith("vault") for a in self.active):
            kinds = [k for k in kinds if not k.startswith("vault")]  # one Vault fault at once
        if not kinds:
            return
        kind = self.rng.choice(kinds)
        try:
            heal = FAULTS[kind](self)
        except VAULT_BUSY:
            self.skipped[kind] += 1  # e.g. a secret to write while Vault is sealed
            return
        self.faults[kind] += 1
        if heal is not None:
            self.active.append(Active(kind, heal, time.monotonic() + self.rng.uniform(*HOLD_S)))

    def heal_due(self, everything: bool = False) -> None:
        deadline = time.monotonic() + 120
        while True:
            now = time.monotonic()
            for fault in [a for a in self.active if everything or a.until <= now]:
                try:
                    fault.heal()
                except VAULT_BUSY:
                    fault.until = now + 1  # Vault is sealed or restarting: heal it later
                    continue
                self.active.remove(fault)
            if not (everything and self.active) or now > deadline:
                return
            time.sleep(0.5)

    def stage(self) -> None:
        """A new valid version of a random key, as ops would write it (if Vault is up)."""
        with contextlib.suppress(*VAULT_BUSY):
            self.kit.put(self.rng.choice(self.names))
            self.staged += 1

    def random_key(self, http: bool = False) -> str:
        return self.rng.choice(self.names[:HTTP_KEYS] if http else self.names)

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> None:
        self.start_daemon()
        self.lives[0].daemon.wait_until(self.lives[0].daemon.ready, 60, "the first readiness")
        started = time.monotonic()
        deadline = started + self.minutes * 60
        next_fault = started + self.rng.uniform(*GAP_S)
        while time.monotonic() < deadline:
            progress = (time.monotonic() - started) / (deadline - started)
            self.heal_due()
            if time.monotonic() >= next_fault:
                self.inject(progress)
                next_fault = time.monotonic() + self.rng.uniform(*GAP_S)
            if self.rng.random() < 0.5:
                self.stage()
            self.note_rss()
            time.sleep(0.5)
        self.heal_due(everything=True)
        self.lives[-1].rss_end = rss_mib(self._pid())
        self.lives[-1].ended = time.monotonic()
        self.rotated_in_run = self.events("key.rotated")

    def _pid(self) -> int:
        process = self.daemon._process
        assert process is not None
        return process.pid

    # --- the end ---------------------------------------------------------------------------

    def settle(self, timeout: float = 180) -> list[str]:
        """Stage one last version of every key and wait until every key agrees everywhere on
        it (a sink mended by hand, like a removed symlink, gets a key only at the next
        rotation); the keys that still do not."""
        for name in self.names:
            self.kit.put(name)
        deadline = time.monotonic() + timeout
        while True:
            behind = [n for n in self.names if not self._agrees(n)]
            if not behind or time.monotonic() > deadline:
                return behind
            time.sleep(1)

    def _agrees(self, name: str) -> bool:
        try:
            return self._agrees_now(name)
        except (*VAULT_BUSY, hvac.exceptions.InvalidPath):
            return False

    def _agrees_now(self, name: str) -> bool:
        kv = self.openbao.client().secrets.kv.v2
        latest = int(kv.read_secret_metadata(path=self.kit.path(name))["data"]["current_version"])
        state_path = f"{self.config['vault']['state_path']}/{name}"
        state = kv.read_secret_version(path=state_path, raise_on_deleted_version=True)
        state = state["data"]["data"]
        if state.get("active_version") != latest or state.get("pending_version"):
            return False
        value = kv.read_secret_version(
            path=self.kit.path(name), version=latest, raise_on_deleted_version=True
        )["data"]["data"]["api_key"]
        file = self.workdir / "sinks" / name / "api-key"
        with contextlib.suppress(FileNotFoundError):
            if file.read_text().strip() != value:
                return False
        if not file.exists():
            return False
        if self.names.index(name) < HTTP_KEYS:
            heard = [r.json() for r in self.receiver.requests if r.json()["key"] == name]
            return bool(heard) and heard[-1]["api_key"] == value
        return True

    def describe(self, name: str) -> str:
        """Where a key that did not settle stands (versions and fingerprints only)."""
        kv = self.openbao.client().secrets.kv.v2
        latest = kv.read_secret_metadata(path=self.kit.path(name))["data"]["current_version"]
        state_path = f"{self.config['vault']['state_path']}/{name}"
        state = kv.read_secret_version(path=state_path, raise_on_deleted_version=True)
        file = self.workdir / "sinks" / name / "api-key"
        held = file.read_text().strip()[-4:] if file.is_file() else "(no file)"
        heard = [r.json()["version"] for r in self.receiver.requests if r.json()["key"] == name]
        fields = {k: v for k, v in state["data"]["data"].items() if k != "activated_at"}
        return f"latest v{latest}, state {fields}, file ...{held}, http heard {heard[-3:]}"

    def leaked(self) -> int:
        values = set(self.kit.values)
        texts = [life.daemon.output() for life in self.lives]
        return sum(len(values & set(_KEY_VALUE.findall(text))) for text in texts)

    def events(self, name: str) -> int:
        return sum(len(life.daemon.events(name)) for life in self.lives)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.daemon.stop()
        for closer in (
            self.vault_proxy.stop,
            self.mistral_proxy.stop,
            self.http_proxy.stop,
            self.receiver.stop,
            self.standin.stop,
            self.openbao.stop,
        ):
            with contextlib.suppress(Exception):
                closer()


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


# --- the faults: each injects and returns how to heal it (None: nothing to heal) -------------


def vault_sealed(s: Soak) -> Callable[[], None]:
    s.openbao.seal()
    return s.openbao.unseal


def vault_restarted(s: Soak) -> None:
    s.openbao.restart()


def vault_slow(s: Soak) -> Callable[[], None]:
    s.vault_proxy.delay(3)  # past the daemon's 2 s timeout
    return s.vault_proxy.passthrough


def vault_token_revoked(s: Soak) -> None:
    root = s.openbao.client()
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        with contextlib.suppress(Exception):
            meta = root.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}
            if meta.get("role_name") == s.policy:
                root.auth.token.revoke_accessor(accessor)


def vault_policy_tightened(s: Soak) -> Callable[[], None]:
    path = s.kit.path(s.random_key())
    deny = "".join(
        f'\npath "secret/{kind}/{path}" {{\n  capabilities = ["deny"]\n}}\n'
        for kind in ("data", "metadata")
    )
    policies = s.openbao.client().sys
    policies.create_or_update_policy(name=s.policy, policy=ROTATOR_POLICY + deny)
    return lambda: policies.create_or_update_policy(name=s.policy, policy=ROTATOR_POLICY)


def mistral_refused(s: Soak) -> Callable[[], None]:
    s.mistral_proxy.refuse()
    return s.mistral_proxy.accept


def mistral_reset(s: Soak) -> Callable[[], None]:
    s.mistral_proxy.reset()
    return s.mistral_proxy.passthrough


def mistral_hang(s: Soak) -> Callable[[], None]:
    s.mistral_proxy.hang()
    return s.mistral_proxy.passthrough


def mistral_nonsense(s: Soak) -> Callable[[], None]:
    """Every key's answers become a body that is not JSON, or JSON without the model list."""
    kind = s.rng.choice(["not-json", "no-list", "reset", "slow:5", "unavailable"])
    for value in s.kit.values:
        s.standin.set_key(value, kind)

    def heal() -> None:
        for value in s.kit.values:
            s.standin.set_key(value, "valid")

    return heal


def sink_dir_missing(s: Soak) -> Callable[[], None]:
    directory = s.workdir / "sinks" / s.random_key()
    shutil.rmtree(directory, ignore_errors=True)
    return lambda: directory.mkdir(mode=0o700, exist_ok=True)


def sink_symlink(s: Soak) -> Callable[[], None]:
    target = s.workdir / "sinks" / s.random_key() / "api-key"
    decoy = s.workdir / "decoy"
    decoy.write_text("not yours\n")
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    with contextlib.suppress(FileNotFoundError, FileExistsError):
        target.symlink_to(decoy)

    def heal() -> None:
        if target.is_symlink():
            target.unlink()
        if decoy.read_text() != "not yours\n":
            raise AssertionError("the daemon wrote through a planted symlink")

    return heal


def http_sink_fails(s: Soak) -> Callable[[], None]:
    how = s.rng.choice(["hang", "500", "redirect"])
    if how == "hang":
        s.http_proxy.hang()
    elif how == "500":
        s.receiver.respond(500, b"portal is down")
    else:
        s.receiver.redirect("http://127.0.0.1:9/steal", 307)

    def heal() -> None:
        s.http_proxy.passthrough()
        s.receiver.respond(200, b"ok")

    return heal


def bad_secret(s: Soak) -> Callable[[], None]:
    name = s.random_key()
    data = s.rng.choice(
        [{"key_name": "no key"}, {"api_key": ""}, {"api_key": "abc def ghi jkl mno"}]
    )
    s.openbao.client().secrets.kv.v2.create_or_update_secret(path=s.kit.path(name), secret=data)

    def heal() -> None:
        s.kit.put(name)

    return heal


def daemon_killed(s: Soak) -> None:
    s.end_life("kill")
    s.start_daemon()


def daemon_terminated(s: Soak) -> None:
    s.end_life("term")
    s.start_daemon()


FAULTS: dict[str, Callable[[Soak], Callable[[], None] | None]] = {
    "vault_sealed": vault_sealed,
    "vault_restarted": vault_restarted,
    "vault_slow": vault_slow,
    "vault_token_revoked": vault_token_revoked,
    "vault_policy_tightened": vault_policy_tightened,
    "mistral_refused": mistral_refused,
    "mistral_reset": mistral_reset,
    "mistral_hang": mistral_hang,
    "mistral_bad_answers": mistral_nonsense,
    "sink_dir_missing": sink_dir_missing,
    "sink_symlink": sink_symlink,
    "http_sink_fails": http_sink_fails,
    "bad_secret": bad_secret,
    "daemon_sigkill": daemon_killed,
    "daemon_sigterm": daemon_terminated,
}


def report(soak: Soak, behind: list[str], leaked: int, took: float) -> None:
    measured = [life for life in soak.lives if life.rss_start is not None]
    first, last = (measured or soak.lives)[0], soak.lives[-1]
    life_s = (last.ended or time.monotonic()) - last.started
    print(f"soak: {took / 60:.1f} min, {soak.keys} keys, seed {soak.seed}")
    detail = ", ".join(f"{k} {n}" for k, n in sorted(soak.faults.items()))
    print(f"faults: {sum(soak.faults.values())} ({detail})")
    if soak.skipped:
        print(f"faults skipped (Vault busy with another): {sum(soak.skipped.values())}")
    print(
        f"rotations: {soak.rotated_in_run} rotated during the run (the first delivery of every "
        f"key included; {soak.staged} versions staged), "
        f"{soak.events('key.rotation_rejected')} rejected, "
        f"{soak.events('key.rotation_failed')} failed (undone); "
        f"{soak.events('key.rotated') - soak.rotated_in_run} more in the final round"
    )
    print(f"daemon processes: {len(soak.lives)}")
    print(
        f"RSS: start {first.rss_start or float('nan'):.1f} MiB, "
        f"end {last.rss_end or float('nan'):.1f} MiB; last process "
        f"{life_s / 60:.1f} min: "
        f"{last.rss_start or float('nan'):.1f} -> {last.rss_end or float('nan'):.1f} MiB"
    )
    curve = " ".join(f"{mib:.0f}" for mib in last.samples)
    print(f"RSS of the last process every {SAMPLE_S} s (MiB): {curve}")
    agreed = soak.keys - len(behind)
    print(
        f"end: {agreed}/{soak.keys} keys agree (state = file = http sink = newest version)"
        + (f"; behind: {', '.join(behind[:10])}" if behind else "")
    )
    for name in behind[:5]:
        print(f"  {name}: {soak.describe(name)}")
    print(f"key values in the daemon's output: {leaked}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--no-faults", action="store_true", help="only stage new versions: a baseline for RSS"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    with tempfile.TemporaryDirectory(prefix="rotator-soak-") as tmp:
        soak = Soak(Path(tmp), args.keys, args.minutes, seed, with_faults=not args.no_faults)
        started = time.monotonic()
        try:
            soak.setup()
            soak.run()
            took = time.monotonic() - started
            behind = soak.settle()
            leaked = soak.leaked()
            report(soak, behind, leaked, took)
        finally:
            soak.close()
    return 1 if behind or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
