"""What Mistral answers to ``GET /v1/models``, as bytes on the wire: the one place its shapes live.

The stand-in sends these answers; the verifier's tests classify them; and
``tests/integration/test_standin_sdk.py`` checks them against Mistral's own Python SDK
(``mistralai``), so a change in Mistral's shape is made here and shows everywhere at once.

Model cards follow Mistral's ``BaseModelCard`` (``"type": "base"``) and ``FTModelCard``
(``"type": "fine-tuned"``, ids starting ``ft:``). A model's aliases are listed inside each
card *and* as entries of their own, as in Mistral's real answer: the entry for the dated id
names its aliases, each alias's entry names the dated id and the other aliases, and all carry
the dated id as ``name``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body, and the headers that belong to it."""

    status: int
    body: bytes = b""
    headers: Headers = ()


@dataclass(frozen=True)
class ModelSpec:
    """One model as Mistral's catalogue describes it; ``aliases`` are its other ids."""

    id: str
    aliases: tuple[str, ...] = ()
    created: int = 1_727_740_800
    max_context_length: int = 131_072
    temperature: float | None = 0.3
    capabilities: tuple[str, ...] = ("completion_chat", "function_calling")
    extra: tuple[tuple[str, Any], ...] = ()
    """Fields that differ from a base model's card (a fine-tuned model's ``job``, ...)."""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


_CHAT_FT = ("completion_chat", "function_calling", "fine_tuning")
CATALOGUE = (
    ModelSpec("mistral-large-2411", ("mistral-large-latest",), 1_732_233_600, temperature=0.7,
              capabilities=_CHAT_FT),
    ModelSpec("mistral-small-2503", ("mistral-small-latest",), 1_742_169_600,
              capabilities=(*_CHAT_FT, "vision")),
    ModelSpec("codestral-2501", ("codestral-latest",), 1_736_208_000, 262_144,
              capabilities=(*_CHAT_FT, "completion_fim")),
    ModelSpec("open-mistral-nemo-2407", ("open-mistral-nemo",), 1_721_260_800,
              capabilities=_CHAT_FT),
    ModelSpec("ministral-3b-2410", ("ministral-3b-latest",), 1_729_036_800,
              capabilities=_CHAT_FT),
)  # fmt: skip
_ALL_CAPABILITIES = (
    "completion_chat",
    "completion_fim",
    "function_calling",
    "fine_tuning",
    "vision",
    "classification",
)


def spec_for(model: str) -> ModelSpec:
    """The catalogue's model that has ``model`` as id or alias; a plain card for others."""
    for spec in CATALOGUE:
        if model in spec.names:
            return spec
    if model.startswith("ft:"):
        return _fine_tuned(model)
    return ModelSpec(model)


def _fine_tuned(model: str) -> ModelSpec:
    # ft:<base>:<suffix>:<date>:<job prefix>; the organisation, not Mistral, owns it.
    root = model.split(":")[1] or model
    extra = (
        ("type", "fine-tuned"),
        ("owned_by", "0c4e4f2e-7d1b-4c57-9a4a-52f0e3b1c9d2"),
        ("job", "8e5f6a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"),
        ("root", root),
        ("archived", False),
    )
    return ModelSpec(model, capabilities=("completion_chat", "function_calling"), extra=extra)


def card(spec: ModelSpec, entry: str) -> dict[str, Any]:
    """The card listed under id ``entry`` (the dated id or one of its aliases)."""
    return {
        "id": entry,
        "object": "model",
        "created": spec.created,
        "owned_by": "mistralai",
        "capabilities": {c: c in spec.capabilities for c in _ALL_CAPABILITIES},
        "name": spec.id,
        "description": f"Official {spec.id} Mistral AI model",
        "max_context_length": spec.max_context_length,
        "aliases": [n for n in spec.names if n != entry],
        "deprecation": None,
        "deprecation_replacement_model": None,
        "default_model_temperature": spec.temperature,
        "type": "base",
        **dict(spec.extra),
    }


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    """The list for a key that may use ``models``: each with all its names, once."""
    specs = list(dict.fromkeys(spec_for(m) for m in models))
    return {"object": "list", "data": [card(s, n) for s in specs for n in s.names]}


def without(models: tuple[str, ...], gone: str) -> tuple[str, ...]:
    """``models`` less ``gone``'s model under every name (a plan lacks the model, not a name)."""
    lost = spec_for(gone).names
    return tuple(m for m in models if m not in lost)


def error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """Mistral's documented error body."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_FIXED: dict[str, tuple[int, Any]] = {
    "invalid": (401, error("Unauthorized", "unauthorized")),
    "invalid-detail": (401, {"detail": "Unauthorized"}),
    "invalid-empty": (401, b""),
    "billing": (402, error("Payment required: check your billing settings", "billing")),
    "forbidden": (403, error("You do not have access to this resource", "forbidden")),
    "not-found": (404, {"detail": "Not Found"}),
    "unavailable": (503, error("Service unavailable", "service_unavailable")),
    "bad-gateway": (502, BAD_GATEWAY),
    "not-json": (200, b"OK"),
    "no-list": (200, {"object": "list"}),
}
DEFAULT_REDIRECT = "https://example.invalid/v1/models"


def answer(name: str, arg: str | None, models: tuple[str, ...]) -> Answer | None:
    """The answer of behaviour ``name:arg`` (see ``standin``); None where none is sent."""
    if name in _FIXED:
        return encode(*_FIXED[name])
    if name in ("valid", "slow"):
        return _listing(models)
    if name == "no-model":
        return _listing(without(models, arg or models[0]))
    if name == "invalid-message":
        return encode(401, {"message": "Unauthorized", "request_id": secrets.token_hex(16)})
    if name == "rate-limited":
        wait = () if arg == "none" else (("Retry-After", arg or "1"),)
        return encode(429, error("Requests rate limit exceeded", "rate_limited"), wait)
    if name == "redirect":
        return Answer(302, b"", (("Location", arg or DEFAULT_REDIRECT),))
    return None  # "reset": the connection is cut, no answer


@cache
def _listing(models: tuple[str, ...]) -> Answer:
    # Cached: benchmarks ask for the same list thousands of times a second.
    return encode(200, model_list(models))


def encode(status: int, body: Any, headers: Headers = ()) -> Answer:
    """JSON for dicts; bytes as they are, typed text/html or text/plain (none when empty)."""
    if not isinstance(body, bytes):
        kind = "application/json"
        body = json.dumps(body).encode()
    elif body.startswith(b"<html>"):
        kind = "text/html"
    else:
        kind = "text/plain" if body else ""
    typed = (("Content-Type", kind),) if kind else ()
    return Answer(status, body, typed + headers)
