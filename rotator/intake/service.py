"""What a link can do: be made, be withdrawn, open its page, take a key.

A key taken here goes the way ``rotator stage`` sends one (verified first, written to Vault
with check-and-set) and then straight through the key service's rotation (verified again,
delivered to every sink or to none), so the owner learns whether the key is live, not only
whether it was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from rotator.config import Settings
from rotator.config.intake import OwnerSettings
from rotator.core.backoff import CAS_RETRY
from rotator.core.rotation import ManagedKey, RotationResult
from rotator.domain.expiry import parse_expires_at
from rotator.domain.keyview import KeyView
from rotator.domain.model import KeyState, SecretVersion, Status, fingerprint
from rotator.errors import BadSecret, CasConflict, RotatorError, SecretNotFound
from rotator.intake import links as L
from rotator.intake.metrics import UNKNOWN_KEY, IntakeMetrics
from rotator.logs import REDACTOR, get_logger
from rotator.ports import Verifier

log = get_logger(__name__)

ROTATE_WAIT_S = 30.0
_REFUSED = {
    Status.INVALID: "invalid",
    Status.BILLING_BLOCKED: "billing",
    Status.FORBIDDEN: "plan",
    Status.MODEL_UNAVAILABLE: "plan",
}


class Store(Protocol):
    async def read_state(self, name: str) -> tuple[KeyState, int]: ...
    async def write_state(self, name: str, state: KeyState, cas: int) -> int: ...
    async def read_secret(self, path: str, version: int | None = None) -> SecretVersion: ...
    async def current_version(self, path: str) -> int: ...
    async def write_secret(self, path: str, data: dict[str, str], cas: int | None) -> int: ...
    async def custom_metadata(self, path: str) -> dict[str, str]: ...


class Keys(Protocol):
    """The daemon's key service, as far as the intake uses it."""

    def names(self) -> list[str]: ...
    def managed(self) -> list[ManagedKey]: ...
    def view(self, name: str) -> KeyView: ...
    def busy(self, name: str) -> bool: ...
    @property
    def stopping(self) -> bool: ...
    async def rotate(
        self, name: str, *, version: int | None = None, force: bool = False
    ) -> RotationResult: ...


class UnknownKey(RotatorError):
    """No managed key has that name."""


@dataclass(frozen=True)
class Page:
    """What the page shows about the key a link is for; never the key itself."""

    key: str
    integration: str
    language: str | None
    fingerprint: str | None
    expires_at: datetime | None
    key_name: str | None
    workspace: str | None
    link_expires_at: datetime
    attempts_left: int


@dataclass(frozen=True)
class Answer:
    """What the page answers to a submitted key: ``message`` is an i18n key; ``accepted``
    says the key was stored, ``live`` that it is delivered. (Not a rotation's ``Outcome``:
    the rotation that may follow is one step of it, reported in ``live``.)"""

    message: str
    page: Page | None
    accepted: bool = False
    live: bool = False
    fingerprint: str | None = None
    saved: bool = False
    language: str | None = None
    """The owner's language, for an answer without a page (the link's last attempt)."""


