"""The simulated tenant's state machine: seeding identities from the demo people, tokens and
their throttling, access requests (ISC's checks, existing requests, no-op cancellations), rows
moving through their states on the clock, removals applied when a request completes, cancellation;
plus the probes tests read."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections import deque
from typing import Any

from app.simulator.base import LogEntry, Simulator, Submission, Withdrawal
from app.simulator.demo_users import DemoAccess, DemoPerson, demo_people
from app.simulator.sailpoint_isc.docs import tracking
from app.simulator.sailpoint_isc.model import Holding, Identity, IscConfig, Item, Row, Token
from app.simulator.sailpoint_isc.multi import MULTI, add_second_accounts, target_holding
from app.simulator.sailpoint_isc.wire import (
    ADMIN,
    API_CLIENT_ID,
    API_CLIENT_SECRET,
    PAT_CLIENT_ID,
    PAT_CLIENT_SECRET,
    POD,
    RATE_WINDOW,
    SYSTEM,
    TENANT,
    TERMINAL,
    IscError,
    bad,
    hex_id,
    iso,
    new_id,
    parse_time,
    submissions,
    validate_access_request,
)

#: The submit route under every API version the tenant answers.
_SUBMIT = re.compile(r"/v[0-9]+/access-requests")


class IscSimulator(Simulator):
    """The tenant's data and the request state machine; every public method runs under `lock`."""

    config: IscConfig
    config_error_status = 400
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

    def __init__(self) -> None:
        super().__init__(SYSTEM)
        self.tokens: dict[str, Token] = {}
        self.windows: dict[str, deque[float]] = {}
        self.secret = new_id().encode()
        self.reset()

    # ---- control

    def reset(self) -> None:
        self.config = IscConfig()
        self.windows = {}
        self.rows: list[Row] = []
        self.items: dict[str, Item] = {}
        self.identities: dict[str, Identity] = {}
        seeded = self.clock.now() - 86400
        for person in demo_people():
            if person.deleted:
                continue  # a deleted identity is gone from ISC: lookups find nothing
            self.add_person(person, seeded)
        add_second_accounts(self.add_person(MULTI, seeded), self.items)

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def add_people(self, people: list[DemoPerson]) -> None:
        created = self.clock.now() - 86400
        for person in people:
            self.add_person(person, created)

    # ---- probes

    def is_submission(self, entry: LogEntry) -> bool:
        return entry.method == "POST" and _SUBMIT.fullmatch(entry.path) is not None

    def submitted(self, entry: LogEntry) -> list[Submission]:
        return submissions(entry)

    def withdrawn(self) -> list[Withdrawal]:
        return [Withdrawal(r.identity.id, r.item.id) for r in self.rows if r.cancelled_at is not None and not r.noop]

    def user_id(self, username: str) -> str:
        found = next((i.id for i in self.identities.values() if i.person.username == username), None)
        if found is None:
            raise KeyError(username)
        return found

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
        ident_id = hex_id("identity", person.username)
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
                    account=hex_id("account", person.username, access.application)
                    if access.kind == "entitlement"
                    else None,
                    assignment_id=hex_id("assignment", "1", access.name, ident_id) if access.kind == "role" else None,
                )
            )
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
                self._remove(row.identity, row.item, since, since + row.verify_delay, row.target)
        return now

    def _remove(self, ident: Identity, item: Item, at: float, hidden_at: float, target: Holding | None) -> None:
        """Take away `target` (one account's entitlement, one assignment of a role), else every
        holding of the item; a role's own items go with its last assignment."""
        for h in ident.holdings:
            if h.held() and h.item.id == item.id and (target is None or h is target):
                h.removed_at, h.hidden_at = at, hidden_at
        if item.type == "ROLE" and not any(h.held() and h.item.id == item.id for h in ident.holdings):
            for h in ident.holdings:
                if h.held() and h.via == item.name:
                    h.removed_at, h.hidden_at = at, hidden_at

    def open_row(self, ident: Identity, item: Item, now: float, target: Holding | None = None) -> Row | None:
        """The open request for this item (for this account or assignment, when one is named)."""
        for row in reversed(self.rows):
            same = target is None or row.target is None or row.target is target
            if row.identity is ident and row.item.id == item.id and same and row.state(now)[0] not in TERMINAL:
                return row
        return None

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
        fresh: list[tuple[dict[str, Any], Item, str | None, Holding | None]] = []
        existing: dict[str, list[Item]] = {}
        for req, item in resolved:
            holding = target_holding(ident, item, req, cfg)
            earlier = self.open_row(
                ident, item, now, holding if req.keys() & {"nativeIdentity", "assignmentId"} else None
            )
            if earlier is not None and cfg.report_existing:
                existing.setdefault(earlier.access_request_id, []).append(item)
                continue
            noop = None
            if earlier is not None:
                noop = f"Cancelled as a duplicate of open request {earlier.access_request_id}"
            else:
                if holding is None:
                    noop = f"{ident.person.display_name} does not have {item.name}; nothing to revoke"
                elif not (holding.standalone if item.type == "ENTITLEMENT" else holding.revocable):
                    noop = (
                        f"{item.name} was granted by role membership or birthright provisioning and "
                        "cannot be revoked by an access request"
                    )
            fresh.append((req, item, noop, holding))
        chunk = cfg.items_per_request_id or max(1, len(fresh))
        request_ids: list[str] = []
        requester = {"type": "IDENTITY", "id": token.identity_id or ADMIN["id"], "name": ADMIN["name"]}
        for position, (req, item, noop, holding) in enumerate(fresh):
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
                    target=holding,
                    approval_id=new_id() if cfg.approval_delay > 0 else None,
                )
            )
        if cfg.legacy_empty_202:
            return {}
        new = [tracking(ident, [i for _, i, _, _ in fresh], request_ids)] if fresh else []
        return {"newRequests": new, "existingRequests": [tracking(ident, v, [k]) for k, v in existing.items()]}

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
