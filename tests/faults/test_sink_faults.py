"""Sinks failing under a running daemon: the rotation fails cleanly, every sink ends on the
old key, the failure is logged and counted, and once the sink is fixed the new key arrives.

One real ``rotator run`` subprocess manages one key per fault. Each key has three sinks in
this order: a file that works, an HTTP endpoint (a real loopback receiver of its own), and a
second file. The fault is put on the HTTP endpoint or on the second file, so that the sinks
before it have already taken the new key and must be given the old one back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.tools import Stack, read_key, rotations
from tests.fixtures.receiver import Receiver
from tests.waiting import wait_for

BODY = '{"key": "{name}", "version": {version}, "api_key": "{api_key}"}'


@dataclass
class Faulty:
    """One key, its sinks, and how to break and mend the one at fault."""

    name: str
    good: Path
    receiver: Receiver
    target: Path
    reason: str
    """A phrase the ``sink.failed`` event of the faulty sink holds."""
    faulty_sink: str = "target"
    break_it: Callable[[], None] = lambda: None
    mend_it: Callable[[], None] = lambda: None

    def received(self) -> list[tuple[int, str]]:
        bodies = [r.json() for r in self.receiver.requests]
        return [(b["version"], b["api_key"]) for b in bodies]


def set_immutable(directory: Path, on: bool) -> None:
    """Make ``directory`` refuse new files even to root (chattr), or the mode when not root."""
    if os.geteuid() != 0:
        directory.chmod(0o500 if on else 0o700)
        return
    done = subprocess.run(
        ["chattr", "+i" if on else "-i", str(directory)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr failed: {done.stderr.decode().strip()}")


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def new() -> Receiver:
        receiver = Receiver()
        receiver.start()
        started.append(receiver)
        return receiver

    yield new
    for receiver in started:
        receiver.stop()


def sinks_for(stack: Stack, name: str, receiver: Receiver) -> tuple[list[dict[str, Any]], Path]:
    good_dir = stack.workdir / "sinks" / name / "good"
    target_dir = stack.workdir / "sinks" / name / "target"
    for directory in (good_dir, target_dir):
        directory.mkdir(parents=True, mode=0o700)
    target = target_dir / "api-key"
    sinks = [
        {"type": "file", "path": str(good_dir / "api-key")},
        {
            "type": "http",
            "url": f"{receiver.url}/mistral-key",
            "method": "PUT",
            "body": BODY,
            "timeout_seconds": 1,
        },
        {"type": "file", "path": str(target)},
    ]
    return sinks, target


def test_failing_sinks_leave_every_sink_on_the_old_key(
    stack: Stack, receivers: Callable[[], Receiver], tmp_path: Path
) -> None:
    thief = receivers()  # where a redirect points: it must never see a key
    decoy = tmp_path / "elsewhere" / "decoy"
    decoy.parent.mkdir()
    decoy.write_text("not yours\n")

    faults: dict[str, Faulty] = {}

    def add(name: str, reason: str, faulty_sink: str = "target") -> Faulty:
        receiver = receivers()
        faulty = Faulty(name, Path(), receiver, Path(), reason, faulty_sink)
        faults[name] = faulty
        return faulty

    missing = add("dir-missing", "does not exist")
    read_only = add("dir-read-only", "not writable")
    symlink = add("symlink", "symbolic link; refusing to follow it")
    hang = add("http-hangs", "no answer within 1s", "http")
    redirect = add("http-redirects", "redirects are not followed", "http")
    error = add("http-500", "answered HTTP 500: portal is down", "http")
    names = [*faults, "bystander"]
    bystander = receivers()

    # Retries far enough apart to look at the sinks between two of them.
    config = stack.config(names, rotation={"retry_backoff": "2s", "max_backoff": "4s"})
    for key in config["keys"]:
        receiver = faults[key["name"]].receiver if key["name"] in faults else bystander
        key["sinks"], target = sinks_for(stack, key["name"], receiver)
        if key["name"] in faults:
            faulty = faults[key["name"]]
            faulty.good, faulty.target = Path(key["sinks"][0]["path"]), target
    first = {name: stack.kit.put(name)[1] for name in names}
    daemon = stack.start(config)
    for faulty in faults.values():
        assert read_key(faulty.good) == read_key(faulty.target) == first[faulty.name]
        assert faulty.received() == [(1, first[faulty.name])]

    # Break each one its own way.
    missing.break_it = lambda: shutil.rmtree(missing.target.parent)
    missing.mend_it = lambda: missing.target.parent.mkdir(mode=0o700)
    read_only.break_it = lambda: set_immutable(read_only.target.parent, True)
    read_only.mend_it = lambda: set_immutable(read_only.target.parent, False)

    def plant_symlink() -> None:
        symlink.target.unlink()
        symlink.target.symlink_to(decoy)

    symlink.break_it = plant_symlink
    symlink.mend_it = symlink.target.unlink
    hang.break_it, hang.mend_it = hang.receiver.hang, lambda: hang.receiver.respond(200)
    redirect.break_it = lambda: redirect.receiver.redirect(f"{thief.url}/steal", 307)
    redirect.mend_it = lambda: redirect.receiver.respond(200)
    error.break_it = lambda: error.receiver.respond(500, b"portal is down")
    error.mend_it = lambda: error.receiver.respond(200)
    try:
        for faulty in faults.values():
            faulty.break_it()
        errors_before = daemon.metric("rotator_errors_total", component="sink") or 0
        second = {name: stack.kit.put(name)[1] for name in names}

        def all_failed() -> bool:
            return all(rotations(daemon, name, "failed") >= 1 for name in faults)

        daemon.wait_until(all_failed, 20, "a failed rotation for every faulty sink")
        daemon.wait_until(
            lambda: read_key(Path(config["keys"][-1]["sinks"][0]["path"])) == second["bystander"],
            10,
            "the bystander rotated",
        )
        # Looked at between two attempts (the daemon keeps retrying with backoff).
        problems: list[str] = []

        def undone() -> bool:
            problems[:] = [
                p for f in faults.values() for p in check_undone(stack, config, daemon, f, first)
            ]
            return not problems

        if not wait_for_quietly(undone, 10):
            raise AssertionError("\n".join(problems))

        assert read_key(missing.target) is None and not missing.target.parent.exists()
        assert symlink.target.is_symlink() and decoy.read_text() == "not yours\n"
        assert sorted(os.listdir(symlink.target.parent)) == ["api-key"]  # no temp file left
        assert read_key(read_only.target) == first["dir-read-only"]
        assert thief.requests == [], "a redirect carried the key elsewhere"
        assert (daemon.metric("rotator_errors_total", component="sink") or 0) >= errors_before + 6

        for faulty in faults.values():
            faulty.mend_it()
    finally:
        set_immutable(read_only.target.parent, False)

    def all_delivered() -> bool:
        return all(
            read_key(f.good) == read_key(f.target) == second[f.name]
            and f.received()[-1:] == [(2, second[f.name])]
            for f in faults.values()
        )

    daemon.wait_until(all_delivered, 20, "every sink holds v2 once mended")
    for name in names:
        wait_for(lambda n=name: stack.state(config, n)["active_version"] == 2, 5, f"{name} at 2")
    assert decoy.read_text() == "not yours\n"
    assert thief.requests == []
    assert daemon.running and not daemon.events("key.unexpected_error")
    stack.assert_no_key_leaked()


def wait_for_quietly(check: Callable[[], bool], timeout: float) -> bool:
    try:
        wait_for(check, timeout, "", step=0.1)
    except AssertionError:
        return False
    return True


def check_undone(
    stack: Stack, config: dict[str, Any], daemon: Any, faulty: Faulty, first: dict[str, str]
) -> list[str]:
    """What is wrong with ``faulty`` after its failed rotation (nothing: [])."""
    name, v1 = faulty.name, first[faulty.name]
    problems = []
    state = stack.state(config, name)
    if state.get("active_version") != 1 or "pending_version" in state:
        problems.append(f"{name}: state {state}")
    if not str(state.get("last_result", "")).startswith("failed:"):
        problems.append(f"{name}: last_result {state.get('last_result')}")
    if read_key(faulty.good) != v1:
        problems.append(f"{name}: the first file was not given the old key back")
    received = faulty.received()
    if not received or received[-1] != (1, v1):
        problems.append(f"{name}: the endpoint's last word is {[v for v, _ in received]}")
    if faulty.faulty_sink == "http" and read_key(faulty.target) != v1:
        problems.append(f"{name}: the second file changed")
    failed = [
        e
        for e in daemon.events("sink.failed")
        if e["key"] == name
        and e["version"] == 2
        and e["sink"].startswith("http" if faulty.faulty_sink == "http" else "file")
        and (faulty.faulty_sink == "http" or e["sink"].endswith(str(faulty.target)))
    ]
    if not failed or faulty.reason not in failed[0]["reason"]:
        problems.append(f"{name}: sink.failed {failed[:1]}")
    if not [e for e in daemon.events("key.rotation_failed") if e["key"] == name]:
        problems.append(f"{name}: no key.rotation_failed event")
    if daemon.metric("mistral_key_active_version", key=name) != 1:
        problems.append(f"{name}: mistral_key_active_version moved")
    return problems
