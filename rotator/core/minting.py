"""Minting: create the replacement key in Mistral, verify it, store it, rotate, retire the old.

Plain code over ports (``SecretStore``, ``Verifier``, ``AdminApi`` and a ``rotate`` callable
that is the daemon's verified, all-or-nothing delivery); the unit tests run it over fakes.

The key's state in Vault is the commit point, as for rotation. A mint first records an
*intent* (``mint_intent``, ``mint_owner``, ``mint_until``) with check-and-set: of two
instances one mints. The key it creates is named ``<template> #<first 8 hex of the intent>``,
so that whatever happens next, a later pass finds it by that tag: if Vault holds it (the
crash came after the write) the mint is finished, else it is deleted in Mistral and the mint
starts again. No key is left in Mistral that nobody holds; a key never gets two mints.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from rotator.config.admin import MintSettings
from rotator.domain.model import KeyState, Outcome, SecretVersion, Status
from rotator.domain.orgkeys import (
    AdminApi,
    AdminApiError,
    AdminAuthError,
    AdminRefused,
    MintedKey,
    OrgKey,
)
from rotator.errors import BadSecret, CasConflict, SecretNotFound
from rotator.logs import get_logger
from rotator.ports import SecretStore, Verifier

log = get_logger(__name__)

MintOutcome = Literal[
    Outcome.ROTATED, Outcome.FAILED, Outcome.CONTENDED, Outcome.NOOP, Outcome.POSTPONED
]
TAG_HEX = 8
VERIFY_STEPS_S = (0.25, 0.5, 1.0, 2.0, 5.0)
"""Waits between tries of a new key during its warm-up: quick at first (it is often ready
within a second), then at most one request every 5 s for the rest of ``verify_warmup``."""


class RotationLike(Protocol):
    @property
    def result(self) -> str: ...

    @property
    def reason(self) -> str: ...


Rotate = Callable[[str, int], Awaitable[RotationLike]]
"""The daemon's rotation of key NAME to VERSION (verified, all-or-nothing delivery)."""


class MintMetrics(Protocol):
    def mint(self, key: str, result: str) -> None:
        """``result``: minted, failed, orphan_deleted."""
        ...

    def previous_revoked(self, key: str) -> None: ...


class _NoMetrics:
    def mint(self, key: str, result: str) -> None:
        pass

    def previous_revoked(self, key: str) -> None:
        pass


@dataclass(frozen=True)
class MintTarget:
    name: str
    vault_path: str
    mint: MintSettings


@dataclass(frozen=True)
class MintResult:
    result: MintOutcome
    reason: str = ""
    version: int | None = None
    mistral_key_id: str | None = None


def tag(intent: str) -> str:
    """What ends the name of a key minted under ``intent``."""
    return f" #{intent[:TAG_HEX]}"


def mint_due(
    mint: MintSettings,
    *,
    expires_at: datetime | None,
    now: datetime,
    active_version: int | None,
    latest_version: int | None,
) -> bool:
    """Whether to mint now: the active key has less than ``before_expiry`` left and no newer
    version waits in Vault (a minted one not yet delivered must not cause a second mint)."""
    if expires_at is None or active_version is None:
        return False
    if latest_version is not None and latest_version != active_version:
        return False
    return expires_at - now < mint.before_expiry


def revoke_due(state: KeyState, revoke_after: timedelta | None, now: datetime) -> bool:
    """Whether the previous key should now be deleted in Mistral."""
    if revoke_after is None or state.previous_version is None or state.activated_at is None:
        return False
    if state.last_result == Outcome.ROLLED_BACK:
        return False  # ops went back: both keys stay until a person decides
    if state.revoked_version == state.previous_version:
        return False
    if state.previous_version == state.active_version:
        return False
    return now >= state.activated_at + revoke_after


def match_record(secret: SecretVersion, records: list[OrgKey]) -> OrgKey | None:
    """The Mistral record of a stored key: by ``mistral_key_id``, else the one record whose
    ``hidden_key`` fits (two fits: no match, never a guess)."""
    if secret.mistral_key_id:
        return next((r for r in records if r.key_id == secret.mistral_key_id), None)
    fits = [r for r in records if r.matches(secret.api_key)]
    return fits[0] if len(fits) == 1 else None


def _now() -> datetime:
    return datetime.now(UTC)


