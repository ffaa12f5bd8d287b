"""The simulated IDHub API: one dispatcher over the route table of the configuration, so a test
can move any route (another tenant's paths and methods) with `/_config` and no code.

Each handler takes the parsed call and answers `(status, body, headers)` or raises `IdHubError`;
`app` puts it on HTTP. Sign-in is Keycloak's token endpoint, with an optional RFC 8693 exchange.
"""

from __future__ import annotations

import base64
import re
import secrets
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.simulator.idhub.catalog import Entity
from app.simulator.idhub.config import EXCHANGE_REALM, ROUTES, TOKEN_ROUTE, IdHubConfig
from app.simulator.idhub.state import Request, Store, Task, Timing
from app.simulator.idhub.wire import (
    IdHubError,
    account_docs,
    app_doc,
    entitlement_doc,
    request_doc,
    role_doc,
    task_doc,
    user_doc,
)

CLIENT_ID = "leaver"
CLIENT_SECRET = "leaver-demo-secret"
PAGE_MAX = 1000  # RESTHeart's largest page
COLLECTIONS = ("Users", "Roles", "Entitlement", "TargetSystem", "ServiceRequest")
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass
class Call:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    form: Mapping[str, str]
    now: float


Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Token:
    expires_at: float
    exchanged: bool


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", path)
    return re.compile("".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts) + "$")


