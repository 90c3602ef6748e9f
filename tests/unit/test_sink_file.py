"""The file sink on real files in a temporary directory."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rotator.adapters.sinks.file import FileSink
from rotator.config.sinks import FileSinkSettings
from rotator.domain.model import Delivery
from rotator.errors import ConfigError, SinkError
from tests.sink_helpers import KEY_NAME, V1, V2, error_texts


def sink_at(path: Path, **kw: Any) -> FileSink:
    return FileSink(FileSinkSettings(type="file", path=path, **kw))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for one test and put it back."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


async def test_raw_is_the_key_and_a_newline_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "api-key"
    await sink_at(target).deliver(V1)
    assert target.read_bytes() == f"{V1.api_key}\n".encode()
    assert mode_of(target) == 0o600
    assert os.listdir(tmp_path) == ["api-key"]


async def test_env_format_exact(tmp_path: Path) -> None:
    target = tmp_path / "mistral.env"
    await sink_at(target, format="env").deliver(V1)
    assert target.read_bytes() == f"MISTRAL_API_KEY={V1.api_key}\n".encode()


async def test_json_format_exact(tmp_path: Path) -> None:
    target = tmp_path / "key.json"
    await sink_at(target, format="json").deliver(V1)
    await sink_at(tmp_path / "v2.json", format="json").deliver(V2)
    assert target.read_text() == (
        f'{{"api_key": "{V1.api_key}", "expires_at": "2027-01-31T12:00:00+00:00", '
        f'"version": 1, "key": "{KEY_NAME}"}}\n'
    )
    assert json.loads((tmp_path / "v2.json").read_text())["expires_at"] is None


async def test_env_format_refuses_a_key_that_would_break_the_file(tmp_path: Path) -> None:
    odd = Delivery(key=KEY_NAME, version=3, api_key="abcdefgh\nEVIL=1")
    with pytest.raises(SinkError, match="env format") as caught:
        await sink_at(tmp_path / "k.env", format="env").deliver(odd)
    assert odd.api_key not in error_texts(caught.value)
    assert os.listdir(tmp_path) == []


async def test_temp_file_is_created_with_the_final_mode_even_with_umask_0(
    tmp_path: Path, umask: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    umask(0)
    created: list[tuple[int, int]] = []
    at_rename: list[int] = []
    real_open, real_replace = os.open, os.replace

    def spy_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if flags & os.O_CREAT:
            created.append((flags, mode))
        return real_open(path, flags, mode, **kw)

    def spy_replace(src: Any, dst: Any, **kw: Any) -> None:
        at_rename.append(mode_of(Path(src)))
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "replace", spy_replace)
    await sink_at(tmp_path / "api-key").deliver(V1)
    monkeypatch.undo()

    ((flags, mode),) = created
    assert mode == 0o600
    assert flags & os.O_EXCL and flags & os.O_NOFOLLOW
    assert at_rename == [0o600]
    assert mode_of(tmp_path / "api-key") == 0o600


async def test_custom_mode_0640_despite_a_narrow_umask(tmp_path: Path, umask: Any) -> None:
    umask(0o077)
    target = tmp_path / "api-key"
    await sink_at(target, mode="0640").deliver(V1)
    assert mode_of(target) == 0o640


async def test_replacing_keeps_the_mode_and_changes_the_content(tmp_path: Path) -> None:
    target = tmp_path / "api-key"
    sink = sink_at(target)
    await sink.deliver(V1)
    await sink.deliver(V2)
    assert target.read_text() == f"{V2.api_key}\n"
    assert mode_of(target) == 0o600
    assert os.listdir(tmp_path) == ["api-key"]


async def test_symlink_at_the_target_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "etc-passwd"
    elsewhere.write_text("root:x:0:0\n")
    target = tmp_path / "api-key"
    target.symlink_to(elsewhere)
    sink = sink_at(target)
    with pytest.raises(SinkError, match="symbolic link"):
        await sink.deliver(V1)
    assert elsewhere.read_text() == "root:x:0:0\n"
    assert target.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["api-key", "etc-passwd"]
    # Even with the key's exact content behind it, a link is not "holding" the key.
    elsewhere.write_text(f"{V1.api_key}\n")
    assert await sink.holds(V1) is False


async def test_missing_directory_is_a_sink_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"directory .*missing.* does not exist"):
        await sink_at(tmp_path / "missing" / "api-key").deliver(V1)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot create files in (root: the immutable attribute)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr +i failed: {done.stderr.decode().strip()}")
    yield directory
    subprocess.run(["chattr", "-i", str(directory)], check=True)


async def test_read_only_directory_is_a_sink_error_and_leaves_nothing(
    read_only_dir: Path,
) -> None:
    with pytest.raises(SinkError) as caught:
        await sink_at(read_only_dir / "api-key").deliver(V1)
    assert str(read_only_dir) in str(caught.value)
    assert os.listdir(read_only_dir) == []


@pytest.mark.parametrize(("mode", "refused"), [(0o777, True), (0o1777, False), (0o775, False)])
async def test_directory_writable_by_others_needs_the_sticky_bit(
    tmp_path: Path, mode: int, refused: bool
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    sink = sink_at(shared / "api-key")
    if refused:
        with pytest.raises(SinkError, match="writable by every user"):
            await sink.deliver(V1)
        assert os.listdir(shared) == []
    else:
        await sink.deliver(V1)
        assert await sink.holds(V1) is True


async def test_failure_after_the_temp_file_exists_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SinkError, match="No space left on device"):
        await sink_at(tmp_path / "api-key").deliver(V1)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


async def test_owner_and_group_by_name(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        user, group = "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    else:
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    target = tmp_path / "api-key"
    await sink_at(target, owner=user, group=group, mode=0o640).deliver(V1)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    assert mode_of(target) == 0o640


async def test_unknown_owner_is_named(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="no user named 'no-such-user-x'"):
        await sink_at(tmp_path / "k", owner="no-such-user-x").deliver(V1)
    assert os.listdir(tmp_path) == []


async def test_holds_compares_with_what_would_be_written(tmp_path: Path) -> None:
    target = tmp_path / "key.json"
    sink = sink_at(target, format="json")
    assert await sink.holds(V1) is False
    await sink.deliver(V1)
    assert await sink.holds(V1) is True
    assert await sink.holds(V2) is False
    target.write_text(V1.api_key)  # the key, but not as this sink writes it
    assert await sink.holds(V1) is False


def test_relative_path_is_refused() -> None:
    # By the configuration (config validate and run alike), and by the sink itself.
    with pytest.raises(ValidationError, match="absolute"):
        sink_at(Path("run/api-key"))
    unchecked = FileSinkSettings.model_construct(type="file", path=Path("run/api-key"))
    with pytest.raises(ConfigError, match="absolute"):
        FileSink(unchecked)
