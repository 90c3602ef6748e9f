"""File sinks: what ``tests/unit/test_sink_file.py`` does not already prove.

Already proven there (not repeated here): the temporary file is created ``O_EXCL |
O_NOFOLLOW`` with the final mode even with a umask of 0 and has it at the rename; a custom
mode despite a narrow umask; a symlink at the target is refused and its target untouched;
``holds`` never follows a link; a world-writable directory without the sticky bit is
refused; a failure leaves no temporary file.

Here: the moment the file changes group (``group:``/``owner:``), an existing hard link or
non-file at the target, and a parent directory owned by another user.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.adapters.sinks.file import FileSink
from rotator.config.sinks import FileSinkSettings
from rotator.errors import SinkError
from tests.sink_helpers import V1, V2

Events = Any
NOBODY = 65534
DIRECTORY_GID = 4242
"""A setgid directory's group: neither the daemon's nor the one the sink asks for."""
WANTED_GID = 4343
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners and groups needs root")


def sink_at(path: Path, **kw: Any) -> FileSink:
    return FileSink(FileSinkSettings(type="file", path=path, **kw))


@pytest.fixture
def umask_zero() -> Iterator[None]:
    saved = os.umask(0)
    yield
    os.umask(saved)


@as_root
async def test_a_file_changing_group_is_private_until_it_has_its_group(
    tmp_path: Path, umask_zero: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A setgid directory hands new files its group: without care, the temporary file would
    # be readable by that group (mode 0640) until the sink gives it the configured one, and
    # a reader that opened it in that moment keeps its descriptor.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 0, DIRECTORY_GID)
    shared.chmod(0o2750)
    seen: list[tuple[int, int]] = []
    real_fchown = os.fchown

    def spy_fchown(fd: int, uid: int, gid: int) -> None:
        st = os.fstat(fd)
        seen.append((st.st_gid, stat.S_IMODE(st.st_mode)))
        real_fchown(fd, uid, gid)

    monkeypatch.setattr(os, "fchown", spy_fchown)
    target = shared / "api-key"
    await sink_at(target, group=WANTED_GID, mode="0640").deliver(V1)
    monkeypatch.undo()

    ((gid_before, mode_before),) = seen
    assert gid_before == DIRECTORY_GID  # born with the directory's group, as set up
    assert mode_before & 0o077 == 0, f"mode {mode_before:04o} before the group change"
    st = os.stat(target)
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (WANTED_GID, 0o640)


async def test_a_hard_link_at_the_target_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "other-file"
    elsewhere.write_text("someone else's data\n")
    keys = tmp_path / "keys"
    keys.mkdir()
    target = keys / "api-key"
    os.link(elsewhere, target)
    await sink_at(target).deliver(V1)
    assert elsewhere.read_text() == "someone else's data\n"
    assert target.read_text() == f"{V1.api_key}\n"
    assert os.stat(target).st_nlink == 1


@pytest.mark.parametrize("kind", ["fifo", "directory"])
async def test_anything_but_a_regular_file_at_the_target_is_refused(
    tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "api-key"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(SinkError, match="not a regular file"):
        await sink_at(target).deliver(V1)
    assert os.listdir(tmp_path) == ["api-key"]


@as_root
async def test_parent_owned_by_another_user_is_warned_about_once_and_written(
    tmp_path: Path, captured_log: Events
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    sink = sink_at(theirs / "api-key")
    await sink.deliver(V1)
    await sink.deliver(V2)
    assert (theirs / "api-key").read_text() == f"{V2.api_key}\n"
    warned = [e for e in captured_log() if e["event"] == "sink.directory_foreign_owner"]
    assert [(w["directory"], w["owner_uid"]) for w in warned] == [(str(theirs), NOBODY)]
    assert "replace the key file" in warned[0]["action"]


async def test_parent_owned_by_root_or_the_daemon_is_not_warned_about(
    tmp_path: Path, captured_log: Events
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    await sink_at(mine / "api-key").deliver(V1)
    assert os.stat(mine).st_uid in (0, os.geteuid())
    assert not [e for e in captured_log() if e["event"] == "sink.directory_foreign_owner"]
