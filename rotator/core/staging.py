"""``rotator stage``: an operator hands over a new key; it is checked, then written to Vault.

The daemon picks the new version up on its next poll, verifies it again and delivers it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotator.config import Settings
from rotator.domain.expiry import parse_expires_at
from rotator.domain.model import Status, fingerprint
from rotator.errors import RotatorError
from rotator.logs import REDACTOR
from rotator.ports import StagingStore, Verifier

_REFUSALS = {
    Status.INVALID: "Mistral says the key is wrong, revoked or expired (401)",
    Status.BILLING_BLOCKED: "Mistral refuses for billing (402): set up billing or raise the "
    "spending limit, then stage again",
    Status.FORBIDDEN: "the key lacks permission (403): check its workspace and plan",
    Status.MODEL_UNAVAILABLE: "the configured model is not available to this key",
    Status.RATE_LIMITED: "Mistral is rate limiting (429): try again in a minute",
    Status.UNREACHABLE: "Mistral could not be reached: try again later",
    Status.UNKNOWN: "Mistral's answer could not be understood: try again later",
}


def check_expiry(text: str | None, settings: Settings, now: datetime) -> datetime | None:
    if text is None:
        return None
    at = parse_expires_at(text, "--expires-at")
    if at <= now:
        raise RotatorError(f"--expires-at {text} is in the past")
    limit = now + timedelta(days=settings.expiry.max_lifetime_days + 1)
    if at > limit:
        raise RotatorError(
            f"--expires-at {text} is more than max_lifetime_days "
            f"({settings.expiry.max_lifetime_days}) away: check the date in Mistral's console"
        )
    return at


async def stage_key(
    settings: Settings,
    vault_path: str,
    api_key: str,
    *,
    verifier: Verifier,
    store: StagingStore,
    expires_at: str | None,
    key_name: str | None,
) -> str:
    """Verify ``api_key``, then write it as the newest version at ``vault_path``."""
    if not api_key or any(c.isspace() for c in api_key):
        raise RotatorError("no key given, or it contains whitespace")
    REDACTOR.add(api_key)
    expiry = check_expiry(expires_at, settings, datetime.now(UTC))
    verdict = await verifier.verify(api_key)
    if verdict.status is not Status.VALID:
        raise RotatorError(f"{_REFUSALS[verdict.status]}; nothing was written")
    data = {"api_key": api_key}
    if expiry is not None:
        data["expires_at"] = expiry.isoformat()
    if key_name:
        data["key_name"] = key_name
    cas = await store.current_version(vault_path)
    version = await store.write_secret(vault_path, data, cas)
    note = "" if expiry else f" (no expiry given: assumed {settings.expiry.max_lifetime_days} days)"
    return (
        f"staged {vault_path} version {version}, key ending {fingerprint(api_key)}{note}; "
        "the daemon delivers it on its next poll"
    )
