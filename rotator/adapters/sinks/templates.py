"""Text that sinks fill in at delivery time: header references and the HTTP body template.

Both are replaced literally, never with ``str.format``: a body template is JSON, full of
braces that must stay as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from rotator.domain.model import Delivery
from rotator.errors import SinkError
from rotator.logs import REDACTOR

_REFERENCE = re.compile(r"\$\{(env|file):([^}]+)\}")
_PLACEHOLDER = re.compile(r"\{(api_key|expires_at|name|version)\}")


def resolve_references(value: str, *, where: str) -> str:
    """Replace ``${env:NAME}`` and ``${file:PATH}`` in ``value``.

    A file's content loses its trailing newline. Every resolved value is treated as a
    secret (it is usually a token) and registered with the log scrubber. Raises SinkError
    naming the missing variable or file, never a value; ``where`` says which setting.
    """

    def _one(match: re.Match[str]) -> str:
        kind, ref = match.group(1), match.group(2).strip()
        resolved = _read_env(ref, where) if kind == "env" else _read_file(ref, where)
        REDACTOR.add(resolved)
        return resolved

    return _REFERENCE.sub(_one, value)


def resolve_header(value: str, *, where: str) -> str:
    """A header's value with its references resolved, refused (SinkError naming the header,
    never the value) when it cannot travel in a header: a line break, another control
    character or a non-ASCII one. Sent anyway, the HTTP library's error would quote the
    value escaped (``\\n``), which no scrubber of the raw value recognises."""
    resolved = resolve_references(value, where=where)
    if not (resolved.isascii() and all(" " <= c < "\x7f" or c == "\t" for c in resolved)):
        raise SinkError(
            f"{where}: the value holds a line break, a control or a non-ASCII character, "
            "which a header cannot carry (check the file or variable it comes from)"
        )
    return resolved


async def resolve_headers(headers: Mapping[str, str], *, where: str = "") -> dict[str, str]:
    """Every header's value through :func:`resolve_header` (``where`` prefixes the header's
    name in errors). A ``${file:}`` reference is read in a worker thread: a file read must
    not block the event loop (a slow or hung file system would stop the daemon)."""

    def resolve() -> dict[str, str]:
        return {
            name: resolve_header(value, where=f"{where}header {name}")
            for name, value in headers.items()
        }

    if any("${file:" in value for value in headers.values()):
        return await asyncio.to_thread(resolve)
    return resolve()


def register_references(values: Iterable[str]) -> None:
    """Resolve the references in ``values`` now, only to register what they hold as secrets.

    Done when a sink is built, not at its first delivery: until then a reload command run
    by another sink would inherit such a variable (``rotator.adapters.sinks.command.child_env``
    leaves out registered secrets). What cannot be resolved yet is reported at delivery.
    """
    for value in values:
        with contextlib.suppress(SinkError):
            resolve_references(value, where="")


def _read_env(name: str, where: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise SinkError(f"{where}: environment variable {name} is not set")
    return value


def _read_file(path: str, where: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise SinkError(f"{where}: file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SinkError(f"{where}: cannot read file {path} ({reason})") from None


def render_body(template: str, delivery: Delivery) -> str:
    """Fill ``{api_key}``, ``{expires_at}``, ``{name}`` and ``{version}`` in one pass.

    Values are escaped for the inside of a JSON string (without the quotes), so a template
    puts quotes around them: ``{"api_key": "{api_key}"}``. For a key of letters and digits,
    as Mistral issues them, the escaping changes nothing, so non-JSON bodies work too.
    ``{expires_at}`` is ISO 8601, or empty when the expiry is unknown. Text that a value
    brings in is never scanned again for placeholders.
    """
    values = {
        "api_key": delivery.api_key,
        "expires_at": delivery.expires_at.isoformat() if delivery.expires_at else "",
        "name": delivery.key,
        "version": str(delivery.version),
    }
    return _PLACEHOLDER.sub(lambda m: _json_inner(values[m.group(1)]), template)


def _json_inner(value: str) -> str:
    return json.dumps(value)[1:-1]
