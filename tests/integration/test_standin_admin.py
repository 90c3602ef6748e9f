"""The stand-in's Admin API answers with the fields and shapes Mistral documents.

The field lists are those of ``shared/context/mistral-keys.md`` (Admin API section); every
answer is checked against them, over real HTTP.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from rotator.demo.standin import MistralStandIn
from tests.waiting import wait_for

ITEM_FIELDS = {
    "key_id",
    "key",
    "name",
    "hidden_key",
    "created_at",
    "expiration_date",
    "workspace_id",
    "workspace_name",
    "created_by",
    "product",
    "last_used",
    "can_delete",
    "actions",
}
WORKSPACE_PAGE_FIELDS = {"total", "items", "page", "page_size"}
TODAY = datetime.now(UTC).date()


def admin(mistral: MistralStandIn, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"x-api-key": mistral.admin.admin_key} | kwargs.pop("headers", {})
    kwargs.setdefault("timeout", 5)
    return httpx.request(method, f"{mistral.url}/v1/admin{path}", headers=headers, **kwargs)


def create(mistral: MistralStandIn, name: str = "jtel Live Agent", **body: Any) -> httpx.Response:
    workspace = mistral.admin.workspaces[0]["uuid"]
    return admin(
        mistral, "POST", "/api-keys", json={"name": name, "workspace_uuid": workspace} | body
    )


def models(mistral: MistralStandIn, api_key: str) -> int:
    headers = {"Authorization": f"Bearer {api_key}"}
    return httpx.get(f"{mistral.url}/v1/models", headers=headers, timeout=5).status_code


def check_item(item: dict[str, Any]) -> None:
    assert set(item) == ITEM_FIELDS
    first, last = item["hidden_key"].split("...")
    assert len(first) == 4 and len(last) == 4
    datetime.fromisoformat(item["created_at"])
    if item["expiration_date"] is not None:
        date.fromisoformat(item["expiration_date"])
    assert item["product"] in ("API", "Mistral Code", "Vibe")
    assert set(item["actions"]) == {"rotate", "delete"}
    assert all(a["status"] in ("available", "unavailable") for a in item["actions"].values())


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "fields"),
    [
        ("GET", "/api-keys", None, 200, {"keys"}),
        ("GET", "/api-keys?limit=10&offset=0&name=jtel", None, 200, {"keys"}),
        ("GET", "/workspaces", None, 200, WORKSPACE_PAGE_FIELDS),
        ("POST", "/api-keys", {"name": "x"}, 422, {"detail"}),
        ("GET", "/api-keys?limit=0", None, 422, {"detail"}),
        ("DELETE", "/api-keys/00000000-0000-0000-0000-000000000000", None, 404, {"detail"}),
    ],
)
def test_answers_have_the_documented_shape(
    mistral: MistralStandIn,
    method: str,
    path: str,
    body: Any,
    code: int,
    fields: set[str],
) -> None:
    mistral.admin.add_key(name="jtel Live Agent", expiration_date=TODAY + timedelta(days=30))
    answer = admin(mistral, method, path, json=body)
    assert answer.status_code == code
    assert set(answer.json()) == fields
    if code == 422:
        assert {"loc", "msg", "type"} <= set(answer.json()["detail"][0])
    for item in answer.json().get("keys", []):
        check_item(item)
        assert item["key"] is None, "a listed key never carries its value"
    for workspace in answer.json().get("items", []):
        assert {"uuid", "name"} <= set(workspace)


def test_create_shows_the_key_once_then_lists_it_without(mistral: MistralStandIn) -> None:
    made = create(mistral, expiration=(TODAY + timedelta(days=30)).isoformat())
    assert made.status_code in (200, 201)
    item = made.json()
    check_item(item)
    api_key = item["key"]
    assert isinstance(api_key, str) and len(api_key) == 32
    assert item["hidden_key"] == f"{api_key[:4]}...{api_key[-4:]}"
    assert item["expiration_date"] == (TODAY + timedelta(days=30)).isoformat()
    listed = admin(mistral, "GET", "/api-keys").json()["keys"]
    assert [k["key_id"] for k in listed] == [item["key_id"]]
    assert listed[0]["key"] is None
    assert api_key not in admin(mistral, "GET", "/api-keys").text


@pytest.mark.parametrize(
    ("asked", "policy", "expected"),
    [
        (400, 365, 365),  # later than the policy allows: clamped, not refused
        (None, 90, 90),  # no expiration asked: the latest allowed
        (30, 365, 30),  # within the policy: as asked
        (None, None, None),  # no policy, none asked: no expiry
    ],
)
def test_expiration_policy_clamps(
    mistral: MistralStandIn, asked: int | None, policy: int | None, expected: int | None
) -> None:
    mistral.admin.policy_days = policy
    body = {"expiration": (TODAY + timedelta(days=asked)).isoformat()} if asked else {}
    item = create(mistral, **body).json()
    want = (TODAY + timedelta(days=expected)).isoformat() if expected else None
    assert item["expiration_date"] == want


def test_expiration_in_the_past_is_refused(mistral: MistralStandIn) -> None:
    answer = create(mistral, expiration=(TODAY - timedelta(days=1)).isoformat())
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "expiration"]
    assert mistral.admin.org_keys() == []


def test_paging_with_limit_and_offset_ends_on_a_short_page(mistral: MistralStandIn) -> None:
    made = [mistral.admin.add_key(name=f"key {i}").key_id for i in range(7)]
    seen: list[str] = []
    pages = 0
    while True:
        page = admin(mistral, "GET", f"/api-keys?limit=3&offset={len(seen)}").json()["keys"]
        pages += 1
        seen += [k["key_id"] for k in page]
        if len(page) < 3:
            break
    assert seen == made and pages == 3


def test_name_filter(mistral: MistralStandIn) -> None:
    mistral.admin.add_key(name="jtel Live Agent")
    mistral.admin.add_key(name="billing export")
    names = [k["name"] for k in admin(mistral, "GET", "/api-keys?name=jtel").json()["keys"]]
    assert names == ["jtel Live Agent"]


def test_minted_key_works_after_warm_up_and_not_after_delete(mistral: MistralStandIn) -> None:
    mistral.admin.warmup_s = 0.5
    item = create(mistral).json()
    assert models(mistral, item["key"]) == 401, "still warming up"
    wait_for(lambda: models(mistral, item["key"]) == 200, timeout=10, what="the warm-up")
    gone = admin(mistral, "DELETE", f"/api-keys/{item['key_id']}")
    assert gone.status_code == 200
    assert gone.json() == {"detail": "API key deleted successfully"}
    assert models(mistral, item["key"]) == 401
    assert admin(mistral, "GET", "/api-keys").json() == {"keys": []}
    assert admin(mistral, "DELETE", f"/api-keys/{item['key_id']}").status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "wrong-admin-key-0000"},
        {"x-api-key": ""},
        {"Authorization": "Bearer wrong-admin-key-0000"},
    ],
)
def test_a_wrong_admin_key_gets_401(mistral: MistralStandIn, headers: dict[str, str]) -> None:
    answer = httpx.get(f"{mistral.url}/v1/admin/api-keys", headers=headers, timeout=5)
    assert answer.status_code == 401


def test_bearer_header_is_accepted_unless_the_stand_in_wants_x_api_key(
    mistral: MistralStandIn,
) -> None:
    bearer = {"Authorization": f"Bearer {mistral.admin.admin_key}"}
    url = f"{mistral.url}/v1/admin/api-keys"
    assert httpx.get(url, headers=bearer, timeout=5).status_code == 200
    mistral.admin.header = "x-api-key"
    assert httpx.get(url, headers=bearer, timeout=5).status_code == 401


@pytest.mark.parametrize(
    ("kind", "code"), [("401", 401), ("403", 403), ("422", 422), ("429", 429), ("500", 500)]
)
def test_faults_answer_once_then_heal(mistral: MistralStandIn, kind: str, code: int) -> None:
    mistral.admin.fail(kind, op="create", times=1)
    assert admin(mistral, "GET", "/api-keys").status_code == 200, "only create is hit"
    assert create(mistral).status_code == code
    assert mistral.admin.org_keys() == [], "a refused create makes no key"
    assert create(mistral).status_code == 201


def test_hang_and_lost_answer_nothing(mistral: MistralStandIn) -> None:
    mistral.admin.fail("hang", op="list", times=1)
    with pytest.raises(httpx.ReadTimeout):
        admin(mistral, "GET", "/api-keys", timeout=0.5)
    mistral.admin.fail("lost", op="create", times=1)
    with pytest.raises(httpx.ReadTimeout):
        admin(
            mistral,
            "POST",
            "/api-keys",
            json={"name": "lost", "workspace_uuid": mistral.admin.workspaces[0]["uuid"]},
            timeout=0.5,
        )
    assert [k.name for k in mistral.admin.org_keys()] == ["lost"], "carried out, never answered"


def test_control_path_for_other_processes(mistral: MistralStandIn) -> None:
    expiry = (TODAY + timedelta(days=5)).isoformat()
    add = {"add": {"name": "console key", "expiration_date": expiry}, "policy_days": 30}
    assert httpx.put(f"{mistral.url}/_standin/admin", json=add, timeout=5).status_code == 200
    assert mistral.admin.policy_days == 30
    listed = httpx.get(f"{mistral.url}/_standin/admin", timeout=5).json()["keys"]
    assert [(k["name"], k["expiration_date"], k["deleted"]) for k in listed] == [
        ("console key", expiry, False)
    ]
    bad = httpx.put(f"{mistral.url}/_standin/admin", json={"fault": {"kind": "x"}}, timeout=5)
    assert bad.status_code == 400


def test_a_refused_post_leaves_the_connection_usable(mistral: MistralStandIn) -> None:
    """The body of a refused request is read: the next request on the connection is fine."""
    mistral.admin.fail("401", op="create", times=1)
    headers = {"x-api-key": mistral.admin.admin_key}
    with httpx.Client(base_url=f"{mistral.url}/v1/admin", headers=headers, timeout=5) as client:
        body = {"name": "x" * 500, "workspace_uuid": mistral.admin.workspaces[0]["uuid"]}
        assert client.post("/api-keys", json=body).status_code == 401
        assert client.get("/api-keys").status_code == 200
