"""Mistral's Admin API (``/v1/admin``), in the stand-in, with the documented shapes.

Mounted by :mod:`rotator.demo.standin`: requests under ``/v1/admin/`` and the control path
``/_standin/admin`` come here. What it answers (see ``docs`` and the project's context file):

``GET /v1/admin/api-keys?limit&offset&name``  ``{"keys": [item, ...]}`` (no total)
``POST /v1/admin/api-keys``                   the item with the plaintext ``key``, once
``DELETE /v1/admin/api-keys/{key_id}``        ``{"detail": "API key deleted successfully"}``
``GET /v1/admin/workspaces``                  ``{"total", "items", "page", "page_size"}``

The admin key goes in ``x-api-key`` or ``Authorization: Bearer`` (both accepted unless
``header`` says one); any other value gets 401. An expiration *policy*
(``max_lifetime_days``) clamps what a create asks for, as Mistral's does. A minted key is
refused by ``/v1/models`` (401) until ``warmup_s`` have passed, then valid until deleted.

Faults for tests (:meth:`AdminStandIn.fail`): ``401``, ``403``, ``422``, ``429``, ``500``,
``hang`` (no answer until the stand-in stops), and ``lost`` (the request is carried out,
then no answer: a create whose caller never learns the key). Each may be limited to one
operation (``list``, ``create``, ``delete``, ``workspaces``) and to a number of requests.

Control, for callers in another process: ``PUT /_standin/admin`` with any of
``{"policy_days", "warmup_s", "fault": {"kind", "op", "times"}, "add": {...}}`` and
``GET /_standin/admin`` (every record, deleted ones too; never a key value).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, urlsplit


class _Handler(Protocol):
    """What is used of the stand-in's request handler (``rotator.demo.standin``)."""

    path: str
    headers: Any
    rfile: Any
    close_connection: bool

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None: ...


class _State(Protocol):
    """What is used of the stand-in's shared state: the keys ``/v1/models`` knows."""

    lock: threading.Lock
    stopping: threading.Event
    keys: dict[str, list[tuple[str, str | None]]]

    def digest(self, api_key: str) -> str: ...


ADMIN_PREFIX = "/v1/admin/"
CONTROL_PATH = "/_standin/admin"
KEYS_PATH = "/v1/admin/api-keys"
WORKSPACES_PATH = "/v1/admin/workspaces"
MAX_LIMIT = 100
FAULTS = frozenset({"401", "403", "422", "429", "500", "hang", "lost"})
OPERATIONS = frozenset({"list", "create", "delete", "workspaces"})
_ALPHABET = string.ascii_letters + string.digits
DEFAULT_WORKSPACE = {"uuid": "8a1c1a0e-5b9e-4f07-9c55-3d1f0f6a2b10", "name": "Default Workspace"}

Header = Literal["both", "x-api-key", "authorization"]


def new_api_key() -> str:
    """32 letters and digits, like Mistral's keys."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hidden(api_key: str) -> str:
    """Mistral's ``hidden_key``: the first and last four characters."""
    return f"{api_key[:4]}...{api_key[-4:]}"


@dataclass
class OrgKeyRecord:
    """One key of the organization as the stand-in holds it (the value only as a digest)."""

    key_id: str
    name: str
    hidden_key: str
    created_at: datetime
    expiration_date: date | None
    workspace_id: str
    workspace_name: str
    created_by: str
    digest: str = field(repr=False)
    product: str = "API"
    deleted: bool = False
    minted: bool = False
    """Created through ``POST /v1/admin/api-keys`` (not added by a test)."""

    def item(self, plaintext: str | None = None) -> dict[str, Any]:
        available = {"status": "available"}
        return {
            "key_id": self.key_id,
            "key": plaintext,
            "name": self.name,
            "hidden_key": self.hidden_key,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "expiration_date": self.expiration_date.isoformat() if self.expiration_date else None,
            "workspace_id": self.workspace_id,
            "workspace_name": self.workspace_name,
            "created_by": self.created_by,
            "product": self.product,
            "last_used": None,
            "can_delete": True,
            "actions": {"rotate": available, "delete": available},
        }


