"""Inventory's matching of managed keys to the organization's records, pure."""

from __future__ import annotations

from datetime import UTC, date, datetime

from rotator.core.inventory import reconcile
from rotator.domain.model import SecretVersion
from rotator.domain.orgkeys import OrgKey

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEY_A = "AAAAxxxxxxxxxxxxxxxxxxxxxxxx1111"
KEY_B = "BBBBxxxxxxxxxxxxxxxxxxxxxxxx2222"


def secret(api_key: str, **more: str) -> SecretVersion:
    return SecretVersion("mistral/x", 3, NOW, api_key, **more)


def record(key_id: str, hidden: str, expires: date | None = None) -> OrgKey:
    return OrgKey(key_id, f"name {key_id}", hidden, expiration_date=expires, workspace_name="W")


def test_matched_by_id_first_then_by_a_unique_hidden_key() -> None:
    records = [record("1", "AAAA...1111"), record("2", "BBBB...2222"), record("3", "CCCC...3333")]
    found = reconcile(records, {"a": secret(KEY_A), "b": secret(KEY_B, mistral_key_id="3")}, NOW)
    assert {m.name: m.record.key_id for m in found.matches if m.record} == {"a": "1", "b": "3"}
    assert {r.record.key_id: r.managed for r in found.rows} == {"1": "a", "2": None, "3": "b"}


def test_two_records_that_fit_are_no_match() -> None:
    records = [record("1", "AAAA...1111"), record("2", "AAAA...1111")]
    [match] = reconcile(records, {"a": secret(KEY_A)}, NOW).matches
    assert match.record is None
    assert all(r.managed is None for r in reconcile(records, {"a": secret(KEY_A)}, NOW).rows)


def test_two_managed_keys_on_one_record_claim_it_neither_twice() -> None:
    records = [record("1", "AAAA...1111")]
    found = reconcile(records, {"a": secret(KEY_A), "b": secret(KEY_A)}, NOW)
    assert [m.record is not None for m in found.matches] == [True, False]


def test_mismatch_only_beyond_a_day() -> None:
    records = [record("1", "AAAA...1111", date(2026, 9, 1))]
    close = secret(KEY_A, expires_at="2026-09-01T12:00:00Z")
    far = secret(KEY_A, expires_at="2026-12-01")
    assert not reconcile(records, {"a": close}, NOW).matches[0].mismatch
    assert reconcile(records, {"a": far}, NOW).matches[0].mismatch
    match = reconcile(records, {"a": secret(KEY_A)}, NOW).matches[0]
    assert not match.mismatch, "nothing in Vault to disagree"
    assert match.expires_at == datetime(2026, 9, 1, tzinfo=UTC)


def test_rows_show_no_key_value() -> None:
    row = reconcile([record("1", "AAAA...1111")], {"a": secret(KEY_A)}, NOW).rows[0].as_dict()
    assert row["fingerprint"] == "1111" and row["managed_key"] == "a"
    assert KEY_A not in str(row)
