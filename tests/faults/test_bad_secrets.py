"""Bad data in Vault, met by a running daemon: each broken key is reported on its own and the
others keep working.

The daemon is a real ``rotator run`` subprocess against the session OpenBao and the Mistral
stand-in, with a file sink per key. What an operator sees for a broken key:

- a ``key.bad_secret`` log event naming the field at fault, including an ``expires_at``
  already in the past (``key.secret_missing`` when the whole secret was deleted: no field is
  at fault then);
- ``mistral_key_secret_error{key} 1`` (alert ``MistralKeySecretBroken``) when the key has no
  usable version at all, or its secret is gone; a broken *new* version of a key that works is
  a rejected rotation instead (``mistral_key_rotations_total{result="rejected"}``, alert
  ``MistralKeyRotationRejected``), and the working key stays where it is;
- the key's ``problem`` in ``GET /api/v1/keys/NAME``.

Whitespace (README, "Vault secret layout"): surrounding whitespace of ``api_key`` is stripped
(a pasted trailing newline is never part of a key) and the stripped key is what sinks get;
whitespace inside the value is refused as a broken paste.
"""

from __future__ import annotations

from typing import Any

from tests.faults.tools import Stack, read_key, rotations, status_of
from tests.fixtures.daemon import DaemonProcess, new_key_value
from tests.waiting import wait_for

FIRST_VERSION_BROKEN = {
    # name: (secret data, the field at fault, the reason logged)
    "no-api-key": ({"key_name": "jtel Live Agent"}, "api_key", "is missing"),
    "empty": ({"api_key": ""}, "api_key", "is empty"),
    "blank": ({"api_key": " \n"}, "api_key", "is empty"),
    "number": ({"api_key": 12345678901234567890}, "api_key", "must be a string"),
    "inner-space": ("{a} {b}", "api_key", "contains whitespace"),
    "inner-newline": ("{a}\n{b}", "api_key", "contains whitespace"),
    "bad-expiry": ({"expires_at": "next tuesday"}, "expires_at", "is not an ISO 8601"),
    "expiry-number": ({"expires_at": 20270501}, "expires_at", "must be a string"),
}


def put_raw(stack: Stack, name: str, data: dict[str, Any]) -> int:
    answer = stack.openbao.client().secrets.kv.v2.create_or_update_secret(
        path=stack.kit.path(name), secret=data
    )
    return int(answer["data"]["version"])


def valid_value(stack: Stack) -> str:
    """A key value the stand-in calls valid, remembered for the leak scan."""
    value = new_key_value()
    stack.kit.values.append(value)
    stack.standin.set_key(value, "valid")
    return value


def seed_broken(stack: Stack, name: str, spec: object) -> None:
    if isinstance(spec, str):  # a valid key with whitespace put inside it
        value = valid_value(stack)
        put_raw(stack, name, {"api_key": spec.format(a=value[:16], b=value[16:])})
    elif isinstance(spec, dict) and "api_key" not in spec and "key_name" not in spec:
        put_raw(stack, name, {"api_key": valid_value(stack), **spec})  # a bad field beside it
    else:
        assert isinstance(spec, dict)
        put_raw(stack, name, spec)


def bad_secret_events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events("key.bad_secret") if e["key"] == name]