@dataclass
class _Fault:
    kind: str
    op: str | None
    times: int | None


class AdminStandIn:
    """The Admin API's state: the organization's keys, its policy, its faults."""

    def __init__(
        self,
        state: _State,
        *,
        admin_key: str | None = None,
        header: Header = "both",
        policy_days: int | None = 365,
        warmup_s: float = 0.0,
        workspaces: tuple[dict[str, str], ...] = (DEFAULT_WORKSPACE,),
    ) -> None:
        self._state = state
        self.admin_key = admin_key or new_api_key()
        self.header = header
        self.policy_days = policy_days
        """The organization's expiration policy: longest lifetime of a new key, in days."""
        self.warmup_s = warmup_s
        self.workspaces = tuple(dict(w) for w in workspaces)
        self._lock = threading.Lock()
        self._records: dict[str, OrgKeyRecord] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._faults: list[_Fault] = []
        self.requests: list[tuple[str, str, int]] = []
        """(method, path without query, status) of every Admin API request."""

    # --- the tests' side ------------------------------------------------------------------

    def fail(self, kind: str, *, op: str | None = None, times: int | None = None) -> None:
        """Answer the next ``times`` requests (None: all) of ``op`` (None: any) with ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(sorted(FAULTS))}")
        if op is not None and op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r}; known: {', '.join(sorted(OPERATIONS))}")
        with self._lock:
            self._faults.append(_Fault(kind, op, times))

    def heal(self) -> None:
        """No more faults."""
        with self._lock:
            self._faults.clear()

    def add_key(
        self,
        *,
        name: str,
        api_key: str | None = None,
        expiration_date: date | None = None,
        workspace_id: str | None = None,
        valid: bool = True,
        created_at: datetime | None = None,
    ) -> OrgKeyRecord:
        """An existing key of the organization (made in the console); valid at once."""
        api_key = api_key or new_api_key()
        workspace = self._workspace(workspace_id or self.workspaces[0]["uuid"])
        if workspace is None:
            raise ValueError(f"no workspace {workspace_id!r}")
        record = self._record(api_key, name, expiration_date, workspace, created_at)
        record.created_by = "console"
        with self._lock:
            self._records[record.key_id] = record
        self._set_behaviour(record, "valid" if valid else "invalid")
        return record

    def org_keys(self, *, include_deleted: bool = False) -> list[OrgKeyRecord]:
        with self._lock:
            return [r for r in self._records.values() if include_deleted or not r.deleted]

    def record(self, key_id: str) -> OrgKeyRecord | None:
        with self._lock:
            return self._records.get(key_id)

    def reset(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._records.clear()
            self._timers.clear()
            self._faults.clear()
            self.requests.clear()

    # --- HTTP -----------------------------------------------------------------------------

    def handle(self, handler: _Handler, method: str) -> None:
        """Answer one request under ``/v1/admin/`` or the control path."""
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/")
        # Read the body whatever the answer: left unread, it would be taken for the next
        # request on the same keep-alive connection.
        body = _read_json(handler)
        if path == CONTROL_PATH:
            self._control(handler, method, body)
            return
        op = self._operation(method, path)
        if op is None:
            self._answer(handler, method, path, 404, {"detail": "Not Found"})
            return
        if not self._authorized(handler):
            self._answer(handler, method, path, 401, {"detail": "Invalid API key"})
            return
        fault = self._take_fault(op)
        if fault in _FAULT_ANSWERS:
            self._answer(handler, method, path, *_FAULT_ANSWERS[fault])
            return
        if fault == "hang":
            self._hang(handler)
            return
        code, answer = self._operate(op, path, parse_qs(parts.query), body)
        if fault == "lost":
            with self._lock:
                self.requests.append((method, path, 0))
            self._hang(handler)
            return
        self._answer(handler, method, path, code, answer)

    def _operation(self, method: str, path: str) -> str | None:
        if path == KEYS_PATH:
            return {"GET": "list", "POST": "create"}.get(method)
        if path.startswith(KEYS_PATH + "/") and method == "DELETE":
            return "delete"
        if path == WORKSPACES_PATH and method == "GET":
            return "workspaces"
        return None

    def _authorized(self, handler: _Handler) -> bool:
        given: list[str] = []
        if self.header in ("both", "x-api-key"):
            given.append(handler.headers.get("x-api-key", ""))
        if self.header in ("both", "authorization"):
            auth = handler.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                given.append(auth[7:].strip())
        return any(secrets.compare_digest(g.encode(), self.admin_key.encode()) for g in given)

    def _take_fault(self, op: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.op not in (None, op):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault.kind
        return None

    def _hang(self, handler: _Handler) -> None:
        # Until the stand-in stops: the client's own timeout is what is being tested.
        self._state.stopping.wait(300)
        handler.close_connection = True

    def _answer(self, handler: _Handler, method: str, path: str, code: int, body: Any) -> None:
        with self._lock:
            self.requests.append((method, path, code))
        headers = {"Retry-After": "1"} if code == 429 else None
        handler._send(code, body, headers)

    def _operate(
        self, op: str, path: str, query: dict[str, list[str]], body: object
    ) -> tuple[int, Any]:
        if op == "list":
            return self._list(query)
        if op == "workspaces":
            items = [dict(w, created_at="2025-01-01T00:00:00Z") for w in self.workspaces]
            return 200, {"total": len(items), "items": items, "page": 0, "page_size": len(items)}
        if op == "delete":
            return self._delete(path.rsplit("/", 1)[1])
        return self._create(body)

    def _list(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        errors = []
        limit, offset = 100, 0
        for name, low in (("limit", 1), ("offset", 0)):
            if name not in query:
                continue
            text = query[name][0]
            if not text.isdigit() or int(text) < low or (name == "limit" and int(text) > MAX_LIMIT):
                errors.append(_problem(("query", name), "not a valid value", "value_error"))
            elif name == "limit":
                limit = int(text)
            else:
                offset = int(text)
        if errors:
            return 422, {"detail": errors}
        wanted = query.get("name", [""])[0].lower()
        with self._lock:
            live = [r for r in self._records.values() if not r.deleted]
        live = [r for r in live if wanted in r.name.lower()]
        live.sort(key=lambda r: r.created_at)  # stable: creation order within a second
        return 200, {"keys": [r.item() for r in live[offset : offset + limit]]}

    def _delete(self, key_id: str) -> tuple[int, Any]:
        with self._lock:
            record = self._records.get(key_id)
            if record is None or record.deleted:
                return 404, {"detail": "API key not found"}
            record.deleted = True
            timer = self._timers.pop(key_id, None)
        if timer is not None:
            timer.cancel()
        self._set_behaviour(record, "invalid")
        return 200, {"detail": "API key deleted successfully"}

    def _create(self, body: object) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 422, {"detail": [_problem(("body",), "Input should be an object", "dict_type")]}
        errors = []
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append(_problem(("body", "name"), "Field required", "missing"))
        workspace = self._workspace(body.get("workspace_uuid"))
        if workspace is None:
            errors.append(_problem(("body", "workspace_uuid"), "Unknown workspace", "value_error"))
        asked: date | None = None
        raw = body.get("expiration")
        if raw is not None:
            try:
                asked = date.fromisoformat(str(raw))
            except ValueError:
                errors.append(_problem(("body", "expiration"), "Invalid date", "date_from_str"))
        today = datetime.now(UTC).date()
        if asked is not None and asked <= today:
            errors.append(_problem(("body", "expiration"), "Must be in the future", "value_error"))
        if errors or workspace is None or not isinstance(name, str):
            return 422, {"detail": errors}
        latest = today + timedelta(days=self.policy_days) if self.policy_days else None
        expiry = asked if latest is None or (asked is not None and asked <= latest) else latest
        api_key = new_api_key()
        record = self._record(api_key, name.strip(), expiry, workspace, None)
        record.minted = True
        user = body.get("user_id")
        record.created_by = user if isinstance(user, str) and user else "admin-api"
        with self._lock:
            self._records[record.key_id] = record
        self._warm_up(record)
        return 201, record.item(plaintext=api_key)

    # --- keys and /v1/models -----------------------------------------------------------------

    def _record(
        self,
        api_key: str,
        name: str,
        expiry: date | None,
        workspace: dict[str, str],
        created_at: datetime | None,
    ) -> OrgKeyRecord:
        return OrgKeyRecord(
            key_id=str(uuid.uuid4()),
            name=name,
            hidden_key=hidden(api_key),
            created_at=created_at or datetime.now(UTC).replace(microsecond=0),
            expiration_date=expiry,
            workspace_id=workspace["uuid"],
            workspace_name=workspace["name"],
            created_by="",
            digest=self._state.digest(api_key),
        )

    def _workspace(self, uuid_: object) -> dict[str, str] | None:
        return next((w for w in self.workspaces if w["uuid"] == uuid_), None)

    def _set_behaviour(self, record: OrgKeyRecord, behaviour: Literal["valid", "invalid"]) -> None:
        with self._state.lock:
            self._state.keys[record.digest] = [(behaviour, None)]

    def _warm_up(self, record: OrgKeyRecord) -> None:
        if self.warmup_s <= 0:
            self._set_behaviour(record, "valid")
            return
        self._set_behaviour(record, "invalid")

        def ready() -> None:
            with self._lock:
                self._timers.pop(record.key_id, None)
                if record.deleted:
                    return
            self._set_behaviour(record, "valid")

        timer = threading.Timer(self.warmup_s, ready)
        timer.daemon = True
        with self._lock:
            self._timers[record.key_id] = timer
        timer.start()

    # --- control --------------------------------------------------------------------------

    def _control(self, handler: _Handler, method: str, body: object) -> None:
        if method == "GET":
            records = self.org_keys(include_deleted=True)
            answer = [dict(r.item(), deleted=r.deleted, minted=r.minted) for r in records]
            handler._send(200, {"keys": answer, "requests": len(self.requests)})
            return
        if method != "PUT":
            handler._send(405, {"error": "GET or PUT"})
            return
        try:
            self._configure(body)
        except (ValueError, KeyError, TypeError) as exc:
            handler._send(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        handler._send(200, {"ok": True})

    def _configure(self, data: object) -> None:
        if not isinstance(data, dict):
            raise TypeError("body must be a JSON object")
        if "policy_days" in data:
            days = data["policy_days"]
            if days is not None and (not isinstance(days, int) or days < 1):
                raise ValueError("policy_days must be a whole number >= 1 or null")
            self.policy_days = days
        if "warmup_s" in data:
            self.warmup_s = float(data["warmup_s"])
        if data.get("heal"):
            self.heal()
        if "fault" in data:
            fault = data["fault"]
            self.fail(str(fault["kind"]), op=fault.get("op"), times=fault.get("times"))
        if "add" in data:
            add = data["add"]
            expiry = add.get("expiration_date")
            self.add_key(
                name=str(add["name"]),
                api_key=add.get("api_key"),
                expiration_date=date.fromisoformat(expiry) if expiry else None,
                workspace_id=add.get("workspace_id"),
            )


_FAULT_ANSWERS: dict[str, tuple[int, Any]] = {
    "401": (401, {"detail": "Invalid API key"}),
    "403": (403, {"detail": "The API key does not have the rights for this action"}),
    "422": (422, {"detail": [{"loc": ["body"], "msg": "Invalid request", "type": "value_error"}]}),
    "429": (429, {"detail": "Too many requests"}),
    "500": (500, {"detail": "Internal Server Error"}),
}


def _problem(loc: tuple[str, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _read_json(handler: _Handler) -> object:
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
