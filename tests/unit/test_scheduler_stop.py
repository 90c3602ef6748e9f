"""The scheduler at stop: a job under way is cancelled without being logged as an error."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from rotator.adapters.metrics.registry import Metrics
from rotator.app.scheduler import build_scheduler
from rotator.config import parse_settings
from rotator.core.rotation import Rotator
from rotator.core.service import KeyService
from tests.unit.fakes import FakeStore, FakeVerifier


async def test_token_upkeep_cut_short_by_the_stop_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = parse_settings({"keys": [{"name": "x", "vault_path": "p"}]})
    service = KeyService(
        Rotator(
            store=FakeStore(),
            verifier=FakeVerifier(),
            settings=settings,
            metrics=Metrics(),
            owner="me",
        )
    )
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def maintain_token() -> None:  # a Vault call that is slow to answer
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = build_scheduler(settings, service, maintain_token)
    scheduler.start()
    try:
        scheduler.modify_job("vault-token", next_run_time=datetime.now(UTC))
        await asyncio.wait_for(started.wait(), 10)
    finally:
        scheduler.shutdown(wait=False)
    await asyncio.wait_for(cancelled.wait(), 10)
    await asyncio.sleep(0)  # the executor's done-callback runs

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
