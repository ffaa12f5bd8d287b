"""SCIM as IdentityIQ speaks it: error bodies with a string `status`, ListResponse paging without
`itemsPerPage`, filters (`eq`, `co`, `sw`, `gt`, `ge`, `lt`, `le` joined by `and`, values quoted),
`attributes` projection, IDs of 32 hex digits, dates with milliseconds and an offset."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from app.simulator.base import ErrorShape, SimError
from app.simulator.base import int_param as _int_param

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SAILPOINT_USER = "urn:ietf:params:scim:schemas:sailpoint:1.0:User"
LAUNCHED_WORKFLOW = "urn:ietf:params:scim:schemas:sailpoint:1.0:LaunchedWorkflow"
TASK_RESULT = "urn:ietf:params:scim:schemas:sailpoint:1.0:TaskResult"
#: The server's zone: IIQ writes local time with its offset.
ZONE = timezone(timedelta(hours=-5))

#: A filterable attribute: its values on one resource.
Field = Callable[[Mapping[str, Any]], Iterable[Any]]


class ScimError(SimError):
    """An error answer in IIQ's SCIM shape, with its `scimType` where IIQ gives one."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(status, detail)
        self.scim_type = scim_type

    def render(self, shape: ErrorShape) -> Any:
        return error_body(self.status, self.message, self.scim_type)


def error_body(status: int, detail: str | None = None, scim_type: str | None = None) -> dict[str, Any]:
    """`{"schemas": [Error], "scimType"?, "detail", "status": "<string>"}` (contract §8)."""
    body: dict[str, Any] = {"schemas": [ERROR]}
    if scim_type:
        body["scimType"] = scim_type
    body["detail"] = detail or {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}.get(
        status, "An unexpected error occurred"
    )
    body["status"] = str(status)
    return body


def hex_id(*parts: str) -> str:
    """A stable 32-hex id, IIQ's id format."""
    return hashlib.md5("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, ZONE).isoformat(timespec="milliseconds")


def meta(kind: str, location: str, created: float, modified: float) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": iso(created),
        "lastModified": iso(modified),
        "location": location,
        "version": f'W/"{int(modified * 1000)}"',
    }


# ---- filters

_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+)')
_OPS = {"eq", "co", "sw", "gt", "ge", "lt", "le"}


def _literal(token: str) -> Any:
    if token.startswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token in ("true", "false"):
        return token == "true"
    raise ScimError(400, f"Invalid filter: value {token} must be quoted", "invalidFilter")


def _attribute(name: str) -> str:
    """`urn:...:User:emails.value` -> `emails.value`."""
    return name.rsplit(":", 1)[-1] if name.startswith("urn:") else name


def _compare(op: str, have: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return op == "eq" and have == want
    left, right = str(have).casefold(), str(want).casefold()
    if op == "eq":
        return left == right
    if op == "co":
        return right in left
    if op == "sw":
        return left.startswith(right)
    try:
        left_t, right_t = datetime.fromisoformat(str(have)), datetime.fromisoformat(str(want))
        a, b = left_t.timestamp(), right_t.timestamp()
    except ValueError:
        return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]
    return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]


def parse_filter(text: str, fields: Mapping[str, Field]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for `text`; 400 invalidFilter for bad syntax, invalidValue for an attribute
    the site's SCIMConfiguration does not map."""
    tokens = [m.group(1) for m in _TOKEN.finditer(text) if m.group(1)]
    terms: list[tuple[Field, str, Any]] = []
    at = 0
    while at < len(tokens):
        if len(tokens) - at < 3:
            raise ScimError(400, f"Invalid filter: {text}", "invalidFilter")
        name, op, value = tokens[at], tokens[at + 1].casefold(), tokens[at + 2]
        if op not in _OPS:
            raise ScimError(400, f"Invalid filter: unsupported operator {tokens[at + 1]}", "invalidFilter")
        field = fields.get(_attribute(name))
        if field is None:
            raise ScimError(400, f"Invalid {name}", "invalidValue")
        terms.append((field, op, _literal(value)))
        at += 3
        if at < len(tokens):
            if tokens[at].casefold() != "and":
                raise ScimError(400, f"Invalid filter: unsupported operator {tokens[at]}", "invalidFilter")
            at += 1
            if at == len(tokens):
                raise ScimError(400, f"Invalid filter: {text}", "invalidFilter")
    if not terms:
        raise ScimError(400, "Invalid filter: empty", "invalidFilter")

    def matches(doc: Mapping[str, Any]) -> bool:
        return all(any(_compare(op, v, want) for v in field(doc) if v is not None) for field, op, want in terms)

    return matches


# ---- lists and projection


def invalid_value(message: str) -> ScimError:
    return ScimError(400, message, "invalidValue")


def int_param(params: Mapping[str, str], name: str, default: int) -> int:
    return _int_param(params, name, default, invalid_value)


def list_response(docs: list[dict[str, Any]], params: Mapping[str, str], page_max: int) -> dict[str, Any]:
    """One page: `startIndex` 1-based, `count` capped at `filter.maxResults`; no `itemsPerPage`."""
    start = max(1, int_param(params, "startIndex", 1))
    count = max(0, min(int_param(params, "count", page_max), page_max))
    return {
        "schemas": [LIST],
        "totalResults": len(docs),
        "startIndex": start,
        "Resources": docs[start - 1 : start - 1 + count],
    }


def sort_docs(docs: list[dict[str, Any]], params: Mapping[str, str]) -> list[dict[str, Any]]:
    key = params.get("sortBy")
    if not key:
        return docs
    descending = params.get("sortOrder", "ascending").casefold() == "descending"
    return sorted(docs, key=lambda d: str(d.get(key) or ""), reverse=descending)


def project(
    doc: dict[str, Any], params: Mapping[str, str], by_request: Iterable[tuple[str, str]] = ()
) -> dict[str, Any]:
    """`attributes` (only these, plus id, schemas, meta) and the attributes returned only when
    requested (`by_request`: (extension, name) pairs, e.g. a User's roles)."""
    raw = params.get("attributes")
    wanted = {a.strip() for a in raw.split(",") if a.strip()} if raw else set()
    out = copy.deepcopy(doc)
    for ext, name in by_request:
        if f"{ext}:{name}" not in wanted and ext not in wanted and name not in wanted:
            (out.get(ext) or {}).pop(name, None)
    if not wanted:
        return out
    kept: dict[str, Any] = {k: out[k] for k in ("id", "schemas", "meta") if k in out}
    for name in wanted:
        within = next((k for k in out if k.startswith("urn:") and name.startswith(k + ":")), None)
        if name in out:
            kept[name] = out[name]
        elif within is not None:
            sub = name[len(within) + 1 :]
            if sub in out[within]:
                kept.setdefault(within, {})[sub] = out[within][sub]
        else:
            top = _attribute(name).split(".", 1)[0]
            if top in out:
                kept[top] = out[top]
    return kept
