"""The SecretStore adapter: KV v2 in Vault or OpenBao, through hvac.

hvac is synchronous: every call runs in a thread of Vault's own bounded pool through
:meth:`VaultStore._call`, the one place that logs in, retries once after a refusal, maps
failures to ``rotator.errors`` and keeps ``rotator_vault_up`` current.

``rotator_vault_up`` says whether Vault *answered*: 0 when it is down, sealed, timing out
or failing with 5xx. A permission denied (a policy that misses a path, a refused login) is
an answer: ``vault_up`` stays 1, the call raises VaultPermissionDenied naming the path, and
``rotator_errors_total{component="vault"}`` counts it, as it counts every failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import hvac
import requests
from hvac import exceptions as hvac_exc
from hvac import utils as hvac_utils

from rotator.adapters.metrics.registry import Metrics
from rotator.adapters.vault.auth import Authenticator, CredentialsError
from rotator.adapters.vault.codec import (
    decode_state,
    encode_state,
    live_versions,
    parse_secret,
    parse_time,
)
from rotator.adapters.vault.deadline import WATCHDOG, deadline_session
from rotator.adapters.vault.direct import Answer, DirectReads
from rotator.adapters.vault.listing import LIST_PAGE, FolderUnsupported, Listed, page_request
from rotator.config.vault import VaultSettings
from rotator.domain.model import KeyState, SecretVersion
from rotator.errors import (
    CasConflict,
    RotatorError,
    SecretNotFound,
    StateProblem,
    VaultError,
    VaultPermissionDenied,
)
from rotator.logs import REDACTOR, get_logger

log = get_logger(__name__)
T = TypeVar("T")

_UNAVAILABLE: dict[type[BaseException], str] = {
    requests.exceptions.Timeout: "timed out",
    requests.exceptions.SSLError: "TLS handshake or certificate check failed",
    requests.exceptions.ConnectionError: "unreachable (cannot connect)",
    requests.exceptions.RequestException: "request failed",
    hvac_exc.VaultDown: "sealed or unavailable (503)",
    hvac_exc.VaultNotInitialized: "not initialized (501)",
    hvac_exc.InternalServerError: "internal error (500)",
    hvac_exc.BadGateway: "bad gateway (502)",
    hvac_exc.RateLimitExceeded: "rate limited (429)",
    hvac_exc.UnexpectedError: "unexpected answer",
}


VAULT_CONCURRENCY = 16
"""At most this many Vault requests at a time: hvac is synchronous, one thread each. The
poll runs as many keys at a time on the Vault side (:mod:`rotator.app.scheduler`)."""


class VaultStore:
    """KV v2 reads and check-and-set writes, as the daemon's one Vault client."""

    def __init__(
        self, settings: VaultSettings, metrics: Metrics, *, list_page: int = LIST_PAGE
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._mount = settings.kv_mount
        # One client: one requests session, one connection pool for every thread.
        # An empty token, not None: hvac would pick up $VAULT_TOKEN or ~/.vault-token.
        session = _session(settings, VAULT_CONCURRENCY)
        self._client = hvac.Client(
            url=settings.address,
            token="",  # not a password: empty, so hvac reads no $VAULT_TOKEN  # nosec B106
            timeout=settings.timeout_seconds,
            namespace=settings.namespace,
            verify=session.verify,
            session=session,
        )
        # The hot reads (versions, metadata, list pages) skip requests' per-call machinery
        # but use the same pool, headers and answers: see rotator.adapters.vault.direct.
        self._direct = DirectReads(self._client, settings.timeout_seconds)
        self._list_page = list_page
        self._bulk: bool | None = None
        """Whether the server has the detailed-metadata list; None until first asked."""
        self._bulk_denied: set[str] = set()
        self._auth = Authenticator(self._client, settings.auth, metrics)
        # Vault's own pool, not the loop's default one that file writes share: a slow or
        # hanging Vault cannot take the threads sinks write with, nor they Vault's.
        self._pool = ThreadPoolExecutor(VAULT_CONCURRENCY, thread_name_prefix="vault")

    # --- Keys --------------------------------------------------------------------------

    async def latest_version(self, path: str) -> int | None:
        versions = await self.live_versions(path)
        return versions[-1] if versions else None

    async def live_versions(self, path: str) -> list[int]:
        metadata = await self._metadata(self._mount, path)
        return live_versions(metadata) if metadata else []

    async def read_secret(self, path: str, version: int | None = None) -> SecretVersion:
        """One version of a key's secret, checked (see ``codec.parse_secret``).

        With ``version=None`` the newest *live* version is read, even if a later one was
        deleted. Raises SecretNotFound, BadSecret, VaultError.
        """
        answer = await self._read(self._mount, path, version)
        if answer is None and version is None:
            newest = await self.latest_version(path)
            answer = await self._read(self._mount, path, newest) if newest else None
        if answer is None:
            which = f"version {version}" if version else "no live version"
            raise SecretNotFound(f"{which} at {self._mount}/{path}: missing, deleted or destroyed")
        return parse_secret(path, answer["data"], answer["metadata"])

    async def current_version(self, path: str) -> int:
        """The secret's newest version number, deleted or not (0 if none): what check-and-set
        compares against."""
        metadata = await self._metadata(self._mount, path)
        return int(metadata["current_version"]) if metadata else 0

    async def write_secret(self, path: str, data: dict[str, str], cas: int | None) -> int:
        return await self._write(self._mount, path, data, cas)

    async def custom_metadata(self, path: str) -> dict[str, str]:
        """The secret's ``custom_metadata`` (e.g. ``owner_email``); {} when it has none."""
        metadata = await self._metadata(self._mount, path)
        custom = (metadata or {}).get("custom_metadata") or {}
        return {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}

    async def list_names(self, prefix: str) -> list[str]:
        """Secret names directly under ``prefix`` (sub-folders skipped); [] if it is absent."""
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

        def call(client: hvac.Client) -> Any:
            return client.secrets.kv.v2.list_secrets(path=prefix, mount_point=self._mount)

        try:
            answer = await self._call(f"{self._mount}/metadata/{prefix}", call)
        except hvac_exc.InvalidPath:
            return []
        return sorted(name for name in answer["data"]["keys"] if not name.endswith("/"))

    async def scan_folder(self, folder: str) -> dict[str, Listed] | None:
        """The newest live version (0: none) and creation time of every secret directly under
        ``folder``, from OpenBao's detailed-metadata list (one request a page); None where the
        server or the policy does not offer it: then read each key's metadata. Raises
        VaultError."""
        folder = folder.strip("/") + "/" if folder.strip("/") else ""
        if self._bulk is False or folder in self._bulk_denied:
            return None
        found: dict[str, Listed] = {}
        after: str | None = None
        while True:
            request = page_request(self._direct, self._mount, folder, self._list_page, after)
            try:
                page = await self._call(f"{self._mount}/detailed-metadata/{folder}", request)
            except FolderUnsupported as exc:
                self._bulk = False
                log.info("vault.detailed_list_unavailable", reason=str(exc), folder=folder)
                return None
            except VaultPermissionDenied:
                # A restricted policy, asked once per folder: the adapter logged the denial.
                self._bulk_denied.add(folder)
                log.info("vault.detailed_list_denied", folder=f"{self._mount}/{folder}")
                return None
            self._bulk = True
            found.update(page.latest)
            if not page.full or page.last is None:
                return found
            after = page.last

    # --- State -------------------------------------------------------------------------

    async def read_state(self, name: str) -> tuple[KeyState, int]:
        """Raises StateProblem when the state's newest version was deleted or destroyed
        (read as "no state" it would undo a rollback), or when it was written for another
        mount or namespace; BadSecret when a field cannot be read."""
        path = self._state_path(name)
        where = f"{self._mount}/{path}"
        answer = await self._read(self._mount, path, None)
        if answer is None:
            metadata = await self._metadata(self._mount, path)
            current = int(metadata["current_version"]) if metadata else 0
            if current:
                raise StateProblem(
                    "key.state_deleted",
                    f"the state {where} version {current} was deleted or destroyed "
                    "(delete_version_after or max_versions on the state path?)",
                    action=(
                        f"undelete it (bao kv undelete -mount={self._mount} "
                        f"-versions={current} {path}) if it was a mistake; to start afresh on "
                        f"purpose, delete its metadata (bao kv metadata delete "
                        f"-mount={self._mount} {path})"
                    ),
                    path=where,
                    version=current,
                )
            return KeyState(), 0
        state = decode_state(where, answer["data"])
        namespace = self._settings.namespace or ""
        recorded = (state.mount, state.namespace)
        if state.mount is not None and recorded != (self._mount, namespace):
            raise StateProblem(
                "key.state_foreign",
                f"the state {where} was written for mount {state.mount!r} in namespace "
                f"{state.namespace or '(root)'!r}, not {self._mount!r} in "
                f"{namespace or '(root)'!r}",
                action="give each deployment its own vault.state_path",
                path=where,
                recorded_mount=state.mount,
                recorded_namespace=state.namespace,
            )
        return state, int(answer["metadata"]["version"])

    async def write_state(self, name: str, state: KeyState, cas: int) -> int:
        # Which mount and namespace the state describes: a copy elsewhere is refused.
        state = dataclasses.replace(
            state, mount=self._mount, namespace=self._settings.namespace or ""
        )
        return await self._write(self._mount, self._state_path(name), encode_state(state), cas)

    async def secret_created(self, path: str) -> datetime | None:
        """When the secret at ``path`` was created (its metadata's ``created_time``): the
        same name deleted and written again is another secret, numbered from 1 again."""
        metadata = await self._metadata(self._mount, path)
        if not metadata or not metadata.get("created_time"):
            return None
        return parse_time(str(metadata["created_time"]))

    def _state_path(self, name: str) -> str:
        return f"{self._settings.state_path}/{name}"

    # --- Any KV v2 path (the vault sink) -----------------------------------------------

    async def write_kv(self, mount: str, path: str, data: dict[str, str]) -> None:
        try:
            await self._write(mount, path, data, None)
        except _CasRequired:
            # The path (or its mount) has cas_required: write on top of what is there.
            metadata = await self._metadata(mount, path)
            current = int(metadata["current_version"]) if metadata else 0
            await self._write(mount, path, data, current)

    async def read_kv(self, mount: str, path: str) -> dict[str, str] | None:
        answer = await self._read(mount, path, None)
        if answer is None or not isinstance(answer["data"], dict):
            return None
        return {str(k): v if isinstance(v, str) else str(v) for k, v in answer["data"].items()}

    # --- Token and health --------------------------------------------------------------

    async def maintain_token(self) -> None:
        """Renew or replace the token ahead of expiry; call every few seconds.

        Never raises for Vault trouble: it is logged, counted and reflected in
        ``rotator_vault_up``; the next call tries again.
        """
        with contextlib.suppress(VaultError):
            await self._call("auth/token/renew-self", lambda _: None, maintain=True)

    async def ready(self) -> tuple[bool, str]:
        """Reachable, initialized, unsealed and authenticated; the reason when not.

        Never raises: every answer Vault can give is a reason. A success here does not set
        ``rotator_vault_up`` to 1: health and the token answering says nothing of the KV
        calls the daemon needs (a quota may refuse those), and a readiness probe every few
        seconds would hide such an outage from ``RotatorVaultDown``.
        """
        try:
            problem = await self._call("sys/health", self._health, authenticated=False, probe=True)
            if problem:
                self._metrics.vault_up.set(0)
                return False, problem
            await self._call(
                "auth/token/lookup-self", lambda c: c.auth.token.lookup_self(), probe=True
            )
        except VaultPermissionDenied as exc:
            return False, f"vault authentication failed: {exc}"
        except VaultError as exc:
            return False, str(exc)
        except hvac_exc.InvalidPath:
            return False, "vault answered 404 to auth/token/lookup-self"
        return True, "ok"

    def _health(self, client: hvac.Client) -> str | None:
        """What is wrong according to ``sys/health``, or None.

        Asked without the namespace header: ``sys/health`` exists only in the root namespace
        (in a namespace OpenBao answers 400 "operation unavailable in namespaces"). Any
        status but 200 is a reason, never an exception: hvac hands back the raw response.
        """
        adapter = client.adapter
        answer = adapter.session.get(
            f"{adapter.base_uri}/v1/sys/health",
            params={
                "standbyok": "true",
                "perfstandbyok": "true",
                "sealedcode": "200",
                "uninitcode": "200",
            },
            timeout=self._settings.timeout_seconds,
            verify=str(self._settings.ca_cert) if self._settings.ca_cert else True,
        )
        return _health_problem(answer)

    def close(self) -> None:
        # A call under way ends in its thread (the watchdog bounds it); queued ones are
        # dropped: nobody awaits them any more.
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.adapter.close()

    # --- The one way to Vault ----------------------------------------------------------

    async def _metadata(self, mount: str, path: str) -> dict[str, Any] | None:
        # hvac's read_secret_metadata, on the urllib3 pool (rotator.adapters.vault.direct).
        url = hvac_utils.format_url("/v1/{mount}/metadata/{path}", mount=mount, path=path)

        def call(_client: hvac.Client) -> Any:
            return self._direct.request("get", url)

        try:
            answer = await self._call(f"{mount}/metadata/{path}", call)
        except hvac_exc.InvalidPath:
            return None
        data: dict[str, Any] = answer["data"]
        return data

    async def _read(self, mount: str, path: str, version: int | None) -> dict[str, Any] | None:
        """KV v2 ``data`` and ``metadata`` of one version; None if missing or not live."""

        # hvac's read_secret_version (raise_on_deleted_version=True: a deleted version is
        # InvalidPath, like a missing one), on the urllib3 pool (rotator.adapters.vault.direct).
        url = hvac_utils.format_url("/v1/{mount}/data/{path}", mount=mount, path=path)
        params = {"version": version} if version is not None else None

        def call(_client: hvac.Client) -> Any:
            return self._direct.request("get", url, params)

        try:
            answer = await self._call(f"{mount}/data/{path}", call)
        except hvac_exc.InvalidPath:
            return None
        data: dict[str, Any] | None = answer.get("data")
        if not data or data.get("data") is None:
            return None
        return data

    async def _write(self, mount: str, path: str, data: dict[str, Any], cas: int | None) -> int:
        def call(client: hvac.Client) -> Any:
            return client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=mount
            )

        try:
            answer = await self._call(f"{mount}/data/{path}", call)
        except hvac_exc.InvalidPath:
            # Writing creates any path, so this means the mount itself is missing.
            raise VaultError(f"cannot write {mount}/{path}: no KV v2 mount {mount!r}") from None
        return int(answer["data"]["version"])

    async def _call(
        self,
        path: str,
        fn: Callable[[hvac.Client], T],
        *,
        authenticated: bool = True,
        maintain: bool = False,
        probe: bool = False,
    ) -> T:
        """Run ``fn`` in a thread, logged in; map failures. ``path`` names the Vault path
        for messages and logs. hvac's InvalidPath passes through: callers know what a
        missing path means for them. ``probe``: a success says nothing of ``vault_up``."""
        call = functools.partial(self._call_sync, path, fn, authenticated, maintain or probe)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _call_sync(
        self, path: str, fn: Callable[[hvac.Client], T], authenticated: bool, maintain: bool
    ) -> T:
        with WATCHDOG.call(self._settings.timeout_seconds) as call:
            try:
                return self._mapped(path, fn, authenticated, maintain)
            except (RotatorError, hvac_exc.InvalidPath):
                raise
            except Exception:
                if not call.expired:
                    raise
        # Cut short by the watchdog and not seen as a network error (a truncated body that
        # failed to parse): still the timeout it is.
        self._unavailable(path, "timed out", cut_off=True)

    def _unavailable(self, path: str, reason: str, *, cut_off: bool = False) -> NoReturn:
        self._metrics.vault_up.set(0)
        self._metrics.errors.labels(component="vault").inc()
        if cut_off:
            # Cut off by the watchdog: the answer came, but too slowly to finish in time.
            seconds = self._settings.timeout_seconds
            log.warning("vault.unavailable", path=path, reason=reason, deadline_s=seconds)
            raise VaultError(
                f"vault {reason} on {path} (no complete answer within {seconds:g}s)"
            ) from None
        log.warning("vault.unavailable", path=path, reason=reason)
        raise VaultError(f"vault {reason} on {path}") from None

    def _mapped(
        self, path: str, fn: Callable[[hvac.Client], T], authenticated: bool, maintain: bool
    ) -> T:
        try:
            result = self._attempt(path, fn, authenticated, maintain)
        except hvac_exc.InvalidPath as exc:
            self._metrics.vault_up.set(1)
            words = " ".join(str(e) for e in exc.errors or ())
            if "namespace not found" in words:
                # Not "no such secret": every path would look missing after a typo.
                self._metrics.errors.labels(component="vault").inc()
                namespace = self._settings.namespace
                log.error("vault.namespace_not_found", namespace=namespace, path=path)
                raise VaultError(
                    f"vault namespace {namespace!r} not found (check vault.namespace)"
                ) from None
            if "no handler for route" in words:
                self._metrics.errors.labels(component="vault").inc()
                log.error("vault.no_such_mount", path=path)
                raise VaultError(
                    f"vault has no such mount for {path} (check the mount name)"
                ) from None
            raise
        except hvac_exc.InvalidRequest as exc:
            words = " ".join(str(e) for e in exc.errors or ())
            if "check-and-set parameter required" in words:
                # cas_required on the path or mount: not a lost race; the writer retries
                # with check-and-set (the vault sink does).
                self._metrics.vault_up.set(1)
                raise _CasRequired(path) from None
            if "check-and-set" in words:
                # Losing a race to another instance is an outcome, not an error.
                self._metrics.vault_up.set(1)
                raise CasConflict(f"{path}: another writer changed it (check-and-set)") from None
            self._answered_with_error()
            reasons = REDACTOR.scrub(", ".join(str(e) for e in exc.errors or ()))
            raise VaultError(f"vault refused the request on {path}: {reasons}") from None
        except VaultPermissionDenied as exc:
            self._answered_with_error()
            log.warning("vault.permission_denied", path=exc.path, reason=exc.reason or None)
            raise
        except CredentialsError as exc:
            self._metrics.errors.labels(component="vault").inc()
            log.error("vault.credentials_unreadable", reason=str(exc))
            raise
        except tuple(_UNAVAILABLE) as exc:
            reason = next(text for kind, text in _UNAVAILABLE.items() if isinstance(exc, kind))
            call = WATCHDOG.current()
            if call is not None and call.expired:
                # The watchdog ended an answer that outlived vault.timeout_seconds (one
                # trickling in a byte at a time): an outage like any timeout.
                self._unavailable(path, "timed out", cut_off=True)
            self._unavailable(path, reason)
        except OSError as exc:
            # Not the network (requests' errors are OSErrors too, handled above): a CA file
            # gone since validation, an unreadable client certificate. Vault saw nothing.
            self._metrics.errors.labels(component="vault").inc()
            log.error("vault.client_error", path=path, reason=exc.strerror or str(exc))
            raise VaultError(f"cannot reach vault for {path}: {exc.strerror or exc}") from None
        except hvac_exc.VaultError as exc:
            # Any other answer (401, 405, 412 ...): Vault is up but will not do this.
            self._answered_with_error()
            log.warning("vault.refused", path=path, reason=type(exc).__name__)
            raise VaultError(f"vault refused the request on {path}: {type(exc).__name__}") from None
        if isinstance(result, requests.Response | Answer):
            # hvac hands back the raw response when a 200 is not JSON (a proxy's HTML page)
            # or the status is one it lets through (the direct reads an Answer, alike):
            # never an answer the callers can read.
            self._unavailable(path, f"unexpected answer (HTTP {result.status_code}, not JSON)")
        if isinstance(result, dict) and not {"data", "auth"} & result.keys():
            # JSON, but not Vault's (a proxy's error document): no KeyError further down.
            self._unavailable(path, "unexpected answer (JSON without data)")
        if not maintain:
            # Token upkeep mostly has nothing to do and then asked Vault nothing: no news of
            # its health. Taken as good news it would flip vault_up back to 1 every few
            # seconds of an outage and RotatorVaultDown (for: 5m) would never fire.
            self._metrics.vault_up.set(1)
        return result

    def _attempt(
        self, path: str, fn: Callable[[hvac.Client], T], authenticated: bool, maintain: bool
    ) -> T:
        if not authenticated:
            return fn(self._client)
        if maintain:
            self._auth.maintain()
        generation = self._auth.ensure()
        try:
            return fn(self._client)
        except hvac_exc.Forbidden:
            # A refusal is the policy unless our token is gone (revoked, expired behind our
            # back). Logging in again on every refusal would mint a token per denied call and
            # use up a secret id limited to a number of uses.
            if self._auth.token_alive():
                raise VaultPermissionDenied(path) from None
            self._auth.relogin(generation)
        try:
            return fn(self._client)
        except hvac_exc.Forbidden:
            raise VaultPermissionDenied(path) from None

    def _answered_with_error(self) -> None:
        self._metrics.vault_up.set(1)
        self._metrics.errors.labels(component="vault").inc()


