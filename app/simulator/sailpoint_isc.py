"""A faithful fake of SailPoint Identity Security Cloud (IdentityNow), API v3.

It serves what leaver uses (contract `backends/sailpoint-isc.md` §9): the token endpoint, identity
search, accounts, access requests (submit, status, cancel), with ISC's IDs, error bodies, paging,
throttling and an asynchronous per-item state machine driven by the simulator clock. The same
routes answer under `/v3`, `/v2024`, `/v2025` and `/v2026`, as the real tenant does.

Where the real behaviour is an assumption, a `/_config` switch lets tests choose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.settings import TargetSettings
from app.simulator import SimulatorSpec
from app.simulator.base import SimulatorBase, Submission, Withdrawal, install_simulator_plumbing
from app.simulator.demo_users import DemoAccess, DemoPerson, demo_people

SYSTEM = "sailpoint-isc"
API_VERSIONS = ("v3", "v2024", "v2025", "v2026")

#: Client credentials of a personal access token owned by an ORG_ADMIN service identity.
PAT_CLIENT_ID = "5d6f3b0c9a1e4f7b8c2d4e6f8a0b1c3d"
PAT_CLIENT_SECRET = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d"
#: Client credentials of an API client (no user behind it: authority API, may not request access).
API_CLIENT_ID = "0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d"
API_CLIENT_SECRET = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"

#: Adapter options that make it ask for pages of 3 (used by the shared contract suite).
CONTRACT_SMALL_PAGES = {"search_page_size": 3, "status_page_size": 3}

TENANT = "example"
POD = "stg01-useast1"
LIST_LIMIT_MAX = 250
SEARCH_LIMIT_MAX = 10000
RATE_WINDOW = 10.0

TERMINAL = frozenset(
    {
        "REQUEST_COMPLETED",
        "NOT_ALL_ITEMS_PROVISIONED",
        "PROVISIONING_FAILED",
        "ERROR",
        "REJECTED",
        "CANCELLED",
        "TERMINATED",
    }
)
FINAL_STATE = {
    "completed": "REQUEST_COMPLETED",
    "failed": "PROVISIONING_FAILED",
    "error": "ERROR",
    "not_all_items_provisioned": "NOT_ALL_ITEMS_PROVISIONED",
    "terminated": "TERMINATED",
}
ITEM_TYPES = ("ROLE", "ACCESS_PROFILE", "ENTITLEMENT")
NULLABLE_REFS = frozenset(
    {"cancelledRequestDetails", "provisioningDetails", "preApprovalTriggerDetails", "sodViolationContext"}
)
DETAIL_CODES = {
    400: (
        "400.1 Bad Request Content",
        "The request was syntactically correct but its content is semantically invalid.",
    ),
    403: ("403 Forbidden", "The server understood the request but refuses to authorize it."),
    404: ("404 Not found", "The server did not find a current representation for the target resource."),
    405: ("405 Method Not Allowed", "The request method is not supported for the target resource."),
    500: ("500.0 Internal Fault", "An internal fault occurred."),
    503: ("503 Service Unavailable", "The service is temporarily unavailable."),
}


# --------------------------------------------------------------------------------------------
# Wire helpers


def hex_id(*parts: str) -> str:
    """A stable 32-hex lowercase ID, as ISC uses for every object."""
    return hashlib.md5("|".join(parts).encode()).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


def iso(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def signed_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def error_body(status: int, cause: str | None = None) -> dict[str, Any]:
    """ISC's error body for `status` (§8): ErrorResponseDto, or the gateway's 401/429 shapes."""
    if status == 401:
        return {"error": cause or "JWT validation failed: JWT is invalid"}
    if status == 429:
        return {"message": " Rate Limit Exceeded "}
    code, text = DETAIL_CODES.get(status, (f"{status} Error", "The request failed."))
    causes = [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": cause}] if cause else []
    return {
        "detailCode": code,
        "trackingId": new_id(),
        "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}],
        "causes": causes,
    }


class IscError(HTTPException):
    """Raised by a route; rendered with `error_body`."""

    def __init__(self, status: int, cause: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=cause, headers=headers)


def bad(cause: str) -> IscError:
    return IscError(400, cause)


# --------------------------------------------------------------------------------------------
# Collection filters (`filters=field op value and ...`) and sorters, per the standard collection
# parameters: strings in double quotes, lists as ("a","b"), and/or/not, parentheses.

_FILTER_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<word>[^\s(),"]+))')
Predicate = Callable[[Mapping[str, Any]], bool]


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_filter(text: str, allowed: Mapping[str, set[str]]) -> Predicate:
    """Compile a filter expression; unsupported fields or operators are a 400, as in ISC."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _FILTER_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad(f"invalid filter near: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    at = 0

    def peek() -> tuple[str, str] | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal at
        if at >= len(tokens):
            raise bad("incomplete filter expression")
        at += 1
        return tokens[at - 1]

    def value() -> Any:
        kind, tok = take()
        if kind == "str":
            return _unquote(tok)
        if kind == "lp":
            items = []
            while True:
                k, t = take()
                if k != "str":
                    raise bad("a list in a filter holds quoted strings")
                items.append(_unquote(t))
                k, t = take()
                if k == "rp":
                    return items
                if k != "comma":
                    raise bad("expected ',' or ')' in a filter list")
        if kind == "word":
            return {"true": True, "false": False}.get(tok, tok)
        raise bad(f"unexpected {tok!r} in filter")

    def comparison() -> Predicate:
        kind, name = take()
        if kind == "lp":
            inner = disjunction()
            if take()[0] != "rp":
                raise bad("missing ')' in filter")
            return inner
        if kind == "word" and name == "not":
            negated = comparison()
            return lambda row: not negated(row)
        if kind != "word":
            raise bad(f"expected a field name, got {name!r}")
        op = take()[1]
        if name not in allowed:
            raise bad(f"filtering is not supported for field '{name}'")
        if op not in allowed[name]:
            raise bad(f"operator '{op}' is not supported for field '{name}'")
        if op == "isnull":
            return lambda row: row.get(name) is None
        operand = value()
        if op == "in" and not isinstance(operand, list):
            raise bad('\'in\' needs a list such as ("a","b")')
        return _compare(name, op, operand)

    def conjunction() -> Predicate:
        parts = [comparison()]
        while (nxt := peek()) and nxt == ("word", "and"):
            take()
            parts.append(comparison())
        return lambda row: all(p(row) for p in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while (nxt := peek()) and nxt == ("word", "or"):
            take()
            parts.append(conjunction())
        return lambda row: any(p(row) for p in parts)

    predicate = disjunction()
    if at != len(tokens):
        raise bad(f"unexpected {tokens[at][1]!r} in filter")
    return predicate


def _comparable(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    return value


def _compare(name: str, op: str, operand: Any) -> Predicate:
    def operand_for(actual: Any) -> Any:
        if isinstance(actual, float) and isinstance(operand, str):  # a timestamp field
            try:
                return parse_time(operand)
            except ValueError:
                raise bad(f"'{operand}' is not an ISO-8601 date-time") from None
        return _comparable(operand)

    def check(row: Mapping[str, Any]) -> bool:
        actual = row.get(name)
        if actual is None:
            return op == "ne"
        if op == "in":
            return _comparable(actual) in {_comparable(v) for v in operand}
        want, have = operand_for(actual), _comparable(actual)
        if op == "sw":
            return isinstance(have, str) and have.startswith(str(want))
        if op == "co":
            return isinstance(have, str) and str(want) in have
        result: bool = {
            "eq": lambda: have == want,
            "ne": lambda: have != want,
            "gt": lambda: have > want,
            "ge": lambda: have >= want,
            "lt": lambda: have < want,
            "le": lambda: have <= want,
        }[op]()
        return result

    return check


def sort_rows(rows: list[dict[str, Any]], sorters: str | None, allowed: set[str]) -> list[dict[str, Any]]:
    if not sorters:
        return rows
    keys = [s.strip() for s in sorters.split(",") if s.strip()]
    for key in reversed(keys):
        name = key.lstrip("+-")
        if name not in allowed:
            raise bad(f"sorting is not supported for field '{name}'")
        rows = sorted(
            rows, key=lambda r: (r.get(name) is None, _comparable(r.get(name) or "")), reverse=key.startswith("-")
        )
    return rows


# --------------------------------------------------------------------------------------------
# Search query strings: `field:"phrase"`, `field:word*`, `@accounts(field:"v")`, AND/OR/NOT,
# parentheses, `*`. Text fields are analysed (tokenised, case-insensitive) as in Elasticsearch,
# so a phrase matches inside longer values: the client must keep only exact matches.

_QUERY_TOKEN = re.compile(
    r"\s*(?:(?P<nested>@(?P<nname>\w+)\()|(?P<lp>\()|(?P<rp>\))|(?P<op>AND|OR|NOT)(?=[\s(]|$)"
    r'|(?P<term>(?P<field>[\w.]+):(?P<value>"(?:[^"\\]|\\.)*"|[^\s()"]+))|(?P<all>\*(?=[\s)]|$))'
    r'|(?P<bare>"(?:[^"\\]|\\.)*"|[^\s()"]+))'
)
DEFAULT_FIELDS = ("name", "displayName", "firstName", "lastName", "email", "employeeNumber")
EXACT_FIELDS = frozenset({"id", "identityId", "source.id"})


def analyse(text: str) -> list[str]:
    return re.findall(r"[0-9a-z]+", text.casefold())


def field_values(doc: Any, path: str) -> list[Any]:
    current: list[Any] = [doc]
    for part in path.split("."):
        nxt: list[Any] = []
        for node in current:
            if isinstance(node, dict) and part in node:
                value = node[part]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


def _term_matches(values: Iterable[Any], raw: str, exact: bool) -> bool:
    quoted = raw.startswith('"')
    text = _unquote(raw) if quoted else raw
    strings = [str(v) for v in values if v is not None and not isinstance(v, (dict, list))]
    if exact:
        return any(s.casefold() == text.casefold() for s in strings)
    if not quoted and ("*" in text or "?" in text):
        pattern = re.compile(re.escape(text.casefold()).replace(r"\*", ".*").replace(r"\?", "."))
        return any(pattern.fullmatch(tok) for s in strings for tok in analyse(s))
    wanted = analyse(text)
    if not wanted:
        return False
    for s in strings:
        toks = analyse(s)
        if any(toks[i : i + len(wanted)] == wanted for i in range(len(toks) - len(wanted) + 1)):
            return True
    return False


def parse_query(text: str) -> Predicate:
    tokens: list[re.Match[str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _QUERY_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad(f"Unable to parse query near: {text[pos : pos + 20]!r}")
        tokens.append(m)
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    at = 0

    def peek() -> re.Match[str] | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> re.Match[str]:
        nonlocal at
        if at >= len(tokens):
            raise bad("Unable to parse query: incomplete expression")
        at += 1
        return tokens[at - 1]

    def close() -> None:
        if take().lastgroup != "rp":
            raise bad("Unable to parse query: missing ')'")

    def atom() -> Predicate:
        tok = take()
        kind = tok.lastgroup
        if kind == "op" and tok.group("op") == "NOT":
            inner = atom()
            return lambda doc: not inner(doc)
        if kind == "lp":
            inner = disjunction()
            close()
            return inner
        if kind == "nested":
            name = tok.group("nname")
            inner = disjunction()
            close()
            return lambda doc: any(inner(sub) for sub in field_values(doc, name) if isinstance(sub, dict))
        if kind == "all":
            return lambda doc: True
        if kind == "term":
            fname, raw = tok.group("field"), tok.group("value")
            exact = fname in EXACT_FIELDS
            return lambda doc: _term_matches(field_values(doc, fname), raw, exact)
        if kind == "bare":
            raw = tok.group("bare")
            return lambda doc: any(_term_matches(field_values(doc, f), raw, False) for f in DEFAULT_FIELDS)
        raise bad(f"Unable to parse query near {tok.group(0).strip()!r}")

    def conjunction() -> Predicate:
        parts = [atom()]
        while (
            (nxt := peek()) is not None
            and (nxt.lastgroup != "rp")
            and not (nxt.lastgroup == "op" and nxt.group("op") == "OR")
        ):
            if nxt.lastgroup == "op" and nxt.group("op") == "AND":
                take()
                parts.append(atom())
            else:  # adjacent terms: Elasticsearch's default operator is OR
                break
        return lambda doc: all(p(doc) for p in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while (nxt := peek()) is not None and nxt.lastgroup != "rp":
            if nxt.lastgroup == "op" and nxt.group("op") == "OR":
                take()
            parts.append(conjunction())
        return lambda doc: any(p(doc) for p in parts)

    if not text:
        return lambda doc: True
    predicate = disjunction()
    if at != len(tokens):
        raise bad("Unable to parse query: unbalanced ')'")
    return predicate


# --------------------------------------------------------------------------------------------
# State


class SimConfig(BaseModel):
    """`/_config`: the standard keys every simulator shares, then ISC-specific switches."""

    model_config = ConfigDict(extra="forbid")

    approval_delay: float = Field(0.0, ge=0)
    fulfil_delay: float = Field(1.0, ge=0)
    #: Search index lag: a removed item stays in `access[]` this long after REQUEST_COMPLETED.
    verify_delay: float = Field(2.0, ge=0)
    outcome: Literal[
        "completed", "rejected", "failed", "cancelled", "not_all_items_provisioned", "terminated", "error"
    ] = "completed"
    token_lifetime: int = Field(749, ge=1)
    #: The most records a list page holds (ISC: 250). Set lower, it also caps search pages.
    page_size_max: int = Field(LIST_LIMIT_MAX, ge=1)
    #: The pre-2024-12 202 body: `{}` without request IDs.
    legacy_empty_202: bool = False
    rate_limit_per_10s: int = Field(100, ge=1)
    #: Time spent in PROVISIONING_VERIFICATION_PENDING after provisioning.
    verification_delay: float = Field(0.0, ge=0)
    #: A new request shows in access-request-status only after this long.
    status_lag: float = Field(0.0, ge=0)
    #: True: an item with an open request goes into `existingRequests`. False: it becomes a new
    #: request that ends CANCELLED as a duplicate (the forum's description).
    report_existing: bool = True
    #: False: `accessRequestId in (...)` answers 400 (a tenant without the 2024-12 change).
    status_in_filter: bool = True
    #: >0: the items of one submission are spread over several accessRequestIds, this many each.
    items_per_request_id: int = Field(0, ge=0)


@dataclass
class Item:
    """An access item in the catalog (role, access profile or entitlement)."""

    id: str
    type: str
    name: str
    description: str
    source: dict[str, str] | None
    privileged: bool = False
    attribute: str | None = None
    value: str | None = None


@dataclass
class Holding:
    """One item an identity holds; gone from the index at `hidden_at`."""

    item: Item
    revocable: bool
    standalone: bool
    via: str | None = None
    birthright: bool = False
    removed_at: float | None = None
    hidden_at: float | None = None

    def held(self) -> bool:
        return self.removed_at is None

    def indexed(self, now: float) -> bool:
        return self.hidden_at is None or now < self.hidden_at


@dataclass
class Identity:
    id: str
    person: DemoPerson
    created: float
    holdings: list[Holding]
    accounts: list[dict[str, Any]]


@dataclass
class Token:
    authorities: list[str]
    client_id: str
    identity_id: str | None
    expires_at: float


@dataclass
class Row:
    """One requested item: a row of `access-request-status`."""

    id: str
    access_request_id: str
    activity_item_id: str
    identity: Identity
    item: Item
    position: int
    created: float
    comment: str
    metadata: dict[str, str] | None
    remove_at: float | None
    outcome: str
    approval_delay: float
    fulfil_delay: float
    verification_delay: float
    verify_delay: float
    visible_at: float
    requester: dict[str, str]
    noop: str | None = None
    approval_id: str | None = None
    cancelled_at: float | None = None
    cancel_comment: str | None = None
    applied: bool = False

    @property
    def approved_at(self) -> float:
        return self.created + self.approval_delay

    @property
    def done_at(self) -> float:
        return max(self.approved_at, self.remove_at or 0.0) + self.fulfil_delay

    @property
    def final_at(self) -> float:
        return self.done_at + self.verification_delay

    def state(self, now: float) -> tuple[str, float]:
        """The state at `now` and when it began."""
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return "CANCELLED", self.cancelled_at
        if now < self.approved_at:
            return "EXECUTING", self.created
        if self.noop or self.outcome == "cancelled":
            return "CANCELLED", self.approved_at
        if self.outcome == "rejected":
            return "REJECTED", self.approved_at
        if now < self.done_at:
            return "EXECUTING", self.approved_at
        if now < self.final_at:
            return "PROVISIONING_VERIFICATION_PENDING", self.done_at
        return FINAL_STATE[self.outcome], self.final_at

    def cancelable(self, now: float) -> bool:
        return self.cancelled_at is None and now < self.approved_at


ADMIN = {"type": "IDENTITY", "id": hex_id("identity", "svc-leaver"), "name": "svc-leaver"}
APPROVER = {"type": "IDENTITY", "id": hex_id("identity", "approver"), "name": "Access Approver"}
OWNER = {"id": hex_id("identity", "owner"), "name": "catalog.owner", "displayName": "Catalog Owner"}


def _leaver_key(body: dict[str, Any]) -> str | None:
    meta = body.get("clientMetadata") or {}
    return str(meta["leaverKey"]) if "leaverKey" in meta else None


class IscSimulator(SimulatorBase):
    """The tenant's data and the request state machine; every public method runs under `lock`."""

    endpoints = {
        "submit": ("POST", "/v3/access-requests"),
        "lookup": ("GET", "/v3/access-request-status"),
        "status": ("GET", "/v3/access-request-status"),
        "withdraw": ("POST", "/v3/access-requests/cancel"),
        "inventory": ("GET", "/v3/search/*"),
        "search": ("POST", "/v3/search"),
        "token": ("POST", "/oauth/token"),
        "any": (None, "/v3/*"),
    }

    def withdrawn(self) -> list[Withdrawal]:
        return [Withdrawal(r.identity.id, r.item.id) for r in self.rows if r.cancelled_at is not None and not r.noop]

    def user_id(self, username: str) -> str:
        return next(i.id for i in self.identities.values() if i.person.username == username)

    def add_people(self, people: list[Any]) -> None:
        created = self.clock.now() - 86400
        for person in people:
            self.add_person(person, created)

    def __init__(self) -> None:
        super().__init__(system=SYSTEM)
        self.config = SimConfig()
        self.tokens: dict[str, Token] = {}
        self.windows: dict[str, deque[float]] = {}
        self.secret = new_id().encode()
        self.reset()

    # ---- control

    def reset(self) -> None:
        self.config = SimConfig()
        self.windows = {}
        self.rows: list[Row] = []
        self.items: dict[str, Item] = {}
        self.identities: dict[str, Identity] = {}
        seeded = self.clock.now() - 86400
        for person in demo_people():
            if person.deleted:
                continue  # a deleted identity is gone from ISC: lookups find nothing
            self.add_person(person, seeded)

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        changes = dict(changes)
        if changes.pop("revoke_tokens", False):
            self.tokens.clear()
        try:
            self.config = SimConfig.model_validate({**self.config.model_dump(), **changes})
        except ValidationError as exc:
            raise bad(f"invalid simulator config: {exc.errors()[0]['msg']}") from None
        return self.config.model_dump()

    # ---- seeding

    def _item(self, access: DemoAccess) -> Item:
        kind = {"role": "ROLE", "access_profile": "ACCESS_PROFILE", "entitlement": "ENTITLEMENT"}[access.kind]
        item_id = hex_id(kind, access.application, access.name)
        if item_id not in self.items:
            app = access.application
            source = None if kind == "ROLE" else {"id": hex_id("source", app), "name": app}
            item = Item(item_id, kind, access.name, f"{access.name} ({access.application})", source, access.privileged)
            if kind == "ENTITLEMENT":
                ad = access.application == "Active Directory"
                item.attribute = "memberOf" if ad else "groups"
                item.value = f"CN={access.name},OU=Groups,DC=example,DC=com" if ad else access.name
            self.items[item_id] = item
        return self.items[item_id]

    def add_person(self, person: DemoPerson, created: float) -> Identity:
        holdings = []
        apps = {"Corporate Directory"}
        for access in person.access:
            if access.kind not in ("role", "access_profile", "entitlement"):
                continue  # applications and accounts are not access items in ISC
            apps.add(access.application)
            direct = access.granted_by == "direct"
            holdings.append(
                Holding(
                    self._item(access),
                    revocable=direct,
                    standalone=direct,
                    via=access.via,
                    birthright=access.granted_by == "birthright",
                )
            )
        ident_id = hex_id("identity", person.username)
        accounts = []
        for app in sorted(apps):
            native = person.dn if app == "Corporate Directory" else person.username
            accounts.append(
                {
                    "id": hex_id("account", person.username, app),
                    "name": native,
                    "accountId": native,
                    "source": {
                        "id": hex_id("source", app),
                        "name": app,
                        "type": "LDAP" if app == "Corporate Directory" else "Web Services",
                    },
                    "disabled": False,
                    "locked": False,
                    "privileged": False,
                    "manuallyCorrelated": False,
                    "created": iso(created),
                    "entitlementAttributes": None,
                }
            )
        ident = Identity(ident_id, person, created, holdings, accounts)
        self.identities[ident_id] = ident
        return ident

    # ---- tokens and throttling

    def issue_token(self, client_id: str, client_secret: str) -> dict[str, Any] | None:
        clients = {
            PAT_CLIENT_ID: (PAT_CLIENT_SECRET, ["ORG_ADMIN"], ADMIN["id"]),
            API_CLIENT_ID: (API_CLIENT_SECRET, ["API"], None),
        }
        known = clients.get(client_id)
        if known is None or not hmac.compare_digest(known[0].encode(), client_secret.encode()):
            return None
        _, authorities, identity_id = known
        now = self.clock.now()
        for stale in [t for t, info in self.tokens.items() if info.expires_at <= now]:
            del self.tokens[stale]
            self.windows.pop(stale, None)
        jti = new_id()
        claims: dict[str, Any] = {
            "tenant_id": hex_id("tenant", TENANT),
            "pod": POD,
            "org": TENANT,
            "internal": True,
            "strong_auth_supported": False,
            "strong_auth": False,
            "authorities": authorities,
            "client_id": client_id,
            "scope": ["sp:scopes:all"],
            "jti": jti,
            "exp": int(now + self.config.token_lifetime),
            "iat": int(now),
        }
        if identity_id:
            claims.update(identity_id=identity_id, user_name=ADMIN["name"])

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
        token = head + "." + b64(hmac.new(self.secret, head.encode(), hashlib.sha256).digest())
        self.tokens[token] = Token(authorities, client_id, identity_id, now + self.config.token_lifetime)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.config.token_lifetime,
            "scope": "sp:scopes:all",
            "tenant_id": claims["tenant_id"],
            "pod": POD,
            "org": TENANT,
            "internal": True,
            "strong_auth_supported": False,
            "strong_auth": False,
            "jti": jti,
            "accessType": "OFFLINE" if identity_id else "CLIENT_CREDENTIALS",
        }
        if identity_id:
            body.update(identity_id=identity_id, user_id=ADMIN["name"])
        return body

    def check_token(self, header: str | None, user_only: bool) -> Token:
        if not header or not header.lower().startswith("bearer "):
            raise IscError(401, "JWT validation failed: no bearer token")
        raw = header[7:].strip()
        token = self.tokens.get(raw)
        now = self.clock.now()
        if token is None:
            raise IscError(401, "JWT validation failed: JWT is invalid")
        if now >= token.expires_at:
            raise IscError(401, "JWT validation failed: JWT is expired")
        window = self.windows.setdefault(raw, deque())
        while window and window[0] <= now - RATE_WINDOW:
            window.popleft()
        if len(window) >= self.config.rate_limit_per_10s:
            wait = max(1, math.ceil(window[0] + RATE_WINDOW - now))
            raise IscError(429, headers={"Retry-After": str(wait)})
        window.append(now)
        if user_only and "API" in token.authorities:
            raise IscError(403, "A token with API authority cannot be used to call this endpoint.")
        return token

    # ---- the state machine

    def tick(self) -> float:
        """Apply the effects of requests that finished by now; return now."""
        now = self.clock.now()
        for row in self.rows:
            if row.applied or row.noop:
                continue
            state, since = row.state(now)
            if state not in TERMINAL:
                continue
            row.applied = True
            if state == "REQUEST_COMPLETED" or (state == "NOT_ALL_ITEMS_PROVISIONED" and row.position == 0):
                self._remove(row.identity, row.item, since, since + row.verify_delay)
        return now

    def _remove(self, ident: Identity, item: Item, at: float, hidden_at: float) -> None:
        for h in ident.holdings:
            gone = h.item.id == item.id or (item.type == "ROLE" and h.via == item.name)
            if gone and h.held():
                h.removed_at, h.hidden_at = at, hidden_at

    def open_row(self, ident: Identity, item: Item, now: float) -> Row | None:
        for row in reversed(self.rows):
            if row.identity is ident and row.item.id == item.id and row.state(now)[0] not in TERMINAL:
                return row
        return None

    # ---- rendering

    def identity_doc(self, ident: Identity, now: float, nested: bool = True) -> dict[str, Any]:
        p = ident.person
        first, _, last = p.display_name.partition(" ")
        holdings = [h for h in ident.holdings if h.indexed(now)]
        access = [self.access_doc(h) for h in holdings]
        doc: dict[str, Any] = {
            "id": ident.id,
            "name": p.username,
            "displayName": p.display_name,
            "firstName": first,
            "lastName": last,
            "email": p.email,
            "employeeNumber": p.employee_id,
            "created": iso(ident.created),
            "modified": iso(max([ident.created] + [h.removed_at or 0 for h in ident.holdings])),
            "synced": iso(now),
            "inactive": False,
            "protected": False,
            "status": "ACTIVE",
            "disabled": False,
            "locked": False,
            "isManager": False,
            "manager": None,
            "processingState": None,
            "identityProfile": {"id": hex_id("profile", "employees"), "name": "Employees"},
            "source": {"id": hex_id("source", "HR"), "name": "HR"},
            "attributes": {
                "uid": p.username,
                "email": p.email,
                "displayName": p.display_name,
                "firstname": first,
                "lastname": last,
                "identificationNumber": p.employee_id,
                "cloudLifecycleState": "active",
                "cloudStatus": "UNREGISTERED",
                "identityState": "ACTIVE",
                **p.attributes,
            },
            "accountCount": len(ident.accounts),
            "accessCount": len(access),
            "roleCount": sum(1 for a in access if a["type"] == "ROLE"),
            "accessProfileCount": sum(1 for a in access if a["type"] == "ACCESS_PROFILE"),
            "entitlementCount": sum(1 for a in access if a["type"] == "ENTITLEMENT"),
            "pod": POD,
            "org": TENANT,
            "_type": "identity",
            "type": "identity",
            "_version": "v7",
        }
        if nested:
            doc["accounts"] = ident.accounts
            doc["access"] = access
        return doc

    @staticmethod
    def access_doc(h: Holding) -> dict[str, Any]:
        it = h.item
        doc: dict[str, Any] = {
            "id": it.id,
            "name": it.name,
            "displayName": it.name,
            "type": it.type,
            "description": it.description,
        }
        if it.type == "ROLE":
            doc.update(owner=OWNER, disabled=False, revocable=h.revocable)
        elif it.type == "ACCESS_PROFILE":
            doc.update(source=it.source, owner=OWNER, revocable=h.revocable)
        else:
            doc.update(
                source=it.source,
                privileged=it.privileged,
                attribute=it.attribute,
                value=it.value,
                standalone=h.standalone,
                schema="group",
            )
            if h.birthright:
                doc["revocable"] = False
        return doc

    def account_docs(self) -> list[dict[str, Any]]:
        out = []
        for ident in self.identities.values():
            for acc in ident.accounts:
                out.append(
                    {
                        "id": acc["id"],
                        "name": acc["name"],
                        "created": acc["created"],
                        "modified": acc["created"],
                        "sourceId": acc["source"]["id"],
                        "sourceName": acc["source"]["name"],
                        "identityId": ident.id,
                        "cloudLifecycleState": "active",
                        "identityState": "ACTIVE",
                        "connectionType": "direct",
                        "isMachine": False,
                        "attributes": {"uid": acc["accountId"]},
                        "authoritative": False,
                        "description": None,
                        "disabled": False,
                        "locked": False,
                        "nativeIdentity": acc["accountId"],
                        "systemAccount": False,
                        "uncorrelated": False,
                        "uuid": None,
                        "manuallyCorrelated": False,
                        "hasEntitlements": True,
                        "identity": {"id": ident.id, "type": "IDENTITY", "name": ident.person.username},
                    }
                )
        return out

    def row_doc(self, row: Row, now: float) -> dict[str, Any]:
        state, since = row.state(now)
        approval_done = now >= row.approved_at or row.cancelled_at is not None
        approval_status = (
            "CANCELLED"
            if row.cancelled_at is not None and row.cancelled_at <= row.approved_at
            else "PENDING"
            if not approval_done
            else "REJECTED"
            if state == "REJECTED"
            else "APPROVED"
        )
        approvals = []
        if row.approval_id:
            approvals.append(
                {
                    "approvalId": row.approval_id,
                    "forwarded": False,
                    "originalOwner": APPROVER,
                    "currentOwner": APPROVER,
                    "modified": iso(min(now, row.approved_at)),
                    "status": approval_status,
                    "scheme": "MANAGER",
                    "errorMessages": None,
                    "comment": None,
                    "removeDate": iso(row.remove_at) if row.remove_at else None,
                }
            )
        errors = None
        if state in ("PROVISIONING_FAILED", "ERROR", "NOT_ALL_ITEMS_PROVISIONED", "TERMINATED"):
            text = {
                "PROVISIONING_FAILED": f"Failed to remove {row.item.name}: the connector returned an error",
                "ERROR": "An error occurred while processing the request",
                "NOT_ALL_ITEMS_PROVISIONED": "One or more items of the request failed to provision",
                "TERMINATED": "The request was terminated by an administrator",
            }[state]
            errors = [[{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}]]
        cancelled = None
        if state == "CANCELLED":
            comment = row.cancel_comment or row.noop or "Request cancelled by the system"
            cancelled = {"comment": comment, "owner": ADMIN if row.cancel_comment else APPROVER, "modified": iso(since)}
        approval_phase: dict[str, Any] = {
            "started": iso(row.created),
            "finished": iso(since) if approval_done else None,
            "name": "APPROVAL_PHASE",
            "phaseReference": "approvalDetails",
            "state": "EXECUTING"
            if not approval_done
            else "CANCELLED"
            if approval_status == "CANCELLED"
            else "COMPLETED",
            "result": None
            if not approval_done or approval_status == "CANCELLED"
            else "FAILED"
            if approval_status == "REJECTED"
            else "SUCCESSFUL",
        }
        phases = [approval_phase]
        if approval_done and state not in ("REJECTED", "CANCELLED"):
            finished = now >= row.done_at
            phases.append(
                {
                    "started": iso(row.approved_at),
                    "finished": iso(row.done_at) if finished else None,
                    "name": "PROVISIONING_PHASE",
                    "phaseReference": None,
                    "state": "COMPLETED" if finished else "EXECUTING",
                    "result": None
                    if not finished
                    else "SUCCESSFUL"
                    if state in ("REQUEST_COMPLETED", "PROVISIONING_VERIFICATION_PENDING")
                    else "FAILED",
                }
            )
        ident = row.identity
        doc = {
            "id": row.id,
            "name": row.item.name,
            "type": row.item.type,
            "cancelledRequestDetails": cancelled,
            "errorMessages": errors,
            "state": state,
            "approvalDetails": approvals,
            "approvalIds": [row.approval_id] if row.approval_id else [],
            "manualWorkItemDetails": None,
            "accountActivityItemId": row.activity_item_id,
            "requestType": "REVOKE_ACCESS",
            "modified": iso(since),
            "created": iso(row.created),
            "requester": row.requester,
            "requestedFor": {"type": "IDENTITY", "id": ident.id, "name": ident.person.display_name},
            "requesterComment": {"comment": row.comment, "created": iso(row.created), "author": row.requester},
            "sodViolationContext": None,
            "provisioningDetails": None,
            "preApprovalTriggerDetails": None,
            "accessRequestPhases": phases,
            "description": row.item.description,
            "startDate": None,
            "removeDate": iso(row.remove_at) if row.remove_at else None,
            "cancelable": row.cancelable(now),
            "accessRequestId": row.access_request_id,
            "clientMetadata": row.metadata,
            "requestedAccounts": None,
            "privilegeLevel": None,
        }
        # The spec makes these `allOf: [$ref, {nullable: true}]`, which strict validators read as
        # "never null": leave them out when empty.
        return {k: v for k, v in doc.items() if v is not None or k not in NULLABLE_REFS}

    # ---- access requests

    def submit(self, body: Any, token: Token) -> dict[str, Any]:
        items = validate_access_request(body, self.clock.now())
        now = self.tick()
        ident = self.identities.get(body["requestedFor"][0])
        if ident is None:
            raise bad(f"Identity '{body['requestedFor'][0]}' was not found")
        if ident.id == token.identity_id:
            raise bad("REVOKE_ACCESS does not support self request")
        resolved: list[tuple[dict[str, Any], Item]] = []
        for req in items:
            item = self.items.get(req["id"])
            if item is None or item.type != req["type"]:
                raise bad(f"{req['type']} '{req['id']}' was not found")
            resolved.append((req, item))
        cfg = self.config
        fresh: list[tuple[dict[str, Any], Item, str | None]] = []
        existing: dict[str, list[Item]] = {}
        for req, item in resolved:
            earlier = self.open_row(ident, item, now)
            if earlier is not None and cfg.report_existing:
                existing.setdefault(earlier.access_request_id, []).append(item)
                continue
            noop = None
            if earlier is not None:
                noop = f"Cancelled as a duplicate of open request {earlier.access_request_id}"
            else:
                holding = next((h for h in ident.holdings if h.item.id == item.id and h.held()), None)
                if holding is None:
                    noop = f"{ident.person.display_name} does not have {item.name}; nothing to revoke"
                elif not (holding.standalone if item.type == "ENTITLEMENT" else holding.revocable):
                    noop = (
                        f"{item.name} was granted by role membership or birthright provisioning and "
                        "cannot be revoked by an access request"
                    )
            fresh.append((req, item, noop))
        chunk = cfg.items_per_request_id or max(1, len(fresh))
        request_ids: list[str] = []
        requester = {"type": "IDENTITY", "id": token.identity_id or ADMIN["id"], "name": ADMIN["name"]}
        for position, (req, item, noop) in enumerate(fresh):
            if position % chunk == 0:
                request_ids.append(new_id())
            remove_at = parse_time(req["removeDate"]) if req.get("removeDate") else None
            self.rows.append(
                Row(
                    id=new_id(),
                    access_request_id=request_ids[-1],
                    activity_item_id=new_id(),
                    identity=ident,
                    item=item,
                    position=position,
                    created=now,
                    comment=req["comment"],
                    metadata=dict(req["clientMetadata"]) if req.get("clientMetadata") else None,
                    remove_at=remove_at,
                    outcome=cfg.outcome,
                    approval_delay=cfg.approval_delay,
                    fulfil_delay=cfg.fulfil_delay,
                    verification_delay=cfg.verification_delay,
                    verify_delay=cfg.verify_delay,
                    visible_at=now + cfg.status_lag,
                    requester=requester,
                    noop=noop,
                    approval_id=new_id() if cfg.approval_delay > 0 else None,
                )
            )
        self.record(
            [
                Submission(time.time(), ident.id, str(req["id"]), _leaver_key(body), None)
                for req in body["requestedItems"]
            ]
        )
        if cfg.legacy_empty_202:
            return {}

        def tracking(items: list[Item], ids: list[str]) -> dict[str, Any]:
            details = [{"type": i.type, "id": i.id} for i in items]
            digest = "|".join([ident.id, "REVOKE_ACCESS", *sorted(f"{i.type}:{i.id}" for i in items)])
            return {
                "requestedFor": ident.id,
                "requestedItemsDetails": details,
                "attributesHash": signed_int32(zlib.crc32(digest.encode())),
                "accessRequestIds": ids,
            }

        new = [tracking([i for _, i, _ in fresh], request_ids)] if fresh else []
        return {"newRequests": new, "existingRequests": [tracking(v, [k]) for k, v in existing.items()]}

    def cancel(self, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("accountActivityId"), str):
            raise bad("accountActivityId is required")
        if not isinstance(body.get("comment"), str) or not body["comment"].strip():
            raise bad("comment is required")
        now = self.tick()
        rows = [r for r in self.rows if r.access_request_id == body["accountActivityId"]]
        if not rows:
            raise IscError(404, f"Access request '{body['accountActivityId']}' was not found")
        if not any(r.cancelable(now) for r in rows):
            raise bad("The access request cannot be cancelled: it has passed the approval step or is complete")
        for r in rows:
            if r.cancelable(now):
                r.cancelled_at, r.cancel_comment = now, body["comment"]


def validate_access_request(body: Any, now: float) -> list[dict[str, Any]]:
    """The synchronous checks ISC makes on `POST /access-requests`; each failure is a 400."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object")
    kind = body.get("requestType") or "GRANT_ACCESS"
    if kind not in ("GRANT_ACCESS", "REVOKE_ACCESS", "MODIFY_ACCESS"):
        raise bad(f"Unknown requestType '{kind}'")
    targets = body.get("requestedFor")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise bad("requestedFor is required and must list identity IDs")
    items = body.get("requestedItems")
    if not isinstance(items, list) or not items:
        raise bad("requestedItems is required and must not be empty")
    for item in items:
        if not isinstance(item, dict) or item.get("type") not in ITEM_TYPES or not isinstance(item.get("id"), str):
            raise bad("each requested item needs a type (ROLE, ACCESS_PROFILE, ENTITLEMENT) and an id")
        meta = item.get("clientMetadata")
        if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
            raise bad("clientMetadata must map strings to strings")
    if kind != "REVOKE_ACCESS":
        raise bad(f"{kind} is not simulated; this simulator handles REVOKE_ACCESS")
    if len(targets) != 1:
        raise bad("REVOKE_ACCESS can only be requested for a single identity")
    if body.get("requestedForWithRequestedItems"):
        raise bad("requestedForWithRequestedItems is not supported for REVOKE_ACCESS")
    if sum(1 for i in items if i["type"] == "ENTITLEMENT") > 1:
        raise bad("Revoke requests for entitlements are limited to 1 entitlement per access request")
    if len({(i["type"], i["id"]) for i in items}) != len(items):
        raise bad("requestedItems lists the same item twice")
    for item in items:
        if not isinstance(item.get("comment"), str) or not item["comment"].strip():
            raise bad("Comment is required for REVOKE_ACCESS requests")
        if item.get("startDate") is not None:
            raise bad("startDate cannot be specified in a REVOKE_ACCESS request")
        if item.get("removeDate") is not None:
            try:
                when = parse_time(str(item["removeDate"]))
            except ValueError:
                raise bad(f"removeDate '{item['removeDate']}' is not an ISO-8601 date-time") from None
            if when <= now:
                raise bad("removeDate must be in the future")
    return items


# --------------------------------------------------------------------------------------------
# The app


STATUS_FILTERS = {
    "accessRequestId": {"eq", "ne", "in", "sw", "gt", "ge", "lt", "le"},
    "accountActivityItemId": {"eq", "in", "ne", "sw", "gt", "ge", "le"},
    "created": {"eq", "ne", "gt", "ge", "lt", "le"},
}
STATUS_SORTERS = {"created", "modified", "accountActivityItemId", "name"}
ACCOUNT_FILTERS = {
    "id": {"eq", "in", "sw"},
    "identityId": {"eq", "in", "sw"},
    "name": {"eq", "in", "sw"},
    "nativeIdentity": {"eq", "in", "sw"},
    "sourceId": {"eq", "in", "sw"},
}
ACCOUNT_SORTERS = {"id", "name", "created", "modified", "sourceId", "identityId", "nativeIdentity"}


def _int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"'{name}' must be an integer") from None
    if value < 0 or (maximum is not None and value > maximum):
        raise bad(f"'{name}' must be between 0 and {maximum}" if maximum else f"'{name}' must not be negative")
    return value


def _page(request: Request, rows: list[Any], maximum: int, cap: int) -> Response:
    limit = _int_param(request, "limit", LIST_LIMIT_MAX, maximum)
    offset = _int_param(request, "offset", 0)
    page = rows[offset : offset + min(limit, cap)]
    headers = {}
    if request.query_params.get("count", "false").lower() == "true":
        headers["X-Total-Count"] = str(len(rows))
    return JSONResponse(page, headers=headers)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise bad("A request body is required")
    try:
        return json.loads(raw)
    except ValueError:
        raise bad("The request body is not valid JSON") from None


def create_app() -> FastAPI:
    """A fresh simulator with the demo people."""
    sim = IscSimulator()
    app = FastAPI(title="SailPoint Identity Security Cloud simulator", docs_url=None, redoc_url=None)
    app.state.sim = sim
    install_simulator_plumbing(app, sim, error_body)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cause = exc.detail if isinstance(exc, IscError) else None
        return JSONResponse(error_body(exc.status_code, cause), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(error_body(400, str(exc.errors()[0].get("msg", "invalid request"))), status_code=400)

    @app.get("/_config", include_in_schema=False)
    def get_config() -> dict[str, Any]:
        with sim.lock:
            return sim.config.model_dump()

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        form.update({k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()})
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, csec = base64.b64decode(auth[6:]).decode().partition(":")
                form.setdefault("client_id", cid)
                form.setdefault("client_secret", csec)
            except ValueError:
                pass
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}, status_code=400
            )
        with sim.lock:
            body = sim.issue_token(form.get("client_id", ""), form.get("client_secret", ""))
        if body is None:
            return JSONResponse({"error": "invalid_client", "error_description": "Bad credentials"}, status_code=401)
        return JSONResponse(body)

    api = APIRouter()

    @api.post("/search")
    async def search(request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise bad("The search body must be a JSON object")
        query = body.get("query") or {}
        predicate = parse_query(str(query.get("query", "*")) if isinstance(query, dict) else "*")
        limit = _int_param(request, "limit", LIST_LIMIT_MAX, SEARCH_LIMIT_MAX)
        if _int_param(request, "offset", 0) + limit > SEARCH_LIMIT_MAX:
            raise bad("offset + limit may not exceed 10000; use searchAfter")
        nested = body.get("includeNested", True) is not False
        with sim.lock:
            now = sim.tick()
            indices = body.get("indices") or ["*"]
            docs = []
            if "identities" in indices or "*" in indices:
                docs = [sim.identity_doc(i, now) for i in sim.identities.values()]
            cap = sim.config.page_size_max if sim.config.page_size_max < LIST_LIMIT_MAX else SEARCH_LIMIT_MAX
        hits = [d for d in docs if predicate(d)]
        sort = body.get("sort") or ["id"]
        for key in reversed(sort):
            name = key.lstrip("+-")
            hits.sort(key=lambda d: str((field_values(d, name) or [""])[0]).casefold(), reverse=key.startswith("-"))
        after = body.get("searchAfter")
        if after:

            def position(d: dict[str, Any]) -> list[str]:
                return [str((field_values(d, k.lstrip("+-")) or [""])[0]).casefold() for k in sort]

            marker = [str(a).casefold() for a in after]
            hits = [d for d in hits if position(d)[: len(marker)] > marker]
        if not nested:
            for d in hits:
                d.pop("access", None)
                d.pop("accounts", None)
        return _page(request, hits, SEARCH_LIMIT_MAX, cap)

    @api.get("/search/{index}/{doc_id}")
    def search_get(index: str, doc_id: str, request: Request) -> dict[str, Any]:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
            if index not in ("accessprofiles", "accountactivities", "entitlements", "events", "identities", "roles"):
                raise bad(f"Unknown index '{index}'")
            now = sim.tick()
            ident = sim.identities.get(doc_id) if index == "identities" else None
            if ident is None:
                raise IscError(404, f"No document '{doc_id}' in index '{index}'")
            return sim.identity_doc(ident, now)

    @api.get("/accounts")
    def accounts(request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
        flt = request.query_params.get("filters")
        predicate = parse_filter(flt, ACCOUNT_FILTERS) if flt else (lambda row: True)
        with sim.lock:
            docs = sim.account_docs()
            cap = sim.config.page_size_max
        rows = sort_rows([d for d in docs if predicate(d)], request.query_params.get("sorters"), ACCOUNT_SORTERS)
        return _page(request, rows, LIST_LIMIT_MAX, cap)

    @api.post("/access-requests", status_code=202)
    async def access_requests(request: Request) -> Response:
        with sim.lock:
            token = sim.check_token(request.headers.get("authorization"), user_only=True)
        body = await _json_body(request)
        with sim.lock:
            return JSONResponse(sim.submit(body, token), status_code=202)

    @api.post("/access-requests/cancel", status_code=202)
    async def cancel(request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=True)
        body = await _json_body(request)
        with sim.lock:
            sim.cancel(body)
        return JSONResponse({}, status_code=202)

    @api.get("/access-request-status")
    def status(request: Request) -> Response:
        q = request.query_params
        with sim.lock:
            token = sim.check_token(request.headers.get("authorization"), user_only=True)
        if q.get("regarding-identity") and (q.get("requested-for") or q.get("requested-by")):
            raise bad("regarding-identity is mutually exclusive with requested-for and requested-by")
        if q.get("request-state") not in (None, "EXECUTING"):
            raise bad("The only valid value of request-state is EXECUTING")
        flt = q.get("filters")
        predicate = parse_filter(flt, STATUS_FILTERS) if flt else (lambda row: True)
        with sim.lock:
            if flt and not sim.config.status_in_filter and re.search(r"\baccessRequestId\s+in\b", flt):
                raise bad("operator 'in' is not supported for field 'accessRequestId'")
            now = sim.tick()

            def who(name: str) -> str | None:
                value = q.get(name)
                return token.identity_id if value == "me" else value

            wanted_for, wanted_by, regarding, assigned = (
                who("requested-for"),
                who("requested-by"),
                who("regarding-identity"),
                who("assigned-to"),
            )
            rows = []
            for row in sim.rows:
                if now < row.visible_at:
                    continue
                target, requester = row.identity.id, row.requester["id"]
                if (wanted_for and target != wanted_for) or (wanted_by and requester != wanted_by):
                    continue
                if regarding and regarding not in (target, requester):
                    continue
                if assigned and not (row.approval_id and assigned == APPROVER["id"]):
                    continue
                doc = sim.row_doc(row, now)
                if q.get("request-state") and doc["state"] != "EXECUTING":
                    continue
                if predicate(
                    {
                        "accessRequestId": row.access_request_id,
                        "accountActivityItemId": row.activity_item_id,
                        "created": row.created,
                    }
                ):
                    rows.append(doc)
            cap = sim.config.page_size_max
        rows = sort_rows(rows, q.get("sorters"), STATUS_SORTERS)
        return _page(request, rows, LIST_LIMIT_MAX, cap)

    for version in API_VERSIONS:
        app.include_router(api, prefix=f"/{version}")
    return app


def demo_target(base_url: str, name: str = SYSTEM) -> TargetSettings:
    """A target that points leaver's adapter at this simulator with the ORG_ADMIN PAT."""
    base_url = base_url.rstrip("/")
    return TargetSettings(
        name=name,
        system=SYSTEM,
        base_url=base_url,
        token_url=f"{base_url}/oauth/token",
        client_id=PAT_CLIENT_ID,
        client_secret=SecretStr(PAT_CLIENT_SECRET),
        # The simulator lists a request as soon as it is made: a short lookup grace is enough.
        options={"lookup_grace_tries": 2, "lookup_grace_seconds": 0.5},
    )


SPEC = SimulatorSpec(
    system=SYSTEM,
    create_app=create_app,
    demo_target=demo_target,
    # ISC also throttles callers (100 calls per 10 s per token by default): lifted for tests.
    test_config={"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.3, "rate_limit_per_10s": 100_000},
    small_pages=CONTRACT_SMALL_PAGES,
)
