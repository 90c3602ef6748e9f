"""Running one admin operation on a key: one at a time per key, audited, never cut short.

Each runs in a task of its own: the answer waits for its outcome up to ``wait_s``, then says
202 and where to look, and the operation carries on (a delivery is never cut short because a
client gave up). The scheduler's own short work on the key (a poll, a verification) is waited
for, up to ``SCHEDULER_GRACE_S``, so that ops do not get a 409 for a routine check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from rotator.admin.models import Accepted, KeyOut, RotationOut
from rotator.admin.state import state_of
from rotator.core.service import KeyBusy
from rotator.errors import NotPossible, RotatorError, VaultError
from rotator.logs import get_logger

log = get_logger(__name__)

SCHEDULER_GRACE_S = 10.0
T = TypeVar("T")


def _caller(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "-"


async def run_operation(
    request: Request,
    action: str,
    name: str,
    work: Callable[[], Awaitable[T]],
    extra: dict[str, Any],
) -> T | JSONResponse:
    state = state_of(request)
    caller = _caller(request)
    if name not in state.deps.service.names():
        log.warning(f"admin.{action}", key=name, caller=caller, outcome="unknown_key", **extra)
        raise HTTPException(404, f"unknown key: {name}")
    if name in state.in_flight:
        log.warning(f"admin.{action}", key=name, caller=caller, outcome="busy", **extra)
        raise HTTPException(409, f"a {state.in_flight[name]} of {name} is under way; try later")
    state.in_flight[name] = action
    service = state.deps.service

    async def when_idle() -> T:
        deadline = time.monotonic() + SCHEDULER_GRACE_S
        # KeyService has no "idle" event to wait on; a short poll, bounded, will do.
        while service.busy(name) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return await work()

    task = asyncio.create_task(_audited(action, name, caller, when_idle, extra))
    state.operations.add(task)

    def finished(task: asyncio.Task[Any]) -> None:
        state.operations.discard(task)
        state.in_flight.pop(name, None)

    task.add_done_callback(finished)
    done, _ = await asyncio.wait({task}, timeout=state.wait_s)
    if not done:
        where = f"/api/v1/keys/{name}"
        detail = f"{action} of {name} still under way after {state.wait_s:g}s; see {where}"
        return JSONResponse(
            Accepted(detail=detail, location=where).model_dump(),
            status_code=202,
            headers={"Location": where},
        )
    outcome = task.result()
    if isinstance(outcome, KeyBusy):
        raise HTTPException(409, f"{name} stayed busy for {SCHEDULER_GRACE_S:g}s; try later")
    if isinstance(outcome, NotPossible):
        # An operator's mistake (no such version, nothing to roll back to): the sentence,
        # and a status the CLI turns into exit 1, never "nothing to do".
        raise HTTPException(409, str(outcome))
    if isinstance(outcome, VaultError):
        raise HTTPException(503, f"vault: {outcome}")
    if isinstance(outcome, RotatorError):
        raise HTTPException(503, str(outcome))
    if isinstance(outcome, BaseException):
        # A bug: logged with its traceback by _audited. The client gets JSON like every other
        # answer (not a text/plain 500), and no exception text, which could hold anything.
        raise HTTPException(
            500, f"internal error ({type(outcome).__name__}); see the daemon's log (admin.{action})"
        )
    return outcome


async def _audited(
    action: str,
    name: str,
    caller: str,
    work: Callable[[], Awaitable[T]],
    extra: dict[str, Any],
) -> T | Exception:
    """Run ``work`` and log the audit event; errors are returned, so none goes unretrieved."""
    started = time.monotonic()
    event = f"admin.{action}"
    fields = {"key": name, "caller": caller, **extra}
    try:
        answer = await work()
    except KeyBusy as exc:
        log.warning(event, outcome="busy", **fields)
        return exc
    except NotPossible as exc:
        log.warning(event, outcome="refused", reason=str(exc), **fields)
        return exc
    except RotatorError as exc:
        log.error(event, outcome="error", reason=str(exc), **fields)
        return exc
    except Exception as exc:
        log.exception(event, outcome="error", **fields)
        return exc
    duration_ms = round((time.monotonic() - started) * 1000)
    if isinstance(answer, RotationOut):
        log.info(
            event,
            outcome=answer.result,
            active_version=answer.active_version,
            version=answer.version,
            reason=answer.reason or None,
            duration_ms=duration_ms,
            **fields,
        )
    elif isinstance(answer, KeyOut):
        log.info(
            event,
            outcome=answer.status.value,
            version=answer.active_version,
            fingerprint=answer.fingerprint,
            duration_ms=duration_ms,
            **fields,
        )
    else:  # e.g. a mint (rotator.admin.mint_routes): its result and version
        log.info(
            event,
            outcome=getattr(answer, "result", None),
            version=getattr(answer, "version", None),
            reason=getattr(answer, "reason", None) or None,
            duration_ms=duration_ms,
            **fields,
        )
    return answer