class IntakeService:
    def __init__(
        self,
        *,
        store: Store,
        verifier: Verifier,
        keys: Keys,
        settings: Settings,
        metrics: IntakeMetrics,
        public_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if settings.intake is None:
            raise ValueError("no intake section in the settings")
        self.store = store
        self.verifier = verifier
        self.keys = keys
        self.settings = settings
        self.intake = settings.intake
        self.metrics = metrics
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._seen: dict[str, list[L.Link]] = {}
        """The key's open links as last read or written, for the gauges."""

    # --- links ------------------------------------------------------------------------------

    async def create(self, name: str, ttl: timedelta | None = None) -> tuple[str, datetime]:
        """A fresh link for ``name``: its URL (shown once) and when it expires."""
        self._managed(name)
        token = L.new_token(name)
        # Known to the scrubber before it exists anywhere: no log line can carry it.
        REDACTOR.add(token)
        expires = self.clock() + (ttl or self.intake.link_ttl)
        await self._update(name, lambda links: L.add(links, token, expires))
        log.info("intake.created", key=name, expires_at=expires.isoformat())
        return f"{self.public_url}/intake/{token}", expires

    async def revoke(self, name: str) -> int:
        """Withdraw every open link of ``name``; how many there were."""
        self._managed(name)
        before: list[L.Link] = []

        def drop(links: list[L.Link]) -> list[L.Link]:
            before[:] = links
            return []

        await self._update(name, drop)
        log.info("intake.revoked", key=name, links=len(before))
        return len(before)

    def refresh_gauges(self) -> None:
        now = self.clock()
        for name, links in list(self._seen.items()):
            self._gauge(name, L.usable(links, now, self.intake.max_failed_attempts))

    # --- the page ---------------------------------------------------------------------------

    async def open(self, token: str) -> Page | None:
        """The page for an open link; None for every link that cannot be used."""
        found = await self._find(token)
        if found is None:
            self._refused(L.key_of(token), "get")
            return None
        name, link = found
        return await self._page(name, link)

    async def submit(self, token: str, api_key: str, expires_at: str) -> Answer | None:
        """Check, verify, store and rotate to the key; None when the link cannot be used."""
        name = L.key_of(token)
        # Only a managed key gets a lock: anyone can post to /intake/<any name>.<43 chars>
        # (the csrf value follows from the token), and a lock for every name made up would
        # be kept for ever.
        if name is None or name not in self.keys.names():
            self._refused(name, "post")
            return None
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            found = await self._find(token)
            if found is None:
                self._refused(name, "post")
                return None
            return await self._submit(found[0], found[1], api_key, expires_at)

    async def _submit(
        self, name: str, link: L.Link, api_key: str, expires_at: str
    ) -> Answer | None:
        api_key = api_key.strip()
        if api_key:
            REDACTOR.add(api_key)
        problem = _check_key(api_key) or self._check_expiry(expires_at)
        if problem:
            return await self._reject(name, link, problem, reason=problem)
        verdict = await self.verifier.verify(api_key)
        if verdict.status.is_transient:
            self.metrics.submissions.labels(key=name, result="rejected").inc()
            log.info(
                "intake.rejected",
                key=name,
                reason="mistral_busy",
                counted=False,
                status=verdict.status.value,
            )
            return Answer("busy", await self._page(name, link))
        if verdict.status is not Status.VALID:
            return await self._reject(
                name, link, _REFUSED[verdict.status], reason=verdict.status.value
            )
        return await self._accept(name, link, api_key, parse_expires_at(expires_at))

    async def _accept(
        self, name: str, link: L.Link, api_key: str, expiry: datetime
    ) -> Answer | None:
        key = self._managed(name)
        data = {"api_key": api_key, "expires_at": expiry.isoformat()}
        data.update(await self._labels(key.vault_path))
        page = await self._page(name, link)
        # The link is used up first, with check-and-set on the key's state: of two
        # submissions of one link (two instances, each past its own lock) one takes it and
        # the other is refused, instead of both writing a key. A write that fails gives it
        # back, so the owner can try again.
        if not await self._take(name, link):
            self._refused(name, "post")
            return None
        try:
            cas = await self.store.current_version(key.vault_path)
            version = await self.store.write_secret(key.vault_path, data, cas)
        except CasConflict:
            await self._give_back(name, link)
            log.warning("intake.rejected", key=name, reason="vault_conflict", counted=False)
            return Answer("conflict", page)
        except RotatorError:
            await self._give_back(name, link)
            raise
        self.metrics.submissions.labels(key=name, result="accepted").inc()
        live, detail = await self._rotate(name, version)
        log.info(
            "intake.accepted",
            key=name,
            version=version,
            fingerprint=fingerprint(api_key),
            live=live,
            delivery=detail,
        )
        message = "accepted" if live else "accepted_not_live"
        return Answer(
            message, page, accepted=True, live=live, fingerprint=fingerprint(api_key), saved=True
        )

    async def _take(self, name: str, link: L.Link) -> bool:
        """Remove ``link`` from the key's state; False when it was gone already."""
        present: list[bool] = []

        def take(links: list[L.Link]) -> list[L.Link]:
            present[:] = [any(x.sha256 == link.sha256 for x in links)]
            return L.without(links, link)

        await self._update(name, take)
        return present == [True]

    async def _give_back(self, name: str, link: L.Link) -> None:
        with contextlib.suppress(RotatorError):
            await self._update(name, lambda links: [*links, link][-L.MAX_OPEN :])

    async def _rotate(self, name: str, version: int) -> tuple[bool, str]:
        """Rotate to ``version`` now, through the key service (waiting out a routine poll)."""
        deadline = time.monotonic() + ROTATE_WAIT_S
        await self._idle(name, deadline)
        if self.keys.stopping:
            # The owner gets their answer before the listener closes ("stored; our team
            # completes it"); the next start rotates to the stored version.
            return False, "the daemon is stopping"
        try:
            result = await self.keys.rotate(name)
        except RotatorError as exc:
            # Another operation got there first; it rotates to the newest version too.
            await self._idle(name, deadline)
            return self.keys.view(name).active_version == version, type(exc).__name__
        return result.active_version == version, result.summary

    async def _idle(self, name: str, deadline: float) -> None:
        # The key service's lock is its own: looking at it is all it offers from outside.
        while (  # noqa: ASYNC110
            self.keys.busy(name) and not self.keys.stopping and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)

    async def _reject(self, name: str, link: L.Link, message: str, *, reason: str) -> Answer:
        changed = await self._update(name, lambda links: L.failed(links, link))
        left = next((x for x in changed if x.sha256 == link.sha256), None)
        self.metrics.submissions.labels(key=name, result="rejected").inc()
        log.info("intake.rejected", key=name, reason=reason, counted=True, link_dead=left is None)
        if left is not None:
            return Answer(message, await self._page(name, left))
        # The link is dead now, but this answer still goes to its owner: in their language.
        owner = await self.owner(name)
        return Answer(message, None, language=owner.language if owner else None)

    # --- internals --------------------------------------------------------------------------

    def _managed(self, name: str) -> ManagedKey:
        for key in self.keys.managed():
            if key.name == name:
                return key
        raise UnknownKey(f"unknown key: {name}")

    async def _find(self, token: str) -> tuple[str, L.Link] | None:
        name = L.key_of(token)
        if name is None or name not in self.keys.names():
            return None
        state, _ = await self.store.read_state(name)
        links = L.usable(
            L.decode(state.intake_links), self.clock(), self.intake.max_failed_attempts
        )
        self._seen[name] = links
        self._gauge(name, links)
        link = L.find(links, token)
        return (name, link) if link else None

    async def _update(
        self, name: str, change: Callable[[list[L.Link]], list[L.Link]]
    ) -> list[L.Link]:
        """Read, change and write the key's links with check-and-set (a rotation or another
        instance may write the state meanwhile: read again and redo)."""
        for attempt in range(8):
            state, cas = await self.store.read_state(name)
            now = self.clock()
            links = L.usable(L.decode(state.intake_links), now, self.intake.max_failed_attempts)
            changed = L.usable(change(links), now, self.intake.max_failed_attempts)
            try:
                await self.store.write_state(
                    name, replace(state, intake_links=L.encode(changed)), cas
                )
            except CasConflict:
                await asyncio.sleep(CAS_RETRY.wait(attempt))
                continue
            self._seen[name] = changed
            self._gauge(name, changed)
            return changed
        raise CasConflict(f"the state of {name} kept changing; try again")

    def _gauge(self, name: str, links: list[L.Link]) -> None:
        newest = max((x.expires_at.timestamp() for x in links), default=None)
        self.metrics.set_open(name, len(links), newest)

    def _refused(self, name: str | None, method: str) -> None:
        label = name if name is not None and name in self.keys.names() else UNKNOWN_KEY
        self.metrics.submissions.labels(key=label, result="refused_link").inc()
        log.info("intake.refused_link", key=label, method=method)

    async def _page(self, name: str, link: L.Link) -> Page:
        key = self._managed(name)
        view = self.keys.view(name)
        labels = await self._labels(key.vault_path)
        owner = await self.owner(name)
        return Page(
            key=name,
            integration=labels.get("key_name") or name,
            language=owner.language if owner else None,
            fingerprint=view.fingerprint,
            expires_at=view.expires_at,
            key_name=labels.get("key_name"),
            workspace=labels.get("workspace"),
            link_expires_at=link.expires_at,
            attempts_left=self.intake.max_failed_attempts - link.failures,
        )

    async def integration(self, name: str) -> str:
        """What the owner calls the key: its ``key_name`` in Vault, else the key's name."""
        return (await self._labels(self._managed(name).vault_path)).get("key_name") or name

    async def _labels(self, path: str) -> dict[str, str]:
        """``key_name`` and ``workspace`` of the newest version, carried to the next one."""
        try:
            latest = await self.store.read_secret(path)
        except (SecretNotFound, BadSecret):
            return {}
        found = {"key_name": latest.key_name, "workspace": latest.workspace}
        return {k: v for k, v in found.items() if v}

    async def owner(self, name: str) -> OwnerSettings | None:
        """From the key's config, else the secret's ``custom_metadata``."""
        configured = next((k.owner for k in self.settings.keys if k.name == name), None)
        if configured is not None:
            return configured
        meta = await self.store.custom_metadata(self._managed(name).vault_path)
        email = meta.get("owner_email", "").strip() or None
        language = meta.get("owner_language", "").strip().lower()[:2] or None
        if email is None and language is None:
            return None
        try:
            return OwnerSettings(email=email, language=language)  # type: ignore[arg-type]
        except ValueError:
            log.warning("intake.bad_owner_metadata", key=name)
            return None

    def _check_expiry(self, text: str) -> str | None:
        text = text.strip()
        if not text:
            return "expiry_missing"
        try:
            at = parse_expires_at(text, "expires_at")
        except RotatorError:
            return "expiry_format"
        now = self.clock()
        if at <= now:
            return "expiry_past"
        if at > now + timedelta(days=self.settings.expiry.max_lifetime_days + 1):
            return "expiry_beyond"
        return None


def _check_key(api_key: str) -> str | None:
    if not api_key:
        return "key_missing"
    if any(ch.isspace() for ch in api_key):
        return "key_whitespace"
    if not (api_key.isascii() and api_key.isprintable()):
        # An invisible character copied with the key (zero-width space, BOM, a control
        # character): Mistral never sees it, so "Mistral does not accept this key" was wrong.
        return "key_characters"
    return None
