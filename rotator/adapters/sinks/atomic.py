"""Safe file replacement for secrets: blocking calls, run in a thread by the file sink.

The temporary file is created with the final mode (``O_EXCL``, ``O_NOFOLLOW``), so the key
is never readable by anyone else, not even for an instant, whatever the umask.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import secrets
import stat
from pathlib import Path

from rotator.errors import SinkError
from rotator.logs import get_logger

log = get_logger(__name__)

_NEW_FILE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_MAX_READ = 1 << 16
_warned_owner: set[Path] = set()


def write_atomically(
    path: Path,
    data: bytes,
    *,
    mode: int,
    owner: str | int | None = None,
    group: str | int | None = None,
) -> None:
    """Replace ``path`` with ``data``: a temp file beside it, fsync, rename, fsync the dir.

    Raises SinkError for a target that is a symlink or not a regular file, and for a
    parent directory that is missing, not writable or writable by every user (without the
    sticky bit); warns once about a parent owned by another non-root user. Leaves no
    temporary file behind, whatever fails.
    """
    uid, gid = user_id(owner), group_id(group)
    check_directory(path.parent)
    check_target(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        _write_new(tmp, data, mode, uid, gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_directory(path.parent)


def _write_new(tmp: Path, data: bytes, mode: int, uid: int, gid: int) -> None:
    changes_owner = uid != -1 or gid != -1
    # Until the file has its configured owner and group, only its creator may open it: the
    # group it is born with (ours, or a setgid directory's) may not be the configured one,
    # and a descriptor opened in that moment would outlive the chown.
    fd = os.open(tmp, _NEW_FILE, mode & 0o700 if changes_owner else mode)
    try:
        if changes_owner:
            os.fchown(fd, uid, gid)
        # The umask may have narrowed the mode (never widened it): set exactly what was asked.
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_directory(directory: Path) -> None:
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise SinkError(f"directory {directory} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SinkError(f"{directory} is not a directory")
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise SinkError(
            f"directory {directory} is writable by every user and has no sticky bit "
            f"(mode {stat.S_IMODE(st.st_mode):04o}): anyone could swap the key file; "
            "remove write access for others (chmod o-w) or use a private directory"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise SinkError(f"directory {directory} is not writable by uid {os.geteuid()}")
    _check_owner(directory, st.st_uid)


def _check_owner(directory: Path, uid: int) -> None:
    """Warn (once) about a directory that another non-root user owns.

    Its owner can replace or remove the key file (though not read it unless the sink's
    ``owner``/``mode`` say so), so the integration would run on whatever key that user put
    there. Usually that user *is* the integration, which holds the key anyway: a warning,
    not a refusal.
    """
    if uid in (0, os.geteuid()) or directory in _warned_owner:
        return
    _warned_owner.add(directory)
    log.warning(
        "sink.directory_foreign_owner",
        directory=str(directory),
        owner_uid=uid,
        uid=os.geteuid(),
        action="that user can replace the key file; give the directory to root or to "
        "the daemon's user unless it is the integration's own",
    )


def check_target(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise SinkError(
            f"{path} is a symbolic link; refusing to follow it "
            "(point the sink at the real file instead)"
        )
    if not stat.S_ISREG(st.st_mode):
        raise SinkError(f"{path} exists and is not a regular file")


def has_content(path: Path, expected: bytes) -> bool | None:
    """Whether ``path`` (never through a symlink) holds exactly ``expected``.

    False when it is missing, a symlink or anything but a regular file; None when it
    cannot be read.
    """
    try:
        fd = os.open(path, _READ)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        # O_NOFOLLOW on a symlink fails with ELOOP: a link is never "our" file.
        return False if exc.errno == errno.ELOOP else None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, _MAX_READ) == expected
    except OSError:
        return None
    finally:
        os.close(fd)


def user_id(owner: str | int | None) -> int:
    """-1 (leave as is) for None; a uid for a number or a user name."""
    if owner is None:
        return -1
    if isinstance(owner, int) or owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise SinkError(f"owner: no user named {owner!r}") from None


def group_id(group: str | int | None) -> int:
    if group is None:
        return -1
    if isinstance(group, int) or group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise SinkError(f"group: no group named {group!r}") from None
