"""A full verification sweep through the daemon's own KeyService, in this process.

Every key's active version is loaded first (read from Vault in bulk, not timed), as it is in
a daemon that has been running; then every key is verified at once, which is what the
daemon's verifications amount to over one ``verify_interval``. The wall time is compared
with the physical limit ``N x latency / max_concurrency``.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from bench.rig import Fleet, StandIn, Vault
from rotator import logs
from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.mistral.verifier import MistralVerifier
from rotator.adapters.vault.codec import parse_secret
from rotator.adapters.vault.gateway import VaultStore
from rotator.config import Settings
from rotator.config.keys import DiscoverSettings
from rotator.config.mistral import MistralSettings
from rotator.config.vault import TokenAuth, VaultSettings
from rotator.core.rotation import ManagedKey, Rotator
from rotator.core.service import KeyService
from rotator.domain.model import Status


@dataclass(frozen=True)
class SweepResult:
    keys: int
    concurrency: int
    latency_s: float
    wall_s: float
    cpu_s: float
    """This process's CPU seconds during the sweep."""
    valid: int
    requests: int
    """Requests the stand-in received during the sweep."""

    @property
    def limit_s(self) -> float:
        return self.keys * self.latency_s / self.concurrency

    @property
    def ratio(self) -> float:
        return self.wall_s / self.limit_s


def sweep_settings(
    vault: Vault, fleet: Fleet, mistral_url: str, concurrency: int, rate: float
) -> Settings:
    return Settings(
        vault=VaultSettings(
            address=vault.url,
            namespace=None,
            ca_cert=None,
            auth=TokenAuth(token_file=vault.token_file),
        ),
        mistral=MistralSettings(
            base_url=mistral_url,
            max_concurrency=concurrency,
            max_requests_per_second=rate,
            retries=0,
        ),
        discover=DiscoverSettings(prefix=fleet.prefix),
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _preload(service: KeyService, vault: Vault, fleet: Fleet) -> None:
    """Each key's active version, as the daemon holds it after its first poll.

    Uses KeyService internals (``_get``, ``_set_active``): the public way, one ``inspect``
    per key, costs four hvac round trips a key, minutes at 10,000 keys.
    """
    names = list(fleet.values)
    answers = vault.read_many([fleet.path(n) for n in names])
    for name, answer in zip(names, answers, strict=True):
        secret = parse_secret(fleet.path(name), answer["data"], answer["metadata"])
        service._set_active(service._get(name), secret)


async def _sweep(settings: Settings, vault: Vault, fleet: Fleet) -> tuple[float, float, int]:
    metrics = Metrics()
    store = VaultStore(settings.vault, metrics)
    verifier = MistralVerifier(settings.mistral, metrics)
    service = KeyService(
        Rotator(store=store, verifier=verifier, settings=settings, metrics=metrics, owner="bench")
    )
    for name in fleet.values:
        service.add(ManagedKey(name, fleet.path(name), ()))
    _preload(service, vault, fleet)
    try:
        cpu, started = _cpu(), time.monotonic()
        views = await asyncio.gather(*(service.verify(n) for n in fleet.values))
        wall, cpu = time.monotonic() - started, _cpu() - cpu
    finally:
        await verifier.aclose()
        store.close()
    return wall, cpu, sum(1 for v in views if v.status is Status.VALID)


def run_sweep(
    vault: Vault,
    standin: StandIn,
    fleet: Fleet,
    *,
    concurrency: int,
    rate: float,
    log_file: Path,
) -> SweepResult:
    settings = sweep_settings(vault, fleet, standin.url, concurrency, rate)
    before = standin.stats()["total"]
    with log_file.open("a", encoding="utf-8") as stream:
        # As in the daemon: a JSON line per verification, through the scrubber.
        logs.configure("json", "INFO", stream=stream)
        wall, cpu, valid = asyncio.run(_sweep(settings, vault, fleet))
    return SweepResult(
        keys=len(fleet.values),
        concurrency=concurrency,
        latency_s=standin.latency,
        wall_s=wall,
        cpu_s=cpu,
        valid=valid,
        requests=standin.stats()["total"] - before,
    )