def test_broken_first_versions_are_reported_per_key_and_never_delivered(stack: Stack) -> None:
    stack.kit.put("healthy")
    padded = valid_value(stack)
    put_raw(stack, "padded", {"api_key": f"  {padded}\n", "expires_at": " 2099-01-01\n"})
    for name, (spec, _, _) in FIRST_VERSION_BROKEN.items():
        seed_broken(stack, name, spec)
    names = ["healthy", "padded", *FIRST_VERSION_BROKEN]
    config = stack.config(names)
    daemon = stack.start(config, checked=False)

    def broken_reported() -> bool:
        return all(
            daemon.metric("mistral_key_secret_error", key=n) == 1 for n in FIRST_VERSION_BROKEN
        )

    wait_for(broken_reported, 15, "mistral_key_secret_error 1 for every broken key")
    wait_for(lambda: read_key(stack.sink_path(config, "padded")) == padded, 10, "padded delivered")

    problems = []
    for name, (_, field, reason) in FIRST_VERSION_BROKEN.items():
        events = bad_secret_events(daemon, name)
        if not events or {(e["field"], e["reason"][: len(reason)]) for e in events} != {
            (field, reason)
        }:
            problems.append(f"{name}: key.bad_secret events {events}")
        view = daemon.key(name)
        if field not in (view["problem"] or "") or view["active_version"] is not None:
            problems.append(f"{name}: API shows {view}")
        if stack.sink_path(config, name).exists():
            problems.append(f"{name}: a sink file was written")
        if rotations(daemon, name, "rotated") != 0:
            problems.append(f"{name}: counted as rotated")
    assert not problems, "\n".join(problems)

    # The stripped key is what the sink got and what Mistral was asked about.
    assert stack.sink_path(config, "padded").read_text() == padded + "\n"
    assert stack.standin.count(padded) >= 1
    view = daemon.key("padded")
    assert (view["status"], view["problem"], view["expires_at"]) == (
        "valid",
        None,
        "2099-01-01T00:00:00Z",
    )
    assert daemon.metric("mistral_key_secret_error", key="padded") == 0

    # Every other key keeps working: a new version of the healthy one is delivered.
    _, healthy_v2 = stack.kit.put("healthy")
    wait_for(lambda: read_key(stack.sink_path(config, "healthy")) == healthy_v2, 10, "healthy v2")
    assert status_of(daemon, "healthy") == "valid"
    assert daemon.metric("mistral_key_secret_error", key="healthy") == 0

    # Fixing a broken key clears its error and delivers it.
    fixed = stack.kit.put("no-api-key")[1]
    wait_for(lambda: read_key(stack.sink_path(config, "no-api-key")) == fixed, 10, "fixed key")
    wait_for(
        lambda: daemon.metric("mistral_key_secret_error", key="no-api-key") == 0, 5, "error cleared"
    )
    assert daemon.key("no-api-key")["problem"] is None
    assert daemon.running
    stack.assert_no_key_leaked()


def test_broken_new_versions_and_a_deleted_secret_keep_the_working_key(stack: Stack) -> None:
    names = ["healthy", "new-empty", "new-inner-space", "new-expired", "deleted"]
    first = {name: stack.kit.put(name, expires_at="2099-01-01")[1] for name in names}
    config = stack.config(names)
    daemon = stack.start(config)
    for name in names:
        assert read_key(stack.sink_path(config, name)) == first[name]

    # Ops write broken new versions and delete one secret while the daemon manages them.
    put_raw(stack, "new-empty", {"api_key": "", "expires_at": "2099-01-01"})
    spaced = valid_value(stack)
    put_raw(stack, "new-inner-space", {"api_key": f"{spaced[:10]} {spaced[10:]}"})
    _, expired = stack.kit.put("new-expired", expires_at="2021-06-30")
    stack.openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(
        path=stack.kit.path("deleted")
    )
    _, healthy_v2 = stack.kit.put("healthy", expires_at="2099-01-01")

    broken = ["new-empty", "new-inner-space", "new-expired"]
    wait_for(lambda: all(rotations(daemon, n, "rejected") == 1 for n in broken), 10, "3 rejections")
    wait_for(
        lambda: daemon.metric("mistral_key_secret_error", key="deleted") == 1, 10, "deleted seen"
    )
    wait_for(lambda: read_key(stack.sink_path(config, "healthy")) == healthy_v2, 10, "healthy v2")

    assert [(e["field"], e["reason"]) for e in bad_secret_events(daemon, "new-empty")] == [
        ("api_key", "is empty")
    ]
    assert [(e["field"], e["reason"]) for e in bad_secret_events(daemon, "new-inner-space")] == [
        ("api_key", "contains whitespace")
    ]
    [past] = bad_secret_events(daemon, "new-expired")
    assert (past["field"], past["version"]) == ("expires_at", 2)
    assert past["reason"].startswith("is in the past (2021-06-30")
    rejected = {e["key"]: e["reason"] for e in daemon.events("key.rotation_rejected")}
    assert rejected["new-expired"].startswith("expired at 2021-06-30")
    assert stack.standin.count(expired) == 0, "an expired key was sent to Mistral"
    missing = [e for e in daemon.events("key.secret_missing") if e["key"] == "deleted"]
    assert missing and missing[0]["path"] == stack.kit.path("deleted")
    assert "no live version" in (daemon.key("deleted")["problem"] or "")

    for name in [*broken, "deleted"]:
        # The integration keeps the key it had, and the daemon still checks it.
        assert read_key(stack.sink_path(config, name)) == first[name], name
        assert stack.state(config, name)["active_version"] == 1, name
        assert daemon.metric("mistral_key_active_version", key=name) == 1, name
        assert daemon.metric("mistral_key_valid", key=name) == 1, name
        assert daemon.key(name)["fingerprint"] == first[name][-4:], name
    for name in broken:
        assert daemon.metric("mistral_key_latest_version", key=name) == 2, name
        # Refused once, not again at every poll.
        assert stack.state(config, name)["rejected_version"] == 2, name
    assert daemon.metric("mistral_key_secret_error", key="healthy") == 0
    assert daemon.running
    stack.assert_no_key_leaked()
