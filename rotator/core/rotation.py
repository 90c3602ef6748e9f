"""Rotation: verify a version, deliver it to every sink or to none, record it with CAS.

Plain code over the ports (``SecretStore``, ``Verifier``, ``Sink``): the unit tests run it
against in-memory fakes, the integration tests against OpenBao and the Mistral stand-in.

The state in Vault is the commit point. A rotation first takes a *lease* (``pending_*``
fields written with check-and-set), so that of two instances only one delivers; it then
delivers to the sinks in order, puts the previous key back where it already landed if one
sink keeps failing, and finally records the new active version. A crash between the lease
and the record leaves a lease that expires; :meth:`Rotator.converge` then makes every sink
hold the recorded active version again, and the next poll rotates forward.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from rotator.adapters.metrics.registry import Metrics
from rotator.config import Settings
from rotator.core.backoff import BackoffPolicy
from rotator.core.delivery import LEASE_LOST, Retry, deliver_all, unexpected
from rotator.core.lease import RotationLease, orphaned
from rotator.domain.choice import LEASE_SKEW, choose_target, leased_by_other, stale_lease
from rotator.domain.expiry import Expiry, compute_expiry
from rotator.domain.model import (
    Delivery,
    KeyState,
    Outcome,
    RotationOutcome,
    SecretVersion,
    Status,
)
from rotator.errors import (
    BadSecret,
    CasConflict,
    NotPossible,
    RotatorError,
    SecretNotFound,
    StateProblem,
)
from rotator.logs import get_logger
from rotator.ports import SecretStore, Sink, Verifier

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ManagedKey:
    name: str
    vault_path: str
    sinks: Sequence[Sink] = ()


@dataclass(frozen=True)
class RotationResult:
    result: RotationOutcome
    active_version: int | None
    reason: str = ""
    version: int | None = None
    """The version that was considered."""
    status: Status | None = None
    """Mistral's verdict on that version, when it was asked."""
    secret: SecretVersion | None = field(default=None, repr=False)
    """The newly active version, so the caller need not read it again."""
    retry_after_s: float | None = None
    contended: bool = False
    """Another instance holds, or just took, the key's lease: nothing was decided here."""
    secret_problem: str | None = None
    """The candidate's data in Vault is unusable (no api_key, a past expiry): ops must fix
    or replace that version, and the alert on a broken secret must fire."""
    state: KeyState | None = field(default=None, repr=False)
    """After :meth:`Rotator.converge`: the key's state as read (and cleared of a dead lease),
    so that a restart need not read it again."""

    @property
    def summary(self) -> str:
        """``result: reason``, or the result alone: the key's last_result, a log's detail."""
        return f"{self.result}: {self.reason}" if self.reason else str(self.result)


def _contended(active: int | None, reason: str) -> RotationResult:
    return RotationResult(Outcome.NOOP, active, reason, contended=True)


def _secret_problem(version: int, field: str, reason: str) -> str:
    return (
        f"version {version} in Vault is unusable: field {field!r} {reason}; fix it, or "
        "write a new version"
    )


def retry_policy(settings: Settings) -> BackoffPolicy:
    """``rotation.retry_backoff`` doubling up to ``rotation.max_backoff``."""
    rotation = settings.rotation
    return BackoffPolicy(
        rotation.retry_backoff.total_seconds(), rotation.max_backoff.total_seconds()
    )


def _now() -> datetime:
    return datetime.now(UTC)


