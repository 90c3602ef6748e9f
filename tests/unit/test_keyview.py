"""The key view: one list of fields, the same in the API model and in ``check --json``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotator.admin.models import KeyOut
from rotator.domain.keyview import KeyView
from rotator.domain.model import Status

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_as_dict_is_json_ready_with_days_left_as_of_now() -> None:
    view = KeyView(
        "portal",
        status=Status.VALID,
        active_version=3,
        expires_at=NOW + timedelta(days=10, hours=12),
        last_check_at=NOW,
        fingerprint="ab12",
    )
    out = view.as_dict(NOW)
    assert out["status"] == "valid"
    assert out["expires_at"] == "2026-12-10T00:00:00+00:00"
    assert out["last_check_at"] == "2026-11-29T12:00:00+00:00"
    assert out["days_left"] == 10.5
    assert out["last_rotation_at"] is None
    keys = list(out)
    assert keys.index("days_left") == keys.index("expiry_assumed") + 1


def test_the_api_model_has_exactly_the_views_fields() -> None:
    out = KeyView("portal").as_dict(NOW)
    assert list(out) == list(KeyOut.model_fields)
    assert KeyOut.model_validate(out).name == "portal"
