"""What the daemon knows and does about each key: poll Vault, verify, rotate, report.

The scheduler, the admin API and ``rotator check`` all go through :class:`KeyService`, so a
key is handled the same way whoever asks. One operation per key at a time (``busy``), and
one key's failure never reaches another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

from rotator.core.backoff import Backoff, BackoffPolicy
from rotator.core.rotation import ManagedKey, RotationResult, Rotator, retry_policy
from rotator.domain.choice import choose_target
from rotator.domain.expiry import Band, Expiry, band, compute_expiry
from rotator.domain.keyview import KeyView
from rotator.domain.model import KeyState, Outcome, SecretVersion, Status, Verification
from rotator.errors import (
    BadSecret,
    CasConflict,
    RotatorError,
    SecretNotFound,
    StateProblem,
    VaultError,
)
from rotator.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class KeyBusy(RotatorError):
    """Another operation on this key is under way."""


class UnknownKey(RotatorError):
    """No managed key has that name."""


class _KeyLock(asyncio.Lock):
    """A key's lock that knows the task holding it: at stop, an operation still under way
    after the grace period is cancelled before the clients it uses are closed."""

    holder: asyncio.Task[Any] | None = None

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        self.holder = asyncio.current_task()
        return True

    def release(self) -> None:
        self.holder = None
        super().release()


# One of these (and its view, backoff, secret, expiry) a key: slots, not a dict each, save
# about 1 KB a key, 10 MiB at 10,000 tenants.
@dataclass(slots=True)
class _Tracked:
    key: ManagedKey
    view: KeyView
    lock: _KeyLock
    backoff: Backoff
    active: SecretVersion | None = None
    expiry: Expiry | None = None
    band: Band | None = None
    band_version: int | None = None
    """The version ``band`` was reached by: a new key starts its own crossings."""
    band_unrecorded: bool = False
    """A crossing was logged and is not in the state yet."""
    previous: SecretVersion | None = None
    previous_until: datetime | None = None
    reminded: bool = False
    started: bool = False
    settled: int | None = None
    """The newest version already decided on (delivered, rejected or left alone)."""
    mistral_expiry: tuple[int, datetime] | None = None
    """(version, expiry) from Mistral's Admin API: for that version, it beats Vault's."""


class KeyService:
    def __init__(self, rotator: Rotator) -> None:
        """The service works with the rotator's own collaborators (store, verifier,
        settings, metrics, clock): they are given once, to the rotator."""
        self.rotator = rotator
        self.store = rotator.store
        self.verifier = rotator.verifier
        self.settings = rotator.settings
        self.metrics = rotator.metrics
        self.clock = rotator.clock
        self._keys: dict[str, _Tracked] = {}
        self._removals: set[asyncio.Task[None]] = set()
        self._stopping = False
        poll_s = self.settings.schedule.poll_interval.total_seconds()
        self._vault_backoff = Backoff(BackoffPolicy(min(1.0, poll_s), max(2 * poll_s, 10.0)))
        self._key_retry = retry_policy(self.settings)
        """Every key's backoff follows the same policy: one object, not one a key."""

    # --- the set of keys -----------------------------------------------------------------

    def add(self, key: ManagedKey) -> None:
        backoff = Backoff(self._key_retry)
        self._keys[key.name] = _Tracked(key, KeyView(key.name), _KeyLock(), backoff)
        self.metrics.add_key(key.name)
        self.metrics.keys_managed.set(len(self._keys))

    def remove(self, name: str, *, clear_state: bool = False) -> ManagedKey | None:
        """Stop managing ``name`` and drop its series; work under way on it finishes (a
        delivery is all-or-nothing) and its series are dropped again once it has, since
        that work sets them as it goes. ``clear_state`` (its secret was deleted): then
        write an empty state version, so that a secret created again under the name starts
        afresh; the old state stays readable in the state secret's version history."""
        tracked = self._keys.pop(name, None)
        if tracked is None:
            return None
        self.metrics.remove_key(name)
        self.metrics.keys_managed.set(len(self._keys))
        if tracked.lock.locked() or clear_state:
            task = asyncio.get_running_loop().create_task(self._after_removal(tracked, clear_state))
            self._removals.add(task)
            task.add_done_callback(self._removals.discard)
        return tracked.key

    async def _after_removal(self, tracked: _Tracked, clear_state: bool) -> None:
        async with tracked.lock:
            name = tracked.key.name
            if name in self._keys:
                return  # added again meanwhile: its series and state are its own
            self.metrics.remove_key(name)
            if clear_state:
                await self._clear_state(tracked.key)

    async def _clear_state(self, key: ManagedKey) -> None:
        name = key.name
        try:
            state, cas = await self.store.read_state(name)
            if state.vault_path not in (None, key.vault_path):
                return  # another deployment's state: never ours to clear
            if cas == 0 or (state.active_version is None and state.rejected_version is None):
                return
            cleared = KeyState(last_result="cleared: the secret was deleted")
            version = await self.store.write_state(name, cleared, cas)
        except RotatorError as exc:
            # Harmless if it stays: the state's secret_created tells a new secret apart.
            log.warning("key.state_not_cleared", key=name, reason=str(exc))
            return
        log.info(
            "key.state_cleared",
            key=name,
            previous_active_version=state.active_version,
            state_version=version,
            action=f"the old state is version {cas} of the state secret",
        )

    def managed(self) -> list[ManagedKey]:
        return [t.key for t in self._keys.values()]

    def names(self) -> list[str]:
        return sorted(self._keys)

    def view(self, name: str) -> KeyView:
        return self._get(name).view

    def views(self) -> list[KeyView]:
        return [self._keys[n].view for n in self.names()]

    def busy(self, name: str) -> bool:
        return self._get(name).lock.locked()

    # --- at stop (rotator.app.daemon) -----------------------------------------------------

    def stop_polling(self) -> None:
        """A poll asked for from now on does nothing: a batch under way takes no more keys."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        """The daemon is stopping: nothing new should start on a key."""
        return self._stopping

    async def wait_idle(self) -> None:
        """Return once no operation holds any key (each lock taken and let go in turn)."""
        for tracked in list(self._keys.values()):
            async with tracked.lock:
                pass

    def cancel_operations(self) -> list[asyncio.Task[Any]]:
        """Cancel the tasks holding a key (past the stop's grace period); returned, so that
        the caller can let them unwind."""
        holders = {t.lock.holder for t in self._keys.values() if t.lock.holder is not None}
        for task in holders:
            task.cancel()
        return list(holders)

    # --- for minting and inventory (rotator.core.admin_keys) -------------------------------

    def key(self, name: str) -> ManagedKey:
        return self._get(name).key

    def lock(self, name: str) -> asyncio.Lock:
        """The key's lock: minting holds it from intent to rotation, as a rotation does."""
        return self._get(name).lock

    def active_secret(self, name: str) -> SecretVersion | None:
        return self._get(name).active

    def expiry(self, name: str) -> Expiry | None:
        return self._get(name).expiry

    async def rotate_held(self, name: str, version: int) -> RotationResult:
        """Rotate to ``version``; the caller holds :meth:`lock`."""
        t = self._get(name)
        result = await self.rotator.rotate(t.key, version=version)
        await self._after_rotation(t, result)
        return result

    def use_mistral_expiry(self, name: str, version: int, at: datetime) -> None:
        """Mistral's expiry for ``version`` (matched by inventory): not assumed any more."""
        t = self._keys.get(name)
        if t is None:
            return
        t.mistral_expiry = (version, at)
        if t.active is not None and t.active.version == version:
            self._set_active(t, t.active, recorded=t.view.active_version == version)

    def _get(self, name: str) -> _Tracked:
        try:
            return self._keys[name]
        except KeyError:
            raise UnknownKey(name) from None

    # --- operations (each takes the key's lock; ``wait=False`` refuses when busy) ---------

    async def poll(
        self, name: str, latest: int | None = None, *, created: datetime | None = None
    ) -> RotationResult | None:
        """Look for a newer version in Vault and rotate to it; the first poll also recovers.

        ``latest``: the newest live version (0: none) when a folder list already said it;
        otherwise the key's metadata is read. ``created``: the secret's creation time from
        the same list, so that the first poll does not read the metadata for it either."""
        t = self._get(name)
        # A key not started yet waits for the lock (a verification job that came first)
        # rather than skip: its next poll may be an hour away, and until it ran the key
        # has nothing to verify.
        busy = t.lock.locked() and t.started
        if self._stopping or busy or not t.backoff.ready() or not self._vault_backoff.ready():
            return None
        async with t.lock:
            result: RotationResult | None = await self._guard(
                t, self._poll(t, latest) if t.started else self._start(t, latest, created)
            )
            return result

    def started(self, name: str) -> bool:
        """Whether the key's first poll (which also recovers it after a restart) is done."""
        t = self._keys.get(name)
        return t is not None and t.started

    def unchanged(self, name: str, latest: int | None) -> bool:
        """Whether a poll would find nothing to do, ``latest`` being the listed version
        (None: not listed, only a poll can tell)."""
        t = self._keys.get(name)
        return latest is not None and t is not None and t.started and t.settled == latest

    async def inspect(self, name: str) -> KeyView:
        """Read Vault and verify, delivering nothing: ``rotator check``."""
        t = self._get(name)
        async with t.lock:
            await self._guard(t, self._inspect(t))
        return t.view

    async def verify(self, name: str, *, wait: bool = True) -> KeyView:
        t = self._get(name)
        if not wait and t.lock.locked():
            raise KeyBusy(name)
        async with t.lock:
            await self._guard(t, self._verify(t))
        return t.view

    async def rotate(
        self,
        name: str,
        *,
        version: int | None = None,
        force: bool = False,
        break_lease: bool = False,
    ) -> RotationResult:
        t = self._get(name)
        if t.lock.locked():
            raise KeyBusy(name)
        async with t.lock:
            result = await self.rotator.rotate(
                t.key, version=version, force=force, break_lease=break_lease
            )
            if result.contended and not break_lease:
                # Not silent: ops asked and nothing happened; say whose lease and what to do.
                state, _ = await self.store.read_state(name)
                until = state.pending_until
                log.warning(
                    "key.lease_held",
                    key=name,
                    owner=state.pending_owner,
                    pending_until=until.isoformat() if until else None,
                    action="if that instance is dead: rotator rotate --break-lease NAME",
                )
            await self._after_rotation(t, result)
            return result

    async def rollback(self, name: str) -> RotationResult:
        t = self._get(name)
        if t.lock.locked():
            raise KeyBusy(name)
        async with t.lock:
            result = await self.rotator.rollback(t.key)
            await self._after_rotation(t, result)
            return result

    # --- internals -------------------------------------------------------------------------

    async def _guard(self, t: _Tracked, work: Awaitable[T]) -> T | None:
        """One key's trouble is reported on that key and goes no further."""
        try:
            result = await work
            self._vault_backoff.succeeded()
            return result
        except VaultError as exc:
            # The metric and log are the adapter's; keep the last known state, and let the
            # other keys wait instead of all asking a Vault that is down.
            self._vault_backoff.failed()
            t.view = replace(t.view, problem=f"vault: {exc}")
        except (SecretNotFound, BadSecret) as exc:
            self._secret_problem(t, exc)
        except StateProblem as exc:
            # Acting on this state could deliver the wrong key or undo a rollback: nothing
            # is done for the key until ops decide (the action says how).
            self.metrics.errors.labels(component="state").inc()
            self.metrics.secret_error.labels(key=t.key.name).set(1)
            log.error(exc.event, key=t.key.name, reason=str(exc), action=exc.action, **exc.fields)
            t.view = replace(t.view, problem=str(exc))
        except Exception:
            self.metrics.errors.labels(component="scheduler").inc()
            log.exception("key.unexpected_error", key=t.key.name)
        return None

    async def _start(self, t: _Tracked, listed: int | None, created: datetime | None) -> None:
        converged = await self.rotator.converge(t.key, created=created)
        latest = await self._latest(t, listed)
        state = converged.state
        target, why = (
            (latest, "")
            if state is None
            else choose_target(state, latest, explicit=None, force=False)
        )
        if converged.contended or state is None or target is not None:
            await self._poll(t, latest)
        else:
            # The usual restart: nothing newer than what was delivered. What converge read
            # (the state, the active version) is all it takes: each is read once.
            noop = RotationResult(Outcome.NOOP, state.active_version, why, version=latest)
            await self._after_rotation(t, noop, known=(state, converged.secret))
            t.settled = latest
        # Under another instance's lease (it may be a crashed one) nothing was checked:
        # converge again on the next poll, once the lease is released or has run out.
        # A converge that failed (a sink refused) left the sinks split: it is tried again too.
        t.started = not converged.contended and converged.result is not Outcome.FAILED
        if t.view.last_check_at is None:
            await self._verify(t)

    async def _inspect(self, t: _Tracked) -> None:
        await self._latest(t)
        await self._verify(t)

    async def _latest(self, t: _Tracked, listed: int | None = None) -> int:
        if listed is None:
            latest = await self.store.latest_version(t.key.vault_path)
        else:
            latest = listed or None
        if latest is None:
            raise SecretNotFound(f"{t.key.vault_path}: no live version in Vault")
        self.metrics.latest_version.labels(key=t.key.name).set(latest)
        t.view = replace(t.view, latest_version=latest)
        return latest

    async def _poll(self, t: _Tracked, listed: int | None = None) -> RotationResult | None:
        latest = await self._latest(t, listed)
        if latest == t.settled:
            return None  # the cheap, usual case: one metadata read and nothing to do
        result = await self.rotator.rotate(t.key)
        await self._after_rotation(t, result)
        # Under another instance's lease, look again: it may never finish (a crash).
        if result.result not in (Outcome.POSTPONED, Outcome.FAILED) and not result.contended:
            t.settled = latest
        return result

    async def _after_rotation(
        self,
        t: _Tracked,
        result: RotationResult,
        known: tuple[KeyState, SecretVersion | None] | None = None,
    ) -> None:
        if result.result in (Outcome.POSTPONED, Outcome.FAILED):
            wait = t.backoff.failed(at_least_s=result.retry_after_s or 0.0)
            log.info("key.retry_scheduled", key=t.key.name, in_s=round(wait, 1))
        elif result.result in (Outcome.ROTATED, Outcome.ROLLED_BACK):
            t.backoff.succeeded()
            if t.active is not None:
                t.previous = t.active
                t.previous_until = self.clock() + self.settings.rotation.previous_check_for
                t.reminded = False
        else:
            t.backoff.succeeded()
        if result.version is not None and result.version > (t.view.latest_version or 0):
            # Ops rotated to a version staged since the last poll.
            self.metrics.latest_version.labels(key=t.key.name).set(result.version)
            t.view = replace(t.view, latest_version=result.version)
        if result.result is not Outcome.NOOP or t.view.last_result is None:
            # "already active" after a rotation says less than the rotation itself.
            t.view = replace(t.view, last_result=result.summary)
        if result.secret is not None:
            self._set_active(t, result.secret)
            if result.result in (Outcome.ROTATED, Outcome.ROLLED_BACK):
                t.view = replace(t.view, last_rotation_at=self.clock())
        elif t.active is None or t.active.version != result.active_version:
            await self._load_active(t, result.active_version, known)
        await self._record_band(t)
        if result.status is not None and result.result in (Outcome.ROTATED, Outcome.ROLLED_BACK):
            self._record_verdict(t, Verification(result.status))
            # Tell ops at once whether the replaced key is still live (delete it in the console).
            await self._check_previous(t)
        if result.secret_problem:
            # The newest version's data is broken: a problem to show and alert on, not just a
            # rejection (MistralKeySecretBroken reads mistral_key_secret_error).
            self.metrics.secret_error.labels(key=t.key.name).set(1)
            t.view = replace(t.view, problem=result.secret_problem)

    async def _load_active(
        self,
        t: _Tracked,
        active: int | None,
        known: tuple[KeyState, SecretVersion | None] | None = None,
    ) -> None:
        """Show the active version; ``known``: the state (and that version) already read."""
        state, secret = (
            known if known is not None else ((await self.rotator.read_state(t.key))[0], None)
        )
        version = active if active is not None else state.active_version
        if state.expiry_band and state.expiry_band_version == version and version is not None:
            # Logged before a restart: not again for the same crossing.
            with contextlib.suppress(KeyError):
                t.band, t.band_version = Band[state.expiry_band.upper()], version
        if state.activated_at is not None:
            t.view = replace(t.view, last_rotation_at=state.activated_at)
            self.metrics.last_rotation.labels(key=t.key.name).set(state.activated_at.timestamp())
        if version is None:
            # Nothing delivered yet (the newest was rejected): show the newest.
            version = t.view.latest_version
        if version is None:
            return
        try:
            if secret is None or secret.version != version:
                secret = await self.store.read_secret(t.key.vault_path, version)
        except SecretNotFound:
            if version != state.active_version:
                raise
            # Deleted or destroyed in Vault after delivery: it cannot be "fixed" there, only
            # replaced. Reported, and the key keeps running so that a new version rotates.
            t.active = None
            self._secret_problem(
                t,
                SecretNotFound(
                    f"the active version {version} was deleted or destroyed in Vault (the "
                    f"sinks still hold it): write a new version, `rotator stage "
                    f"{t.key.name}`, and the daemon rotates to it"
                ),
            )
            return
        self._set_active(t, secret, recorded=state.active_version == version)

    def _set_active(self, t: _Tracked, secret: SecretVersion, recorded: bool = True) -> None:
        t.active = secret
        expiry = compute_expiry(
            secret.expires_at, secret.created_at, self.settings.expiry, t.key.vault_path
        )
        if t.mistral_expiry is not None and t.mistral_expiry[0] == secret.version:
            expiry = Expiry(at=t.mistral_expiry[1], assumed=False)
        if expiry.beyond_max:
            log.warning(
                "key.expiry_beyond_max",
                key=t.key.name,
                version=secret.version,
                expires_at=expiry.at.isoformat(),
                max_lifetime_days=self.settings.expiry.max_lifetime_days,
            )
        t.expiry = expiry
        name = t.key.name
        if recorded:
            self.metrics.active_version.labels(key=name).set(secret.version)
        self.metrics.expiry.labels(key=name).set(expiry.at.timestamp())
        self.metrics.expiry_assumed.labels(key=name).set(1 if expiry.assumed else 0)
        self.metrics.secret_error.labels(key=name).set(0)
        t.view = replace(
            t.view,
            active_version=secret.version if recorded else t.view.active_version,
            expires_at=expiry.at,
            expiry_assumed=expiry.assumed,
            fingerprint=secret.fingerprint,
            problem=None,
        )
        self._check_band(t)

    def _check_band(self, t: _Tracked) -> None:
        if t.expiry is None:
            return
        version = t.active.version if t.active else None
        if version != t.band_version:
            # Another key generation (a rotation, a rollback): its bands are its own, so a
            # new key already inside the warn band is said even after a critical one.
            t.band, t.band_version = None, version
        now_band = band(t.expiry, self.clock(), self.settings.expiry)
        if now_band > Band.OK and (t.band is None or now_band > t.band):
            t.band_unrecorded = True
            log.warning(
                "key.expiry_threshold",
                key=t.key.name,
                threshold=now_band.name.lower(),
                expires_at=t.expiry.at.isoformat(),
                assumed=t.expiry.assumed,
                days_left=round(t.expiry.days_left(self.clock()), 1),
                version=t.active.version if t.active else None,
            )
        t.band = now_band

    async def _verify(self, t: _Tracked) -> None:
        if t.active is None:
            await self._load_active(t, None)
        if t.active is None:
            return
        started = time.monotonic()
        verdict = await self.verifier.verify(t.active.api_key)
        log.info(
            "key.verified",
            key=t.key.name,
            version=t.active.version,
            status=verdict.status.value,
            http_status=verdict.http_status,
            fingerprint=t.active.fingerprint,
            duration_ms=round((time.monotonic() - started) * 1000),
            detail=verdict.detail or None,
        )
        self._record_verdict(t, verdict)
        self._check_band(t)
        await self._record_band(t)
        await self._check_previous(t)

    async def _record_band(self, t: _Tracked) -> None:
        """Put the band just logged in the state, so a restart does not log it again."""
        if not t.band_unrecorded or t.band is None or t.band_version is None:
            return
        state, cas = await self.rotator.read_state(t.key)
        if state.active_version != t.band_version:
            return  # another instance moved on; its key has its own bands
        recorded = replace(
            state, expiry_band=t.band.name.lower(), expiry_band_version=t.band_version
        )
        with contextlib.suppress(CasConflict):
            await self.store.write_state(t.key.name, recorded, cas)
            t.band_unrecorded = False

    def _record_verdict(self, t: _Tracked, verdict: Verification) -> None:
        now = self.clock()
        self.metrics.set_status(t.key.name, verdict.status)
        self.metrics.last_check.labels(key=t.key.name).set(now.timestamp())
        t.view = replace(t.view, status=verdict.status, last_check_at=now)

    async def _check_previous(self, t: _Tracked) -> None:
        if t.previous is None or t.previous_until is None:
            return
        gauge = self.metrics.previous_still_valid.labels(key=t.key.name)
        if self.clock() > t.previous_until:
            gauge.set(0)
            t.previous = None
            return
        verdict = await self.verifier.verify(t.previous.api_key)
        if verdict.status.is_transient:
            return
        live = verdict.status is Status.VALID
        gauge.set(1 if live else 0)
        t.view = replace(t.view, previous_still_valid=live)
        if live and not t.reminded:
            t.reminded = True
            log.warning(
                "key.previous_still_valid",
                key=t.key.name,
                version=t.previous.version,
                fingerprint=t.previous.fingerprint,
                action="delete this key in Mistral's console",
            )
        if not live:
            t.previous = None

    def _secret_problem(self, t: _Tracked, exc: SecretNotFound | BadSecret) -> None:
        self.metrics.secret_error.labels(key=t.key.name).set(1)
        if isinstance(exc, BadSecret):
            log.error(
                "key.bad_secret", key=t.key.name, path=exc.path, field=exc.field, reason=exc.reason
            )
        else:
            log.error("key.secret_missing", key=t.key.name, path=t.key.vault_path)
        t.view = replace(t.view, problem=str(exc))
