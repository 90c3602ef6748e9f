"""The human view of keys, shared by ``rotator check`` and ``rotator status``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

_COLOURS = {
    "valid": "green",
    "rate_limited": "yellow",
    "unreachable": "yellow",
    "unknown": "yellow",
}
_NEXT = {
    "invalid": "create a new key in Mistral's console, then `rotator stage NAME`",
    "billing_blocked": "check billing and spending limits in Mistral's console",
    "forbidden": "the key's plan or workspace lacks the model: check it in the console",
    "model_unavailable": "the configured model is not available to this key",
    "rate_limited": "transient: retried automatically",
    "unreachable": "transient: Mistral or the network; retried automatically",
}


def next_step(row: dict[str, Any], critical_days: int, warn_days: int) -> str:
    problem = str(row.get("problem") or "")
    if problem.startswith("vault:"):
        return f"{problem} (retried automatically)"
    if "rotator stage" in problem:
        return problem  # it says what to do already (a deleted version cannot be fixed)
    if problem:
        return "fix the Vault secret: " + problem
    status = str(row.get("status"))
    if status in _NEXT:
        return _NEXT[status]
    days = row.get("days_left")
    if days is not None and days <= 0:
        return "expired: create a new key, `rotator stage NAME`"
    if days is not None and days < warn_days:
        urgency = "now" if days < critical_days else "soon"
        return f"rotate {urgency}: create a new key, `rotator stage NAME`"
    if row.get("active_version") != row.get("latest_version") and row.get("latest_version"):
        return "a newer version waits in Vault (`status --json`: last_result says why)"
    if row.get("previous_still_valid"):
        return "delete the previous key in Mistral's console"
    return ""


def render(
    rows: Sequence[dict[str, Any]], *, critical_days: int, warn_days: int, colour: bool
) -> str:
    headers = ["KEY", "STATUS", "EXPIRES", "DAYS LEFT", "ASSUMED", "VERSION", "KEY ENDS", "NEXT"]
    body = []
    for r in rows:
        expires = (r.get("expires_at") or "-")[:10]
        days = r.get("days_left")
        version = f"{r.get('active_version') or '-'}/{r.get('latest_version') or '-'}"
        body.append(
            [
                r["name"],
                r.get("status") or "unknown",
                expires,
                "-" if days is None else f"{days:.0f}",
                "yes" if r.get("expiry_assumed") else "no",
                version,
                r.get("fingerprint") or "-",
                next_step(r, critical_days, warn_days),
            ]
        )
    widths = [
        max(len(h), *(len(row[i]) for row in body)) if body else len(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in body:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        if colour:
            cells[1] = click.style(cells[1], fg=_COLOURS.get(row[1].strip(), "red"))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def healthy(rows: Sequence[dict[str, Any]], critical_days: int) -> bool:
    """Exit status 0 only when every key is valid and none is within critical_days."""
    return all(
        r.get("status") == "valid"
        and (r.get("days_left") is None or r["days_left"] >= critical_days)
        for r in rows
    )