def _session(settings: VaultSettings, connections: int) -> requests.Session:
    """A session that does not consult the environment on every request.

    With ``trust_env`` requests looks for ``~/.netrc`` and re-reads the proxy variables on
    each call: about a quarter of a metadata read's CPU. The proxy for Vault's address and a
    CA bundle from ``REQUESTS_CA_BUNDLE`` are read once here instead. (hvac takes the
    session's ``verify`` over its own argument.)
    """
    session = deadline_session(connections)
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(settings.address)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = str(settings.ca_cert) if settings.ca_cert else (bundle or True)
    return session


class _CasRequired(RotatorError):
    """The path needs check-and-set (``cas_required``) and the write had none."""


_HEALTH_STATUS = {
    429: "vault is rate limiting (429)",
    472: "vault is a disaster-recovery secondary (472)",
    501: "vault is not initialized (501)",
    503: "vault is sealed or unavailable (503)",
}


def _health_problem(answer: requests.Response) -> str | None:
    try:
        status: Any = answer.json()
    except ValueError:
        status = None
    if answer.status_code != 200 or not isinstance(status, dict):
        words = ""
        if isinstance(status, dict) and isinstance(status.get("errors"), list):
            words = REDACTOR.scrub(", ".join(str(e) for e in status["errors"]))[:200]
        text = _HEALTH_STATUS.get(answer.status_code, f"vault health answered {answer.status_code}")
        if answer.status_code == 200:
            text = "vault health answered 200 without a JSON status"
        return f"{text}: {words}" if words else text
    if not status.get("initialized", False):
        return "vault is not initialized"
    if status.get("sealed", True):
        return "vault is sealed"
    return None