class Rotator:
    def __init__(
        self,
        *,
        store: SecretStore,
        verifier: Verifier,
        settings: Settings,
        metrics: Metrics,
        owner: str,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.verifier = verifier
        self.settings = settings
        self.metrics = metrics
        self.owner = owner
        self.clock = clock
        self._retry = Retry(settings.rotation.sink_attempts, retry_policy(settings), sleep)
        self.in_delivery: dict[str, int] = {}
        """Key name -> the version being delivered now: what a stop cut short, if it must."""

    # --- entry points ------------------------------------------------------------------

    async def rotate(
        self,
        key: ManagedKey,
        *,
        version: int | None = None,
        force: bool = False,
        break_lease: bool = False,
    ) -> RotationResult:
        """Promote the newest version (or ``version``); ``force`` re-delivers the active one.

        ``break_lease``: ops say the instance holding the key's lease is dead; take it over
        (logged as ``key.lease_broken``) instead of waiting for it to run out.
        """
        state, cas = await self.read_state(key)
        leased, state, cas = await self._leased(key, state, cas)
        if leased:
            if not break_lease:
                return _contended(state.active_version, "another instance is rotating")
            until = state.pending_until
            log.warning(
                "key.lease_broken",
                key=key.name,
                owner=state.pending_owner,
                version=state.pending_version,
                pending_until=until.isoformat() if until else None,
            )
            self.metrics.lease_takeovers.inc()
        asked = version is not None or force
        latest = None if asked else await self.store.latest_version(key.vault_path)
        target, why = choose_target(state, latest, explicit=version, force=force)
        if target is None:
            return RotationResult(Outcome.NOOP, state.active_version, why, version=latest)
        if target == state.active_version:
            return await self._redeliver(key, state, cas, target)
        return await self._promote(key, state, cas, target, Outcome.ROTATED, explicit=asked)

    async def rollback(self, key: ManagedKey) -> RotationResult:
        """Go back to the previous version, only if it still verifies."""
        state, cas = await self.read_state(key)
        leased, state, cas = await self._leased(key, state, cas)
        if leased:
            return _contended(state.active_version, "another instance is rotating")
        previous = state.previous_version
        if previous is None:
            # A mistake, not a failure: the key's own last_result stays as it was.
            if state.last_result == Outcome.ROLLED_BACK and state.rejected_version is not None:
                left = state.rejected_version
                raise NotPossible(
                    f"nothing to roll back to: the last change of {key.name} was a rollback "
                    f"from version {left}, and a rollback never goes forward again (rotate "
                    f"--version {left} promotes it)"
                )
            raise NotPossible(f"nothing to roll back to: {key.name} has no previous version")
        return await self._promote(key, state, cas, previous, Outcome.ROLLED_BACK, explicit=True)

    async def converge(self, key: ManagedKey, *, created: datetime | None = None) -> RotationResult:
        """After a start or a crash: clear a dead lease, give sinks that lack it the active key.

        ``created``: the secret's creation time when a folder list already said it (see
        :meth:`read_state`). The result carries the state read and, when it was read, the
        active version."""
        state, cas = await self.read_state(key, created=created)
        leased, state, cas = await self._leased(key, state, cas)
        mine = orphaned(state.pending_owner, self.owner)
        if leased and not mine:
            return replace(
                _contended(state.active_version, "another instance is rotating"), state=state
            )
        if state.pending_version is not None:
            log.warning(
                "key.lease_cleared",
                key=key.name,
                version=state.pending_version,
                owner=state.pending_owner,
                why="left by a stopped instance on this host" if mine else "ran out",
            )
            if state.pending_owner != self.owner:
                self.metrics.lease_takeovers.inc()
            state = replace(state, pending_version=None, pending_owner=None, pending_until=None)
            cas = await self.store.write_state(key.name, state, cas)
        if state.active_version is None or not key.sinks:
            return RotationResult(
                Outcome.NOOP, state.active_version, "nothing to converge", state=state
            )
        try:
            secret = await self.store.read_secret(key.vault_path, state.active_version)
        except (SecretNotFound, BadSecret) as exc:
            # Deleted or destroyed since it was delivered: nothing to re-deliver, but the key
            # must still start, so that a newer version is rotated to when one is written.
            log.warning(
                "key.active_unreadable",
                key=key.name,
                version=state.active_version,
                reason=str(exc),
            )
            return RotationResult(
                Outcome.NOOP,
                state.active_version,
                f"version {state.active_version} is unreadable",
                state=state,
            )
        delivery = self._delivery(key, secret)
        missing = [s for s in key.sinks if await self._lacks(s, delivery)]
        if not missing:
            held = "every sink holds the active key"
            return RotationResult(
                Outcome.NOOP, state.active_version, held, secret=secret, state=state
            )
        log.info(
            "key.converging",
            key=key.name,
            version=state.active_version,
            sinks=[s.id for s in missing],
        )
        result = await self._redeliver(
            key, state, cas, state.active_version, only=missing, secret=secret
        )
        return replace(result, secret=secret, state=state)

    # --- the state, checked ----------------------------------------------------------------

    async def read_state(
        self, key: ManagedKey, *, created: datetime | None = None
    ) -> tuple[KeyState, int]:
        """The key's state, checked to be this key's, with its identity filled in.

        Raises StateProblem for a state that describes another secret (two deployments
        sharing one ``vault.state_path``). A state of an earlier secret of the same path,
        deleted and created again since, is left behind: the new secret starts afresh.
        ``created``: the secret's creation time if the caller just listed it (OpenBao's
        detailed-metadata list carries it); otherwise its metadata is read for it.
        """
        state, cas = await self.store.read_state(key.name)
        if state.vault_path is not None and state.vault_path != key.vault_path:
            raise StateProblem(
                "key.state_foreign",
                f"the state of {key.name} describes the secret {state.vault_path}, "
                f"not {key.vault_path}",
                action="give each deployment its own vault.state_path",
                recorded_vault_path=state.vault_path,
                vault_path=key.vault_path,
            )
        if created is None:
            created = await self.store.secret_created(key.vault_path)
        if (
            created is not None
            and state.secret_created is not None
            and created != state.secret_created
        ):
            log.warning(
                "key.state_reset",
                key=key.name,
                vault_path=key.vault_path,
                reason="the secret was deleted and created again",
                previous_active_version=state.active_version,
                secret_created=created.isoformat(),
            )
            state = KeyState()
        identity = replace(
            state, vault_path=key.vault_path, secret_created=state.secret_created or created
        )
        return identity, cas

    async def _leased(
        self, key: ManagedKey, state: KeyState, cas: int
    ) -> tuple[bool, KeyState, int]:
        """Whether another instance holds a live lease, and the state to go on with: a stale
        lease (a skewed clock) is taken over at once, said and counted, and cleared so that
        it is not met again at the next poll."""
        now = self.clock()
        length = self.settings.rotation.lease
        if state.pending_owner != self.owner and stale_lease(state, now, length):
            until = state.pending_until
            log.warning(
                "key.lease_taken_over",
                key=key.name,
                owner=state.pending_owner,
                version=state.pending_version,
                pending_until=until.isoformat() if until else None,
                reason=f"ends more than {LEASE_SKEW} x rotation.lease from now (a skewed clock?)",
            )
            self.metrics.lease_takeovers.inc()
            cleared = replace(state, pending_version=None, pending_owner=None, pending_until=None)
            try:
                cas = await self.store.write_state(key.name, cleared, cas)
            except CasConflict:
                return True, state, cas  # someone wrote first: look again next time
            return False, cleared, cas
        return leased_by_other(state, self.owner, now, length), state, cas

    # --- the procedure -------------------------------------------------------------------

    async def _promote(
        self,
        key: ManagedKey,
        state: KeyState,
        cas: int,
        target: int,
        outcome: RotationOutcome,
        *,
        explicit: bool = False,
    ) -> RotationResult:
        """Make ``target`` the active version: read and check it, ask Mistral, deliver it to
        every sink under the lease, record it. Each step that ends the rotation early says
        how in the result it returns."""
        checked = await self._checked_candidate(key, state, cas, target, explicit=explicit)
        if isinstance(checked, RotationResult):
            return checked
        candidate, expires_at = checked
        refused = await self._ask_mistral(key, state, cas, target, candidate)
        if refused is not None:
            return refused
        lease = await self._lease(key, state, cas, target)
        if lease is None:
            return _contended(state.active_version, "another instance acted first")
        failure = await self._deliver_new(key, state, target, candidate, expires_at, lease)
        if failure == LEASE_LOST:
            return _contended(state.active_version, failure)
        if failure:
            return await self._record_failure(key, lease, target, failure)
        return await self._record(key, state, outcome, target, candidate, lease)

    async def _checked_candidate(
        self, key: ManagedKey, state: KeyState, cas: int, target: int, *, explicit: bool
    ) -> tuple[SecretVersion, datetime] | RotationResult:
        """The version's secret and when it expires; or, when it cannot be promoted, the
        result: gone (an error if ops named it), unreadable or expired (both rejected)."""
        try:
            candidate = await self.store.read_secret(key.vault_path, target)
            expiry = compute_expiry(
                candidate.expires_at, candidate.created_at, self.settings.expiry, key.vault_path
            )
        except SecretNotFound:
            if explicit:
                # Ops named it: "nothing to do" would hide the typo.
                raise NotPossible(
                    f"version {target} of {key.name} does not exist in Vault "
                    f"(never written, deleted or destroyed) at {key.vault_path}"
                ) from None
            return RotationResult(
                Outcome.NOOP, state.active_version, f"version {target} no longer exists", target
            )
        except BadSecret as exc:
            log.error(
                "key.bad_secret", key=key.name, version=target, field=exc.field, reason=exc.reason
            )
            rejected = await self._reject(
                key, state, cas, target, f"bad secret: {exc.field} {exc.reason}"
            )
            return replace(rejected, secret_problem=_secret_problem(target, exc.field, exc.reason))
        if expiry.at <= self.clock():
            return await self._reject_expired(key, state, cas, target, expiry)
        return candidate, expiry.at

    async def _reject_expired(
        self, key: ManagedKey, state: KeyState, cas: int, target: int, expiry: Expiry
    ) -> RotationResult:
        if not expiry.assumed:
            # A declared expiry already past is a typo or a stale key: the field is at fault.
            log.error(
                "key.bad_secret",
                key=key.name,
                version=target,
                field="expires_at",
                reason=f"is in the past ({expiry.at.isoformat()})",
            )
        rejected = await self._reject(
            key, state, cas, target, f"expired at {expiry.at.isoformat()}"
        )
        if expiry.assumed:
            return rejected
        past = f"is in the past ({expiry.at.isoformat()})"
        return replace(rejected, secret_problem=_secret_problem(target, "expires_at", past))

    async def _ask_mistral(
        self, key: ManagedKey, state: KeyState, cas: int, target: int, candidate: SecretVersion
    ) -> RotationResult | None:
        """None when Mistral takes the key; else the rotation is postponed (Mistral could not
        say) or the version rejected (Mistral refused it: never retried unless forced)."""
        verdict = await self.verifier.verify(candidate.api_key)
        if verdict.status.is_transient:
            log.info(
                "key.rotation_postponed",
                key=key.name,
                version=target,
                status=verdict.status.value,
                fingerprint=candidate.fingerprint,
            )
            return RotationResult(
                Outcome.POSTPONED,
                state.active_version,
                f"Mistral answered {verdict.status.value}",
                target,
                verdict.status,
                retry_after_s=verdict.retry_after_s,
            )
        if verdict.status.rejects:
            return await self._reject(
                key, state, cas, target, verdict.status.value, verdict.status, candidate
            )
        return None

    async def _deliver_new(
        self,
        key: ManagedKey,
        state: KeyState,
        target: int,
        candidate: SecretVersion,
        expires_at: datetime,
        lease: RotationLease,
    ) -> str | None:
        """Every sink gets the new key, or none keeps it (the previous one is put back where
        it already landed); the failure, if any (``LEASE_LOST`` when the lease went)."""
        previous = await self._read_quietly(key, state.active_version)
        self.in_delivery[key.name] = target
        try:
            return await deliver_all(
                key.sinks,
                self._delivery(key, candidate, expires_at),
                previous=self._delivery(key, previous) if previous else None,
                retry=self._retry,
                keep_lease=lease.keep,
            )
        finally:
            self.in_delivery.pop(key.name, None)

    async def _record(
        self,
        key: ManagedKey,
        state: KeyState,
        outcome: RotationOutcome,
        target: int,
        candidate: SecretVersion,
        lease: RotationLease,
    ) -> RotationResult:
        """Release the lease with the new active version recorded: the commit point."""
        now = self.clock()
        # ``replace``: what others keep in the state (open intake links, reminders) survives.
        final = replace(
            state,
            active_version=target,
            # A rollback is not undone by another one: that would go forward again, to the
            # very version just left (which stays rejected until ops name it).
            previous_version=None if outcome is Outcome.ROLLED_BACK else state.active_version,
            activated_at=now,
            last_result=outcome,
            # After a rollback the version we left must not come straight back on the next poll.
            rejected_version=state.active_version if outcome is Outcome.ROLLED_BACK else None,
            vault_path=key.vault_path,
            secret_created=state.secret_created,
        )
        if not await lease.release(final):
            # Not recorded: the instance that took the lease over sets the sinks right
            # (converge); this is no rotation, and is not counted as one.
            self.metrics.rotations.labels(key=key.name, result=Outcome.FAILED).inc()
            return RotationResult(
                Outcome.FAILED,
                state.active_version,
                LEASE_LOST,
                target,
                Status.VALID,
                contended=True,
            )
        self.metrics.rotations.labels(key=key.name, result=outcome).inc()
        self.metrics.last_rotation.labels(key=key.name).set(now.timestamp())
        self.metrics.active_version.labels(key=key.name).set(target)
        log.info(
            "key.rotated" if outcome is Outcome.ROTATED else "key.rolled_back",
            key=key.name,
            version=target,
            previous_version=state.active_version,
            fingerprint=candidate.fingerprint,
            sinks=len(key.sinks),
        )
        return RotationResult(outcome, target, "", target, Status.VALID, candidate)

    async def _reject(
        self,
        key: ManagedKey,
        state: KeyState,
        cas: int,
        target: int,
        reason: str,
        status: Status | None = None,
        candidate: SecretVersion | None = None,
    ) -> RotationResult:
        log.warning(
            "key.rotation_rejected",
            key=key.name,
            version=target,
            reason=reason,
            fingerprint=candidate.fingerprint if candidate else None,
        )
        self.metrics.rotations.labels(key=key.name, result=Outcome.REJECTED).inc()
        # On a conflict someone recorded something newer; our verdict still stands for us.
        with contextlib.suppress(CasConflict):
            await self.store.write_state(
                key.name,
                replace(state, rejected_version=target, last_result=f"rejected: {reason}"),
                cas,
            )
        return RotationResult(Outcome.REJECTED, state.active_version, reason, target, status)

    async def _lease(
        self, key: ManagedKey, state: KeyState, cas: int, version: int
    ) -> RotationLease | None:
        return await RotationLease.take(
            self.store,
            key.name,
            state,
            cas,
            version=version,
            owner=self.owner,
            length=self.settings.rotation.lease,
            clock=self.clock,
        )

    async def _record_failure(
        self, key: ManagedKey, lease: RotationLease, target: int, failure: str
    ) -> RotationResult:
        active = lease.state.active_version
        self.metrics.rotations.labels(key=key.name, result=Outcome.FAILED).inc()
        log.error(
            "key.rotation_failed",
            key=key.name,
            version=target,
            reason=failure,
            active_version=active,
        )
        await lease.release(replace(lease.state, last_result=f"failed: {failure}"))
        return RotationResult(Outcome.FAILED, active, failure, target, Status.VALID)

    async def _redeliver(
        self,
        key: ManagedKey,
        state: KeyState,
        cas: int,
        active: int,
        only: Sequence[Sink] | None = None,
        secret: SecretVersion | None = None,
    ) -> RotationResult:
        if secret is None:
            # Read before the lease is taken: a failure here must not leave a lease behind.
            try:
                secret = await self.store.read_secret(key.vault_path, active)
            except SecretNotFound:
                raise NotPossible(
                    f"the active version {active} of {key.name} was deleted or destroyed in "
                    f"Vault, so there is nothing to re-deliver: write a new version "
                    f"(`rotator stage {key.name}`) and rotate to it"
                ) from None
        lease = await self._lease(key, state, cas, active)
        if lease is None:
            return _contended(active, "another instance acted first")
        sinks = key.sinks if only is None else only
        self.in_delivery[key.name] = active
        try:
            failure = await deliver_all(
                sinks,
                self._delivery(key, secret),
                previous=None,
                retry=self._retry,
                keep_lease=lease.keep,
            )
        finally:
            self.in_delivery.pop(key.name, None)
        await lease.release(state)
        if failure:
            return RotationResult(Outcome.FAILED, active, failure, active)
        log.info(
            "key.redelivered",
            key=key.name,
            version=active,
            sinks=[s.id for s in sinks],
            fingerprint=secret.fingerprint,
        )
        return RotationResult(
            Outcome.NOOP,
            active,
            f"re-delivered version {active} to {len(sinks)} sink(s)",
            active,
            secret=secret,
        )

    async def _lacks(self, sink: Sink, delivery: Delivery) -> bool:
        try:
            return await sink.holds(delivery) is False
        except Exception as exc:
            # Cannot tell now (a SinkError, or a bug in the sink); a later force or rotation
            # delivers to it anyway. The key must start whatever one sink does.
            reason = (
                unexpected(exc, delivery.api_key) if not isinstance(exc, RotatorError) else str(exc)
            )
            log.warning("sink.unreadable", key=delivery.key, sink=sink.id, reason=reason)
            return False

    async def _read_quietly(self, key: ManagedKey, version: int | None) -> SecretVersion | None:
        if version is None:
            return None
        try:
            return await self.store.read_secret(key.vault_path, version)
        except (SecretNotFound, BadSecret):
            log.warning("key.previous_unreadable", key=key.name, version=version)
            return None

    def _delivery(
        self, key: ManagedKey, secret: SecretVersion, expires_at: datetime | None = None
    ) -> Delivery:
        if expires_at is None:
            try:
                expires_at = compute_expiry(
                    secret.expires_at, secret.created_at, self.settings.expiry
                ).at
            except BadSecret:
                expires_at = None
        return Delivery(key.name, secret.version, secret.api_key, expires_at)