class IdHubApi:
    """The tenant's API over a `Store`. Holds the tokens it issued."""

    def __init__(
        self, store: Store, settings: Callable[[], IdHubConfig], submitted: Callable[[list[Request]], None]
    ) -> None:
        self.store = store
        self.settings = settings
        self.submitted = submitted
        self.tokens: dict[str, Token] = {}
        self.handlers: dict[str, Callable[[Call, dict[str, str]], Answer]] = {
            "catalog_search": self.search,
            "request_by_id": self.request_by_id,
            "requests_by_type": self.requests_by_type,
            "cart_create": self.cart_create,
            "cart_submit": self.cart_submit,
            "tasks": self.tasks,
            "task_action": self.task_action,
            "user_accounts": self.user_accounts,
        }

    # ---- routing

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """Which named route a call is, by the configured table (the token endpoint included)."""
        switches = self.settings()
        token_method, token_path = TOKEN_ROUTE.split(" ", 1)
        table = [("token", token_method, token_path)] + [(n, *switches.route(n)) for n in ROUTES]
        # Literal paths before templates, so `/request/cart` is never taken for `/request/{id}`.
        for name, want, template in sorted(table, key=lambda r: "{" in r[2]):
            found = _pattern(template).match(path)
            if want == method and found:
                return name, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
        return None

    def handle(self, call: Call) -> Answer:
        routed = self.route(call.method, call.path)
        if routed is None:
            raise IdHubError(404, f"no resource {call.method} {call.path}")
        name, params = routed
        if name == "token":
            return self.token(call, params)
        self._authorise(call)
        self.store.tick(call.now)
        return self.handlers[name](call, params)

    def _authorise(self, call: Call) -> None:
        switches = self.settings()
        header = call.headers.get("authorization", "")
        token = self.tokens.get(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if token is None or call.now >= token.expires_at:
            raise IdHubError(401, "invalid or expired token", {"WWW-Authenticate": 'Bearer realm="idhub"'})
        if switches.require_token_exchange and not token.exchanged:
            raise IdHubError(401, f"token not issued by realm {EXCHANGE_REALM}")
        tenant = call.headers.get(switches.tenant_header.lower())
        if not tenant:
            raise IdHubError(400, f"the {switches.tenant_header} header is required")
        if tenant != switches.tenant:
            raise IdHubError(403, f"tenant {tenant!r} is not accessible with this token")

    # ---- sign-in (Keycloak)

    def token(self, call: Call, params: dict[str, str]) -> Answer:
        realm, settings = params["realm"], self.settings()
        if realm not in (settings.tenant, EXCHANGE_REALM):
            return 404, {"error": "Realm does not exist"}, {}
        form = dict(call.form)
        basic = call.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            form.setdefault("client_id", urllib.parse.unquote(user))
            form.setdefault("client_secret", urllib.parse.unquote(password))
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return (
                401,
                {"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"},
                {},
            )
        grant = form.get("grant_type")
        exchanged = False
        if grant == EXCHANGE_GRANT:
            subject = self.tokens.get(form.get("subject_token", ""))
            if realm != EXCHANGE_REALM or subject is None or call.now >= subject.expires_at:
                return 400, {"error": "invalid_request", "error_description": "Invalid token"}, {}
            exchanged = True
        elif grant != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}, {}
        value = secrets.token_urlsafe(24)
        self.tokens[value] = Token(call.now + settings.token_lifetime, exchanged)
        body = {
            "access_token": value,
            "expires_in": int(settings.token_lifetime),
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": form.get("scope") or "profile email",
        }
        return 200, body, {"Cache-Control": "no-store"}

    # ---- catalog and accounts

    def search(self, call: Call, _: dict[str, str]) -> Answer:
        collection = call.query.get("collection")
        if collection is not None and collection not in COLLECTIONS:
            raise IdHubError(400, f"collection must be one of {', '.join(COLLECTIONS)}")
        keyword = call.query.get("keyword", "").casefold()
        strict = self.settings().strict_keyword
        store, out = self.store, []
        if collection in (None, "Users"):
            for person in store.people.values():
                names = [person.display_name] + ([] if strict else [person.login, person.email])
                if any(keyword in n.casefold() for n in names):
                    out.append(user_doc(person, store.catalog))
        renderers: dict[str, tuple[str, Callable[[Entity], dict[str, Any]]]] = {
            "Roles": ("Role", lambda e: role_doc(e, store.catalog)),
            "Entitlement": ("Entitlement", entitlement_doc),
            "TargetSystem": ("TargetSystem", app_doc),
        }
        for name, (kind, render) in renderers.items():
            if collection in (None, name):
                hits = [e for e in store.catalog.entities.values() if e.kind == kind and keyword in e.name.casefold()]
                out += [render(e) for e in hits]
        return 200, out, {}

    def user_accounts(self, call: Call, _: dict[str, str]) -> Answer:
        userid, login, status = call.query.get("userid"), call.query.get("login"), call.query.get("status")
        if not userid and not login:
            raise IdHubError(400, "userid or login is required")
        store = self.store
        people = [
            p for p in store.people.values() if p.id == userid or (login and p.login.casefold() == login.casefold())
        ]
        docs = [d for p in people for d in account_docs(p, store.catalog)]
        return 200, [d for d in docs if status is None or d["status"] == status], {}

    # ---- carts

    def _timing(self) -> Timing:
        s = switches = self.settings()
        return Timing(
            approval_delay=s.approval_delay,
            fulfil_delay=s.fulfil_delay,
            verify_delay=s.verify_delay,
            outcome=s.outcome,
            revoke_type=switches.revoke_type,
            rejected_as=switches.rejected_as,
            resolutions=dict(switches.resolutions),
            still_held=switches.still_held,
        )

    def cart_create(self, call: Call, _: dict[str, str]) -> Answer:
        body = _object(call.body)
        cart = self.store.create_cart(body, call.now)
        answer: dict[str, Any] = {"correlationId": cart.oid, "result": True}
        if not self.settings().require_etag:
            return 201, answer, {}
        return 201, {**answer, "_etag": {"$oid": cart.etag}}, {"ETag": cart.etag}

    def cart_submit(self, call: Call, params: dict[str, str]) -> Answer:
        body = _object(call.body)
        switches = self.settings()
        cart = self.store.open_cart(body.get("owner"), body.get("name"), params.get("cart"))
        if switches.require_etag:
            sent = body.get("_etag")
            etag = sent.get("$oid", sent.get("oid")) if isinstance(sent, Mapping) else sent
            if etag is None:
                raise IdHubError(409, "The ETag must be provided using the '_etag' field")
            if etag != cart.etag:
                raise IdHubError(412, "The ETag does not match the cart's")
        timing = self._timing()
        outcomes = switches.item_outcomes
        made = self.store.submit(body, cart, timing, call.now, switches.request_lag)
        for req in made:
            if req.entity.id in outcomes:
                req.timing = Timing(**{**timing.__dict__, "outcome": outcomes[req.entity.id]})
            if switches.request_correlation_is_submit_id:
                req.correlation_id = cart.oid
        self.submitted(made)
        return 200, {"correlationId": cart.oid, "result": True}, {}

    # ---- requests

    def requests_by_type(self, call: Call, _: dict[str, str]) -> Answer:
        switches = self.settings()
        kind = call.query.get("filter")
        allowed = ("create", "modify", switches.revoke_type)
        if kind is not None and kind not in allowed:
            raise IdHubError(400, f"filter must be one of {', '.join(allowed)}")
        size, page = _int(call.query, "pagesize", 100), _int(call.query, switches.page_param, 1)
        cap = min(PAGE_MAX, self.settings().page_size_max)
        if not 1 <= size <= cap:
            raise IdHubError(400, f"illegal pagesize {size}: it must be between 1 and {cap}")
        if page < 1:
            raise IdHubError(400, f"illegal {switches.page_param} {page}: pages start at 1")
        rows = [r for r in self.store.requests if r.visible_at <= call.now and kind in (None, r.type)]
        if switches.newest_first:
            rows.reverse()
        return 200, [request_doc(r) for r in rows[(page - 1) * size : page * size]], {}

    def request_by_id(self, call: Call, params: dict[str, str]) -> Answer:
        found = [r for r in self.store.requests if r.oid == params["id"] and r.visible_at <= call.now]
        if not found:
            raise IdHubError(404, f"request {params['id']} not found")
        return 200, [request_doc(found[0])], {}

    # ---- tasks

    def tasks(self, call: Call, _: dict[str, str]) -> Answer:
        wanted = _loose_filter(call.query.get("filter", ""))

        def matches(task: Task) -> bool:
            login = wanted.get("userLogin")
            return wanted.get("status", task.status) == task.status and login in (None, task.assignee)

        return 200, [task_doc(t) for t in self.store.find_tasks(matches)], {}

    def task_action(self, call: Call, params: dict[str, str]) -> Answer:
        task = self.store.act(params["id"], params["action"], _object(call.body), call.now)
        return 200, {**task_doc(task), "result": True}, {}


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise IdHubError(400, "the body must be a JSON object")
    return body


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise IdHubError(400, f"{name} must be a number, got {value!r}") from None


def _loose_filter(text: str) -> dict[str, str]:
    """The tasks `filter` as the docs write it: `{status:Completed,userLogin:jerome}` (quotes optional)."""
    pairs = [p.split(":", 1) for p in text.strip().strip("{}").split(",") if ":" in p]
    return {k.strip().strip("\"'"): v.strip().strip("\"'") for k, v in pairs}
