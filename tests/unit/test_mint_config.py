"""The ``mistral.admin`` and ``mint`` settings: defaults, every error named, the admin key."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from rotator.config import parse_settings
from rotator.config.admin import AdminApiSettings, read_admin_key
from rotator.errors import ConfigError
from rotator.logs import REDACTOR

ADMIN = {"admin": {"base_url": "http://127.0.0.1:9/v1/admin"}}
MINT = {"workspace_uuid": "6f1c"}


def test_without_admin_nothing_changes() -> None:
    settings = parse_settings({"keys": [{"name": "a", "vault_path": "x"}]})
    assert settings.mistral.admin is None and settings.keys[0].mint is None


def test_defaults_of_the_contract() -> None:
    settings = parse_settings(
        {"mistral": ADMIN, "keys": [{"name": "a", "vault_path": "x", "mint": MINT}]}
    )
    admin, mint = settings.mistral.admin, settings.keys[0].mint
    assert admin is not None and mint is not None
    assert admin.auth_header == "authorization"
    assert admin.inventory_interval == timedelta(hours=1)
    assert mint.lifetime_days == 365
    assert mint.before_expiry == timedelta(days=30)
    assert mint.revoke_previous_after == timedelta(days=7)
    assert mint.key_name("a", date(2026, 3, 1)) == "a 2026-03-01"


def test_every_problem_is_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            {
                "mistral": {"admin": {"inventory_interval": "0s", "auth_header": "cookie"}},
                "keys": [
                    {"name": "a", "vault_path": "x", "mint": {"name": "{foo}", "lifetime_days": 0}},
                    {"name": "b", "vault_path": "y", "mint": MINT | {"before_expiry": "400d"}},
                ],
            }
        )
    assert caught.value.problems == [
        "mistral.admin.auth_header: Input should be 'authorization' or 'x-api-key'",
        "mistral.admin.inventory_interval: must be at least 1s",
        "keys[0].mint.workspace_uuid: Field required",
        "keys[0].mint.name: unknown placeholder {foo}; use {date} or {name}",
        "keys[0].mint.lifetime_days: Input should be greater than or equal to 1",
        "keys[1].mint: before_expiry must be shorter than lifetime_days",
    ]


def test_mint_without_admin_names_each_place() -> None:
    with pytest.raises(ConfigError, match=r"keys\[0\].mint, discover.mint"):
        parse_settings(
            {
                "keys": [{"name": "a", "vault_path": "x", "mint": MINT}],
                "discover": {"prefix": "p", "mint": MINT},
            }
        )


def test_plain_http_admin_api_elsewhere_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"mistral\.admin: plain http"):
        parse_settings(
            {
                "mistral": {"admin": {"base_url": "http://mistral.example/v1/admin"}},
                "keys": [{"name": "a", "vault_path": "x"}],
            }
        )


def test_admin_key_from_file_or_environment_and_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "admin-key"
    path.write_text("AdminKeyFromFile0123456789abcdef\n")
    assert read_admin_key(AdminApiSettings(key_file=path)) == "AdminKeyFromFile0123456789abcdef"
    monkeypatch.setenv("MISTRAL_ADMIN_API_KEY", "AdminKeyFromEnv0123456789abcdefg")
    assert read_admin_key(AdminApiSettings()) == "AdminKeyFromEnv0123456789abcdefg"
    assert REDACTOR.scrub("AdminKeyFromEnv0123456789abcdefg") == "[REDACTED]"


def test_missing_admin_key_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_ADMIN_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$MISTRAL_ADMIN_API_KEY: no admin key"):
        read_admin_key(AdminApiSettings())
    with pytest.raises(ConfigError, match=r"mistral\.admin\.key_file: cannot read"):
        read_admin_key(AdminApiSettings(key_file=tmp_path / "absent"))


def test_discover_mint_names_each_tenant() -> None:
    settings = parse_settings(
        {
            "mistral": ADMIN,
            "discover": {"prefix": "mistral/tenants", "mint": MINT | {"name": "{name} {date}"}},
        }
    )
    assert settings.discover is not None and settings.discover.mint is not None
    assert settings.discover.mint.key_name("acme", date(2026, 3, 1)) == "acme 2026-03-01"
