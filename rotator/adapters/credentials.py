"""The one rule for files holding the daemon's own credentials (see docs/security.md).

The admin token, a Vault token, an AppRole role id and secret id, a Kubernetes
service-account token: such a file may be read by its owner and its group, and changed by
its owner only (0600, 0640, 0400, 0440). A wider mode is a warning event naming the file,
once per file and process, not a refusal: Kubernetes and Docker mount secrets 0644 or 0444
unless told otherwise, and a daemon that refused to start would leave keys to expire.
"""

from __future__ import annotations

import stat
import threading
from pathlib import Path

from rotator.logs import REDACTOR, get_logger
from rotator.secretfile import read_secret_file

log = get_logger(__name__)

EXPOSED_BITS = stat.S_IWGRP | stat.S_IRWXO
"""Group write and anything for other users."""

_warned: set[Path] = set()
_lock = threading.Lock()


def warn_if_exposed(path: Path, mode: int, *, event: str, what: str) -> bool:
    """Log ``event`` (path, mode, what to do) the first time ``path`` is found too open.

    Returns whether the file is too open, warned about now or before.
    """
    bits = stat.S_IMODE(mode)
    if not bits & EXPOSED_BITS:
        return False
    with _lock:
        if path in _warned:
            return True
        _warned.add(path)
    log.warning(
        event,
        path=str(path),
        mode=oct(bits),
        what=what,
        action=f"chmod 600 {path} (or 640 to share it with a group): "
        "other users could read or replace it",
    )
    return True


def read_credentials_file(path: Path, *, what: str, exposed_event: str) -> str:
    """A file of the daemon's own credentials, read by the one reader
    (:func:`rotator.secretfile.read_secret_file`); warned about once if too open
    (``exposed_event``); its content registered with the log scrubber.

    Raises SecretFileError.
    """

    def check(file: Path, mode: int) -> None:
        warn_if_exposed(file, mode, event=exposed_event, what=what)

    value = read_secret_file(path, check_mode=check)
    REDACTOR.add(value)
    return value