class Minter:
    def __init__(
        self,
        *,
        store: SecretStore,
        verifier: Verifier,
        admin: AdminApi,
        rotate: Rotate,
        owner: str,
        metrics: MintMetrics | None = None,
        intent_lease: timedelta = timedelta(minutes=2),
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        new_intent: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.store = store
        self.verifier = verifier
        self.admin = admin
        self.rotate = rotate
        self.owner = owner
        self.metrics: MintMetrics = metrics or _NoMetrics()
        self.intent_lease = intent_lease
        self.clock = clock
        self.sleep = sleep
        self.new_intent = new_intent

    # --- minting --------------------------------------------------------------------------

    async def mint(self, target: MintTarget, *, replacing: int | None = None) -> MintResult:
        """Create, verify, store and rotate to a new key; clean up a dead mint first.

        ``replacing``: the active version the caller judged due for replacement; when the
        state says another is active now (another instance minted meanwhile), nothing is
        done. The scheduler passes it; ops asking for a mint do not."""
        state, cas = await self.store.read_state(target.name)
        if state.mint_intent is not None:
            if self._held_by_other(state):
                return MintResult(Outcome.CONTENDED, "another instance is minting this key")
            recovered = await self.recover(target)
            if recovered.result is not Outcome.NOOP:
                return recovered
            state, cas = await self.store.read_state(target.name)
        if replacing is not None and state.active_version != replacing:
            return MintResult(Outcome.NOOP, f"version {replacing} was already replaced")
        intent = self.new_intent()
        try:
            cas = await self.store.write_state(target.name, self._intent(state, intent), cas)
        except CasConflict:
            return MintResult(Outcome.CONTENDED, "another instance acted first")
        return await self._mint(target, intent, cas)

    async def _mint(self, target: MintTarget, intent: str, cas: int) -> MintResult:
        name, mint = target.name, target.mint
        today = self.clock().date()
        try:
            made = await self.admin.create_key(
                name=mint.key_name(name, today) + tag(intent),
                workspace_uuid=mint.workspace_uuid,
                expiration=mint.expiration(today),
                user_id=mint.user_id,
            )
        except AdminApiError as exc:
            # 401/403/4xx: nothing was made. No answer: maybe it was; find it by its tag.
            sure = isinstance(exc, AdminAuthError | AdminRefused)
            if sure or await self._delete_tagged(target, intent, keep=set()):
                await self._clear_intent(target.name, intent)
            return self._failed(target, "create", str(exc))
        record = made.record
        verdict = await self._verify_warm(target, made, intent)
        if verdict is not Status.VALID:
            await self._discard(target, intent, record)
            return self._failed(target, "verify", f"the new key is {verdict.value}")
        try:
            version = await self._store(target, made)
        except CasConflict:
            await self._discard(target, intent, record)
            return self._failed(target, "vault", "a newer version was written meanwhile")
        self.metrics.mint(name, "minted")
        log.info(
            "key.minted",
            key=name,
            version=version,
            mistral_key_id=record.key_id,
            fingerprint=made.fingerprint,
            expires_at=record.expires_at.isoformat() if record.expires_at else None,
            key_name=record.name,
        )
        rotation = await self.rotate(name, version)
        await self._clear_intent(name, intent)
        outcome: MintOutcome = (
            Outcome.ROTATED if rotation.result is Outcome.ROTATED else Outcome.FAILED
        )
        if outcome is Outcome.FAILED:
            # The key is in Vault: the poll delivers it once the sinks take it. Not an orphan.
            log.error("key.mint_failed", key=name, step="rotate", reason=rotation.reason)
        return MintResult(outcome, rotation.reason, version, record.key_id)

    async def _verify_warm(self, target: MintTarget, made: MintedKey, intent: str) -> Status:
        """A new key may be refused for a while: retry until ``verify_warmup`` has passed."""
        deadline = self.clock() + target.mint.verify_warmup
        tries = 0
        while True:
            verdict = await self.verifier.verify(made.api_key)
            if verdict.status is Status.VALID:
                return verdict.status
            waiting = verdict.status is Status.INVALID or verdict.status.is_transient
            if not waiting or self.clock() >= deadline:
                return verdict.status
            await self._keep_intent(target.name, intent)
            await self.sleep(VERIFY_STEPS_S[min(tries, len(VERIFY_STEPS_S) - 1)])
            tries += 1

    async def _store(self, target: MintTarget, made: MintedKey) -> int:
        record = made.record
        latest = await self.store.latest_version(target.vault_path)
        data = {"api_key": made.api_key, "key_name": record.name, "mistral_key_id": record.key_id}
        if record.expires_at is not None:
            data["expires_at"] = record.expires_at.isoformat().replace("+00:00", "Z")
        workspace = record.workspace_name or record.workspace_id or target.mint.workspace_uuid
        data["workspace"] = workspace
        return await self.store.write_secret(target.vault_path, data, cas=latest or 0)

    # --- recovery -------------------------------------------------------------------------

    async def recover(self, target: MintTarget) -> MintResult:
        """Finish or undo a mint that did not end (crash, outage). ``noop``: nothing to do."""
        state, _ = await self.store.read_state(target.name)
        intent = state.mint_intent
        if intent is None:
            return MintResult(Outcome.NOOP)
        if self._held_by_other(state):
            return MintResult(Outcome.CONTENDED, "another instance is minting this key")
        stored = await self._stored_ids(target)
        try:
            tagged = [r for r in await self.admin.list_keys() if r.name.endswith(tag(intent))]
        except AdminApiError as exc:
            return self._failed(target, "recover", str(exc))
        kept = [r for r in tagged if r.key_id in stored]
        if not await self._delete_tagged(target, intent, keep=stored, records=tagged):
            return MintResult(Outcome.FAILED, "could not delete the unfinished mint's key")
        if kept:
            # The crash came after the Vault write: the key is held, the mint is finished.
            version = stored[kept[0].key_id]
            rotation = await self.rotate(target.name, version)
            await self._clear_intent(target.name, intent)
            log.info("key.mint_resumed", key=target.name, version=version, result=rotation.result)
            # "noop" (already active) is done too; a failed delivery is retried by the poll.
            failed = rotation.result in (Outcome.FAILED, Outcome.REJECTED, Outcome.POSTPONED)
            outcome: MintOutcome = Outcome.FAILED if failed else Outcome.ROTATED
            return MintResult(outcome, rotation.reason, version, kept[0].key_id)
        await self._clear_intent(target.name, intent)
        return MintResult(Outcome.NOOP, "the unfinished mint was undone")

    async def _stored_ids(self, target: MintTarget) -> dict[str, int]:
        """``mistral_key_id`` -> version, over every live version in Vault."""
        out: dict[str, int] = {}
        for version in await self.store.live_versions(target.vault_path):
            with contextlib.suppress(SecretNotFound, BadSecret):
                secret = await self.store.read_secret(target.vault_path, version)
                if secret.mistral_key_id:
                    out[secret.mistral_key_id] = version
        return out

    async def _delete_tagged(
        self,
        target: MintTarget,
        intent: str,
        *,
        keep: set[str] | dict[str, int],
        records: list[OrgKey] | None = None,
    ) -> bool:
        """Delete every key carrying the intent's tag that Vault does not hold; True if none
        is left. Never one Vault holds: a sink may have it."""
        try:
            if records is None:
                records = [r for r in await self.admin.list_keys() if r.name.endswith(tag(intent))]
            for record in records:
                if record.key_id in keep:
                    continue
                await self.admin.delete_key(record.key_id)
                self.metrics.mint(target.name, "orphan_deleted")
                log.warning(
                    "key.mint_orphan_deleted",
                    key=target.name,
                    mistral_key_id=record.key_id,
                    key_name=record.name,
                )
        except AdminApiError as exc:
            log.warning("key.mint_cleanup_postponed", key=target.name, reason=str(exc))
            return False
        return True

    async def _discard(self, target: MintTarget, intent: str, record: OrgKey) -> None:
        """Undo a mint whose key must not be used; the intent stays if the delete fails."""
        try:
            await self.admin.delete_key(record.key_id)
        except AdminApiError as exc:
            log.warning("key.mint_cleanup_postponed", key=target.name, reason=str(exc))
            return
        self.metrics.mint(target.name, "orphan_deleted")
        log.warning(
            "key.mint_orphan_deleted",
            key=target.name,
            mistral_key_id=record.key_id,
            key_name=record.name,
        )
        await self._clear_intent(target.name, intent)

    # --- retiring the replaced key ----------------------------------------------------------

    async def retire(self, target: MintTarget, records: list[OrgKey] | None = None) -> str | None:
        """Delete the previous key in Mistral once ``revoke_previous_after`` has passed.

        Also the minted keys of older versions that a quicker rotation skipped (a key staged
        by hand between two mints), matched by their ``mistral_key_id``. Returns the previous
        key's ``key_id`` if it was deleted. Never the active key, never a key that cannot be
        matched for sure (no ``mistral_key_id`` and no unique ``hidden_key``)."""
        state, cas = await self.store.read_state(target.name)
        due = revoke_due(state, target.mint.revoke_previous_after, self.clock())
        if not due or state.previous_version is None or state.active_version is None:
            return None
        previous: SecretVersion | None = None
        active: SecretVersion | None = None
        with contextlib.suppress(SecretNotFound, BadSecret):
            previous = await self.store.read_secret(target.vault_path, state.previous_version)
            active = await self.store.read_secret(target.vault_path, state.active_version)
        if records is None:
            records = await self.admin.list_keys()
        doomed: list[tuple[SecretVersion, str]] = []
        if previous is not None and active is not None:
            keep = {active.mistral_key_id} | {
                r.key_id for r in records if r.matches(active.api_key)
            }
            old = match_record(previous, records)
            if old is None:
                log.info("key.previous_unmatched", key=target.name, version=previous.version)
            elif old.key_id not in keep and previous.api_key != active.api_key:
                doomed.append((previous, old.key_id))
            doomed += await self._skipped(target, state.previous_version, records, keep, active)
        for secret, key_id in doomed:
            deleted = await self.admin.delete_key(key_id)
            self.metrics.previous_revoked(target.name)
            log.info(
                "key.previous_revoked",
                key=target.name,
                version=secret.version,
                mistral_key_id=key_id,
                fingerprint=secret.fingerprint,
                already_gone=not deleted,
            )
        # Done for this previous version, whatever was found: not asked again every poll.
        with contextlib.suppress(CasConflict):
            await self.store.write_state(
                target.name, replace(state, revoked_version=state.previous_version), cas
            )
        first = doomed[0] if doomed else None
        return first[1] if first and first[0] is previous else None

    async def _skipped(
        self,
        target: MintTarget,
        previous: int,
        records: list[OrgKey],
        keep: set[str | None],
        active: SecretVersion,
    ) -> list[tuple[SecretVersion, str]]:
        """Older versions whose minted key still lives in Mistral."""
        live = {r.key_id for r in records}
        out = []
        for version in await self.store.live_versions(target.vault_path):
            if version >= previous:
                continue
            with contextlib.suppress(SecretNotFound, BadSecret):
                secret = await self.store.read_secret(target.vault_path, version)
                key_id = secret.mistral_key_id
                other = secret.api_key != active.api_key
                if key_id and key_id in live and key_id not in keep and other:
                    out.append((secret, key_id))
        return out

    # --- the intent -------------------------------------------------------------------------

    def _held_by_other(self, state: KeyState) -> bool:
        return (
            state.mint_owner != self.owner
            and state.mint_until is not None
            and state.mint_until > self.clock()
        )

    def _intent(self, state: KeyState, intent: str) -> KeyState:
        return replace(
            state,
            mint_intent=intent,
            mint_owner=self.owner,
            mint_until=self.clock() + self.intent_lease,
        )

    async def _keep_intent(self, name: str, intent: str) -> None:
        """Extend the intent while a new key warms up (a live mint is never taken over)."""
        state, cas = await self.store.read_state(name)
        if state.mint_intent != intent or state.mint_until is None:
            return
        if state.mint_until - self.clock() > self.intent_lease / 2:
            return
        with contextlib.suppress(CasConflict):
            await self.store.write_state(name, self._intent(state, intent), cas)

    async def _clear_intent(self, name: str, intent: str) -> None:
        for _ in range(3):
            state, cas = await self.store.read_state(name)
            if state.mint_intent != intent:
                return  # a rotation's final write already dropped it
            cleared = replace(state, mint_intent=None, mint_owner=None, mint_until=None)
            try:
                await self.store.write_state(name, cleared, cas)
                return
            except CasConflict:
                continue

    def _failed(self, target: MintTarget, step: str, reason: str) -> MintResult:
        self.metrics.mint(target.name, Outcome.FAILED)
        log.error("key.mint_failed", key=target.name, step=step, reason=reason)
        return MintResult(Outcome.FAILED, f"{step}: {reason}")
