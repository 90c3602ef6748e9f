"""The Admin API client against the stand-in over real HTTP: paging, headers, failures."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from rotator.adapters.mistral.admin import (
    AdminAuthError,
    AdminRefused,
    AdminUnavailable,
    MistralAdminClient,
)
from rotator.config.admin import AdminApiSettings
from rotator.demo.standin import MistralStandIn
from rotator.logs import REDACTOR

TODAY = datetime.now(UTC).date()


def settings(mistral: MistralStandIn, **more: object) -> AdminApiSettings:
    values: dict[str, object] = {
        "base_url": f"{mistral.url}/v1/admin",
        "page_size": 3,
        "max_requests_per_second": 100,
        "timeout_seconds": 2,
        "retries": 2,
    }
    return AdminApiSettings.model_validate(values | more)


async def no_sleep(_: float) -> None:
    return None


def client(
    mistral: MistralStandIn, ups: list[bool] | None = None, **more: object
) -> MistralAdminClient:
    return MistralAdminClient(
        settings(mistral, **more),
        mistral.admin.admin_key,
        on_up=None if ups is None else ups.append,
        sleep=no_sleep,
    )


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_lists_every_page_with_the_configured_header(mistral: MistralStandIn, header: str) -> None:
    mistral.admin.header = header  # type: ignore[assignment]
    made = [mistral.admin.add_key(name=f"key {i}").key_id for i in range(7)]

    async def run() -> list[str]:
        async with client(mistral, auth_header=header) as admin:
            return [k.key_id for k in await admin.list_keys()]

    assert asyncio.run(run()) == made
    lists = [r for r in mistral.admin.requests if r[0] == "GET"]
    assert len(lists) == 3, "pages of 3: 3, 3, then a short page of 1"


def test_a_full_last_page_is_followed_by_an_empty_one(mistral: MistralStandIn) -> None:
    for i in range(6):
        mistral.admin.add_key(name=f"key {i}")

    async def run() -> int:
        async with client(mistral) as admin:
            return len(await admin.list_keys())

    assert asyncio.run(run()) == 6
    assert len(mistral.admin.requests) == 3


def test_create_returns_the_value_once_and_the_clamped_expiry(mistral: MistralStandIn) -> None:
    mistral.admin.policy_days = 90
    workspace = mistral.admin.workspaces[0]["uuid"]

    async def run() -> tuple[str, object, object]:
        async with client(mistral) as admin:
            made = await admin.create_key(
                name="jtel #0a1b2c3d",
                workspace_uuid=workspace,
                expiration=TODAY + timedelta(days=365),
                user_id=None,
            )
            listed = await admin.list_keys()
            gone = await admin.delete_key(made.record.key_id)
            again = await admin.delete_key(made.record.key_id)
            return (
                made.api_key,
                (made.record.expiration_date, [k.key_id for k in listed] == [made.record.key_id]),
                (gone, again),
            )

    api_key, (expiry, listed_once), deleted = asyncio.run(run())
    assert listed_once
    assert expiry == TODAY + timedelta(days=90), "the answer's date, not what was asked"
    assert len(api_key) == 32
    assert deleted == (True, False), "a second delete finds nothing: not an error"
    assert REDACTOR.scrub(f"x {api_key} y") == "x [REDACTED] y"


def test_unknown_fields_and_missing_ones_are_tolerated(mistral: MistralStandIn) -> None:
    from rotator.adapters.mistral.admin import _org_key

    record = _org_key({"key_id": "k1", "name": "n", "future_field": {"a": 1}, "last_used": None})
    assert record is not None and record.key_id == "k1" and record.expiration_date is None
    assert _org_key({"name": "no id"}) is None
    dated = _org_key({"key_id": "k2", "expiration_date": "2027-01-31T00:00:00Z"})
    assert dated is not None and dated.expires_at == datetime(2027, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize("code", ["401", "403"])
def test_401_and_403_say_the_admin_key_is_down(mistral: MistralStandIn, code: str) -> None:
    mistral.admin.fail(code)
    ups: list[bool] = []

    async def run() -> None:
        async with client(mistral, ups) as admin:
            await admin.list_keys()

    with pytest.raises(AdminAuthError) as caught:
        asyncio.run(run())
    assert caught.value.status == int(code)
    assert ups == [False]
    assert len(mistral.admin.requests) == 1, "no retry: the key will not get better"


def test_a_wrong_admin_key_is_401_and_never_shown(
    mistral: MistralStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "WrongAdminKey0123456789abcdefXYZ"

    async def run() -> None:
        async with MistralAdminClient(settings(mistral), wrong, sleep=no_sleep) as admin:
            await admin.workspaces()

    with caplog.at_level(logging.DEBUG), pytest.raises(AdminAuthError) as caught:
        asyncio.run(run())
    assert wrong not in str(caught.value)
    assert REDACTOR.scrub(wrong) == "[REDACTED]"


@pytest.mark.parametrize("code", ["429", "500"])
def test_429_and_500_are_retried_then_succeed(mistral: MistralStandIn, code: str) -> None:
    mistral.admin.fail(code, op="list", times=2)
    mistral.admin.add_key(name="console key")

    async def run() -> int:
        async with client(mistral) as admin:
            return len(await admin.list_keys())

    assert asyncio.run(run()) == 1
    assert [r[2] for r in mistral.admin.requests] == [int(code), int(code), 200]


def test_transient_failures_give_up_after_the_retries(mistral: MistralStandIn) -> None:
    mistral.admin.fail("500", op="list")

    async def run() -> None:
        async with client(mistral) as admin:
            await admin.list_keys()

    with pytest.raises(AdminUnavailable):
        asyncio.run(run())
    assert len(mistral.admin.requests) == 3, "one try and two retries"


def test_a_refused_create_is_not_retried(mistral: MistralStandIn) -> None:
    mistral.admin.fail("422", op="create", times=1)

    async def run() -> None:
        async with client(mistral) as admin:
            await admin.create_key(name="x", workspace_uuid="nope", expiration=None, user_id=None)

    with pytest.raises(AdminRefused):
        asyncio.run(run())
    assert len(mistral.admin.requests) == 1


def test_a_hang_ends_at_the_timeout_and_a_create_is_not_repeated(
    mistral: MistralStandIn,
) -> None:
    mistral.admin.fail("lost", op="create", times=1)
    workspace = mistral.admin.workspaces[0]["uuid"]

    async def run() -> None:
        async with client(mistral, timeout_seconds=0.5) as admin:
            await admin.create_key(
                name="lost #00000000", workspace_uuid=workspace, expiration=None, user_id=None
            )

    with pytest.raises(AdminUnavailable, match="no answer"):
        asyncio.run(run())
    assert [k.name for k in mistral.admin.org_keys()] == ["lost #00000000"]
