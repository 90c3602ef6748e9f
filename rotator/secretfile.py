"""The one reader of a file that holds a secret: a Vault token or AppRole id, the admin token
(the daemon's ``server.admin_token_file`` and the CLI's ``--token-file``), the Mistral admin
key, the SMTP credentials.

Standard library only: the CLI reads ``--token-file`` through it without loading the daemon's
logging. The daemon's own credentials files add their rule on top
(:func:`rotator.adapters.credentials.read_credentials_file`: the mode warning, the scrubber).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


class SecretFileError(Exception):
    """A secret file cannot be read or is empty; each caller words it for its own setting."""

    def __init__(self, path: Path, reason: str | None) -> None:
        self.path = path
        self.reason = reason
        """Why it cannot be read (``strerror``, "not UTF-8 text"); None when it is empty."""
        super().__init__(f"{path}: {reason or 'empty'}")


def read_secret_file(path: Path, *, check_mode: Callable[[Path, int], object] | None = None) -> str:
    """The file's content without surrounding whitespace (a trailing newline is usual).

    ``check_mode(path, st_mode)`` is called once the file was read. Raises SecretFileError
    when the file cannot be read, is not UTF-8 text, or holds nothing but whitespace.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SecretFileError(path, reason or type(exc).__name__) from None
    if check_mode is not None:
        check_mode(path, mode)
    value = text.strip()
    if not value:
        raise SecretFileError(path, None)
    return value
