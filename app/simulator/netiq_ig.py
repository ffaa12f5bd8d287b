"""Simulator of NetIQ / OpenText Identity Governance 3.7 - 4.2 (contract: backends/netiq-ig.md, §9).

Same paths, bodies, ID formats, Fault errors, paging and OSP password grant as the real REST API.
Request items move through their statuses on the simulator clock, computed when asked, so tests
advance `POST /_clock` instead of sleeping. Points the contract marks as assumed [A] are reproduced
as assumed there; the ones a test may want to vary are switches in `/_config`.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.settings import TargetSettings
from app.simulator import SimulatorSpec
from app.simulator.base import SimulatorBase, Submission, Withdrawal, install_simulator_plumbing
from app.simulator.demo_users import DemoAccess, DemoPerson, demo_people

SYSTEM = "netiq-ig"
CLIENT_ID = "iac"
CLIENT_SECRET = "demo-iac-secret"
SERVICE_USER = "svc-leaver"
SERVICE_PASSWORD = "demo-svc-password"
#: Signs in fine but holds no IG authorization role: every API call answers 403.
NO_RIGHTS_USER = "svc-norights"
OSP = "/osp/a/idm/auth/oauth2"
MAX_SIZE = 1000
BIRTHRIGHT_ROLE = "All Employees"
#: Adapter options that make it ask for pages of 3 (used by the shared contract suite).
CONTRACT_SMALL_PAGES = {"page_size": 3}

#: RequestItem.requestType enum of the 4.2 spec.
REQUEST_TYPES = frozenset(
    {
        "ADD_USER_TO_ACCOUNT",
        "ADD_PERMISSION_TO_USER",
        "ADD_APPLICATION_TO_USER",
        "ADD_TECH_ROLE_TO_USER",
        "ADD_BUSINESS_ROLE_MEMBERSHIP",
        "REMOVE_PERMISSION_ASSIGNMENT",
        "REMOVE_ACCOUNT_PERMISSION",
        "REMOVE_ACCOUNT_ASSIGNMENT",
        "REMOVE_ACCOUNT",
        "REMOVE_APPLICATION_FROM_USER",
        "REMOVE_TECH_ROLE_ASSIGNMENT",
        "REMOVE_BUSINESS_ROLE_MEMBERSHIP",
        "REMOVE_BUS_ROLE_ASSIGNMENT",
        "REMOVE_BUS_ROLE_AUTHS",
        "MODIFY_PERMISSION_ASSIGNMENT",
        "MODIFY_ACCOUNT_ASSIGNMENT",
        "MODIFY_TECH_ROLE_ASSIGNMENT",
        "MODIFY_ACCOUNT",
        "MODIFY_USER_PROFILE",
        "MODIFY_USER_SUPERVISOR",
        "MODIFY_BUS_ROLE_DEFN",
        "MODIFY_TECH_ROLE_DEFN",
        "DATA_VIOLATION_USER",
        "DATA_VIOLATION_PERMISSION",
        "DATA_VIOLATION_ACCOUNT",
        "CERTIFICATION_POLICY_VIOLATION",
    }
)
BR_ONLY_4X = frozenset({"ADD_BUSINESS_ROLE_MEMBERSHIP", "REMOVE_BUSINESS_ROLE_MEMBERSHIP"})
#: Removal kinds the simulator fulfils; other known types are valid but refused at start.
REMOVALS = {
    "REMOVE_PERMISSION_ASSIGNMENT": "perm",
    "REMOVE_ACCOUNT_PERMISSION": "perm",
    "REMOVE_TECH_ROLE_ASSIGNMENT": "role",
    "REMOVE_BUSINESS_ROLE_MEMBERSHIP": "brole",
}
#: itemStatus values `/_config submit_item_status` may force (denied or failed at submit).
SUBMIT_REFUSALS = frozenset(
    {
        "REQUEST_DENIED",
        "REQUEST_AUTO_DENIED",
        "PROXY_REQUEST_DENIED",
        "PROXY_REQUEST_AUTO_DENIED",
        "ERROR_STARTING_REQUEST",
        "ERROR_STARTING_APPROVAL",
        "ERROR_STARTING_PSODV_APPROVAL",
        "INVALID_EFFECTIVE_DATE",
        "REQUEST_EXPIRED",
    }
)
OUTCOMES = ("completed", "rejected", "failed", "cancelled")
FAIL_STATUSES = ("ERROR", "REFUSED", "TIMED_OUT")
VERIFY_RESULTS = ("VERIFIED", "NOT_VERIFIED")
APP_TYPES = {"Active Directory": "ENTERPRISE", "Exchange Online": "IDMPROV"}

DEFAULT_CONFIG: dict[str, Any] = {
    "approval_delay": 0.0,
    "fulfil_delay": 1.0,
    "verify_delay": 2.0,
    "outcome": "completed",
    "token_lifetime": 119,
    "page_size_max": MAX_SIZE,
    # Simulator-specific switches.
    "version": "4.2",
    "submit_item_status": None,
    "fail_status": "ERROR",
    "verify_result": "VERIFIED",
}


class IgFault(Exception):
    """An error the API answers with an IG Fault body."""

    def __init__(self, status: int, subcode: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.subcode = subcode
        self.text = text


def fault_body(status: int, subcode: str | None = None, text: str | None = None) -> dict[str, Any]:
    """The IG Fault envelope: `Code.Value` is Sender for client faults, Receiver for server faults."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    default_sub = {401: "RestApiUnAuthenticated", 403: "RestApiUnAuthorized", 404: "NotFound"}.get(
        status, "InternalError" if status >= 500 else "InvalidRequest"
    )
    return {
        "Fault": {
            "Code": {"Value": "Receiver" if status >= 500 else "Sender", "Subcode": {"Value": subcode or default_sub}},
            "Reason": {"Text": text or phrase},
        }
    }


# ---------------------------------------------------------------- data


@dataclass
class IgUser:
    user_id: int
    unique_id: str
    username: str
    display_name: str
    attributes: dict[str, str]
    deleted: bool = False


@dataclass
class App:
    app_id: int
    unique_id: str
    name: str


@dataclass
class Account:
    account_id: int
    unique_id: str
    app_id: int
    owner: str  # uniqueUserId
    name: str


@dataclass
class Perm:
    perm_id: int
    unique_id: str
    name: str
    display_name: str
    app_id: int
    privileged: bool = False
    dynamic: bool = False


@dataclass
class Role:
    """A technical or business role in the catalogue."""

    role_id: int
    unique_id: str
    name: str
    privileged: bool = False


@dataclass
class Holding:
    """One thing a user holds: a permission (through an account), a technical or a business role."""

    kind: str  # perm | role | brole
    item: str  # unique ID of the permission / role
    since_ms: int
    account_id: int | None = None
    instance_guid: str | None = None
    via_role: str | None = None  # technical role that associated this permission
    via_br: str | None = None  # business role that auto-grants it
    revocable: bool = True
    requested: bool = True  # brole: requested membership (False: from membership criteria)


@dataclass
class ReqItem:
    """One request item; its status is derived from the clock and the settings captured at submit."""

    item_id: int
    request_id: int
    change_item_id: int
    request_type: str
    request_item: str
    recipient: str
    requester: str
    reason: str
    request_reason: str
    submitted: float
    approval_delay: float
    fulfil_delay: float
    verify_delay: float
    outcome: str
    fail_status: str
    verify_result: str
    display_name: str
    app_display_name: str | None
    target_id: int
    instance_guid: str | None = None
    account_unique_id: str | None = None
    parent: int | None = None
    manual: bool = False  # criteria-based BR: only a manual fulfilment task, never done by itself
    retracted_at: float | None = None

    def progress(self, now: float) -> tuple[str, str | None, float]:
        """(decision, fulfilment status or None, sim time of the last change)."""
        if self.retracted_at is not None and now >= self.retracted_at:
            return "RETRACTED", None, self.retracted_at
        approved = self.submitted + self.approval_delay
        if now < approved:
            return "NO_DECISION", None, self.submitted
        if self.outcome == "rejected":
            return "DENIED", None, approved
        if self.outcome == "cancelled":
            return "CLEARED", None, approved
        if self.manual:
            return "APPROVED", "PENDING", approved
        fulfilled = approved + self.fulfil_delay
        if now < fulfilled:
            started = approved + self.fulfil_delay / 4
            return "APPROVED", ("INITIALIZED" if now < started else "IN_PROGRESS"), approved
        if self.outcome == "failed":
            return "APPROVED", self.fail_status, fulfilled
        verified = fulfilled + self.verify_delay
        if now < verified:
            return "APPROVED", "COMPLETED", fulfilled
        return "APPROVED", self.verify_result, verified

    def final(self, now: float) -> bool:
        decision, status, _ = self.progress(now)
        return decision in ("DENIED", "RETRACTED", "CLEARED") or status in ("VERIFIED", "NOT_VERIFIED", *FAIL_STATUSES)


def _jwt_like(claims: Mapping[str, Any]) -> str:
    """An opaque token shaped like the JWTs OSP issues (nobody verifies the signature)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"kid": "4", "alg": "RS256"}).encode())
    return f"{header}.{b64(json.dumps(dict(claims)).encode())}.{b64(secrets.token_bytes(32))}"


def _submissions(body: dict[str, Any]) -> list[Submission]:
    """The removals one accepted submit carried; leaver's marker `<key>:<plan item>` opens each reason."""
    out = []
    for entry in body.get("requestItems") or []:
        if not isinstance(entry, dict):
            continue
        marker = str(entry.get("reason") or "").split(" ", 1)[0]
        key, _, plan_item = marker.rpartition(":")
        item, guid = str(entry.get("requestItem")), entry.get("instanceGuid")
        out.append(
            Submission(
                time.time(),
                str(entry.get("recipient")),
                f"{item}:{guid}" if guid else item,
                key or None,
                int(plan_item) if plan_item.isdigit() else None,
            )
        )
    return out


@dataclass
class NetIqIgSimulator(SimulatorBase):
    """In-memory IG with the demo people; every public method expects `lock` to be held."""

    system: str = SYSTEM
    config: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CONFIG))
    users: dict[str, IgUser] = field(default_factory=dict)  # by uniqueUserId
    apps: dict[int, App] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)
    perms: dict[str, Perm] = field(default_factory=dict)  # by uniquePermId
    roles: dict[str, Role] = field(default_factory=dict)  # technical roles by uniquePolicyId
    broles: dict[str, Role] = field(default_factory=dict)  # business roles by uniquePolicyId
    holdings: dict[str, list[Holding]] = field(default_factory=dict)  # by uniqueUserId
    items: dict[int, ReqItem] = field(default_factory=dict)
    in_flight: list[int] = field(default_factory=list)  # items not yet settled
    access_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (principal, expiry)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # unrevoked token -> principal
    credentials: dict[str, str] = field(
        default_factory=lambda: {SERVICE_USER: SERVICE_PASSWORD, NO_RIGHTS_USER: SERVICE_PASSWORD}
    )

    endpoints = {
        "submit": ("POST", "/api/request/request"),
        "lookup": ("POST", "/api/request/requests"),
        "status": ("GET", "/api/request/requestItem/*/info"),
        "withdraw": ("PUT", "/api/request/resourceItem/retract"),
        "inventory": ("GET", "/api/request/users/*"),
        "search": ("POST", "/api/data/users/search"),
        "token": ("POST", "/osp/*"),
        "any": (None, "/api/*"),
    }

    def __post_init__(self) -> None:
        self.reset()

    # ------------------------------------------------------------ probes

    def withdrawn(self) -> list[Withdrawal]:
        return [
            Withdrawal(i.recipient, i.request_item)
            for i in self.items.values()
            if i.parent is None and i.retracted_at is not None
        ]

    def user_id(self, username: str) -> str:
        return next(u.unique_id for u in self.users.values() if u.username == username)

    def add_people(self, people: list[Any]) -> None:
        for person in people:
            self._seed_person(person)

    # ------------------------------------------------------------ seeding

    def reset(self) -> None:
        self.config = dict(DEFAULT_CONFIG)
        for store in (
            self.users,
            self.apps,
            self.accounts,
            self.perms,
            self.roles,
            self.broles,
            self.holdings,
            self.items,
            self.access_tokens,
            self.refresh_tokens,
        ):
            store.clear()
        self.in_flight.clear()
        # Distinct seeds per ID kind, as in a real IG database.
        self._hex_rng = random.Random(20240917)
        self._hex_seen: set[str] = set()
        self._ids = {
            "user": itertools.count(10001),
            "app": itertools.count(41),
            "account": itertools.count(5501),
            "perm": itertools.count(88001),
            "role": itertools.count(601),
            "brole": itertools.count(801),
            "request": itertools.count(3301),
            "item": itertools.count(9901),
            "change": itertools.count(70001),
        }
        for person in demo_people():
            self._seed_person(person)

    def _hex(self) -> str:
        while True:
            value = f"{self._hex_rng.getrandbits(128):032x}"
            if value not in self._hex_seen:
                self._hex_seen.add(value)
                return value

    def _next(self, kind: str) -> int:
        return next(self._ids[kind])

    def _app(self, name: str) -> App:
        for app in self.apps.values():
            if app.name == name:
                return app
        app = App(self._next("app"), self._hex(), name)
        self.apps[app.app_id] = app
        return app

    def _perm(self, access: DemoAccess) -> Perm:
        app = self._app(access.application)
        for perm in self.perms.values():
            if perm.display_name == access.name and perm.app_id == app.app_id:
                return perm
        name = f"cn={access.name},ou=groups,o=example" if app.name == "Active Directory" else access.name
        perm = Perm(
            self._next("perm"),
            self._hex(),
            name,
            access.name,
            app.app_id,
            access.privileged,
            dynamic=access.name.startswith("Mailbox "),
        )
        self.perms[perm.unique_id] = perm
        return perm

    def _role(self, name: str, privileged: bool = False, business: bool = False) -> Role:
        store = self.broles if business else self.roles
        for role in store.values():
            if role.name == name:
                return role
        role = Role(self._next("brole" if business else "role"), self._hex(), name, privileged)
        store[role.unique_id] = role
        return role

    def _account(self, user: IgUser, app: App) -> Account:
        for acct in self.accounts.values():
            if acct.owner == user.unique_id and acct.app_id == app.app_id:
                return acct
        acct = Account(self._next("account"), self._hex(), app.app_id, user.unique_id, user.username)
        self.accounts[acct.account_id] = acct
        return acct

    def _seed_person(self, person: DemoPerson) -> None:
        first, _, last = person.display_name.partition(" ")
        attributes = {
            "displayName": person.display_name,
            "firstName": first,
            "lastName": last,
            "userDn": person.dn,
            "userId": person.username,
            "email": person.email,
            "workforceId": person.employee_id,
            **person.attributes,
        }
        user = IgUser(self._next("user"), self._hex(), person.username, person.display_name, attributes, person.deleted)
        self.users[user.unique_id] = user
        held: list[Holding] = []
        since = self.clock.now_ms() - 86_400_000
        for access in person.access:
            if access.kind == "role":
                role = self._role(access.name, access.privileged)
                held.append(Holding("role", role.unique_id, since))
                continue
            if access.kind in ("application", "account"):
                self._account(user, self._app(access.application))
                continue
            perm = self._perm(access)
            acct = self._account(user, self._app(access.application))
            holding = Holding(
                "perm",
                perm.unique_id,
                since,
                account_id=acct.account_id,
                instance_guid=self._hex() if perm.dynamic else None,
            )
            if access.granted_by == "role":
                holding.via_role = self._role(access.via or "Unnamed role").unique_id
                holding.revocable = False
            elif access.granted_by == "birthright":
                br = self._role(BIRTHRIGHT_ROLE, business=True)
                holding.via_br = br.unique_id
                holding.revocable = False
                if not any(h.kind == "brole" and h.item == br.unique_id for h in held):
                    held.append(Holding("brole", br.unique_id, since, requested=False))
            held.append(holding)
        self.holdings[user.unique_id] = held

    # ------------------------------------------------------------ config

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `/_config` changes (all validated first) and return the current values."""
        new = dict(self.config)
        revoke = False
        for key, value in changes.items():
            if key == "revoke_tokens":
                revoke = bool(value)
            elif key in ("approval_delay", "fulfil_delay", "verify_delay"):
                new[key] = _number(key, value, minimum=0.0)
            elif key in ("token_lifetime", "page_size_max"):
                new[key] = int(_number(key, value, minimum=1.0))
            elif key in ("outcome", "version", "fail_status", "verify_result", "submit_item_status"):
                allowed: tuple[Any, ...] = {
                    "outcome": OUTCOMES,
                    "version": ("3.7", "4.2"),
                    "fail_status": FAIL_STATUSES,
                    "verify_result": VERIFY_RESULTS,
                    "submit_item_status": (None, *sorted(SUBMIT_REFUSALS)),
                }[key]
                if value not in allowed:
                    raise IgFault(400, "InvalidParameter", f"{key} must be one of {allowed}")
                new[key] = value
            else:
                raise IgFault(400, "InvalidParameter", f"unknown config key {key!r}")
        self.config = new
        if revoke:
            self.access_tokens.clear()
        return self.current_config()

    def current_config(self) -> dict[str, Any]:
        return {**self.config, "revoke_tokens": False, "unrevoked_refresh_tokens": len(self.refresh_tokens)}

    # ------------------------------------------------------------ tokens

    def issue_tokens(self, principal: str, *, refresh: bool) -> dict[str, Any]:
        lifetime = int(self.config["token_lifetime"])
        now = self.clock.now()
        access = _jwt_like({"sub": principal, "aud": CLIENT_ID, "exp": int(now + lifetime), "jti": self._hex()})
        self.access_tokens[access] = (principal, now + lifetime)
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "expires_in": lifetime}
        if refresh:
            token = _jwt_like({"sub": principal, "typ": "refresh", "jti": self._hex()})
            self.refresh_tokens[token] = principal
            body["refresh_token"] = token
        return body

    def principal(self, authorization: str | None) -> str:
        """The caller behind a bearer token; 401 Fault when missing, unknown or expired."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise IgFault(401, "RestApiUnAuthenticated", "Missing bearer token")
        entry = self.access_tokens.get(token.strip())
        if entry is None:
            raise IgFault(401, "RestApiUnAuthenticated", "Invalid or revoked access token")
        if self.clock.now() >= entry[1]:
            del self.access_tokens[token.strip()]
            raise IgFault(401, "RestApiUnAuthenticated", "Access token expired")
        return entry[0]

    # ------------------------------------------------------------ lookups

    def user(self, unique_id: str) -> IgUser:
        user = self.users.get(unique_id)
        if user is None:
            raise IgFault(404, "NotFound", f"No user with unique ID {unique_id}")
        return user

    def user_by_id(self, user_id: int) -> IgUser:
        for user in self.users.values():
            if user.user_id == user_id:
                return user
        raise IgFault(404, "NotFound", f"No user with ID {user_id}")

    def settle(self) -> None:
        """Apply every removal that reached VERIFIED and forget items that can no longer change."""
        now = self.clock.now()
        still: list[int] = []
        for item_id in self.in_flight:
            item = self.items[item_id]
            if not item.final(now):
                still.append(item_id)
                continue
            if item.progress(now)[1] == "VERIFIED":
                self._apply_removal(item)
        self.in_flight[:] = still

    def _apply_removal(self, item: ReqItem) -> None:
        kind = REMOVALS[item.request_type]
        held = self.holdings.get(item.recipient, [])
        acct_id = self._account_id(item.account_unique_id)
        held[:] = [
            h
            for h in held
            if not (
                h.kind == kind
                and h.item == item.request_item
                and (item.instance_guid is None or h.instance_guid == item.instance_guid)
                and (acct_id is None or h.account_id == acct_id)
            )
        ]

    def _account_id(self, unique_id: str | None) -> int | None:
        if unique_id is None:
            return None
        return next((a.account_id for a in self.accounts.values() if a.unique_id == unique_id), -1)

    def held(self, unique_id: str, kind: str) -> list[Holding]:
        self.settle()
        return [h for h in self.holdings.get(unique_id, []) if h.kind == kind]

    # ------------------------------------------------------------ JSON shapes

    def user_json(self, user: IgUser, keys: set[str] | None = None) -> dict[str, Any]:
        return {
            "userId": user.user_id,
            "uniqueUserId": user.unique_id,
            "link": f"/api/data/users/{user.user_id}",
            "deleted": user.deleted,
            "attributes": [
                {"attributeKey": k, "attributeValue": v}
                for k, v in user.attributes.items()
                if keys is None or k in keys
            ],
        }

    def perm_json(self, h: Holding) -> dict[str, Any]:
        perm = self.perms[h.item]
        app = self.apps[perm.app_id]
        acct = self.accounts.get(h.account_id or -1)
        role = self.roles.get(h.via_role or "")
        br = self.broles.get(h.via_br or "")
        authorized_by = (
            [
                {
                    "businessRoleId": br.role_id,
                    "uniqueId": br.unique_id,
                    "displayName": br.name,
                    "autoGrant": True,
                    "indirectAuthorization": False,
                }
            ]
            if br
            else []
        )
        body: dict[str, Any] = {
            "permId": perm.perm_id,
            "uniquePermId": perm.unique_id,
            "name": perm.name,
            "displayName": perm.display_name,
            "description": f"{perm.display_name} in {app.name}",
            "type": "group" if app.name == "Active Directory" else "permission",
            "appId": app.app_id,
            "appDisplayName": app.name,
            "appType": APP_TYPES.get(app.name, "ENTERPRISE"),
            "accountId": acct.account_id if acct else None,
            "accountName": acct.name if acct else None,
            "dynamic": perm.dynamic,
            "startDate": h.since_ms,
            "endDate": None,
            "authorizedBy": authorized_by,
            "assocBy": role.name if role else None,
            "provByPerm": None,
            "permissionAssignmentInfo": {
                "assocById": role.unique_id if role else None,
                "assocByName": role.name if role else None,
                "atype": "TECH_ROLE" if role else ("BUSINESS_ROLE" if br else "DIRECT"),
                "revocable": h.revocable,
                "startTime": h.since_ms,
                "endTime": None,
            },
            # IG has no such field: the simulator's stand-in for a catalogue risk marker [A].
            "privileged": perm.privileged,
        }
        if h.instance_guid:
            body["instanceGuid"] = h.instance_guid
        return body

    def role_json(self, h: Holding) -> dict[str, Any]:
        role = (self.broles if h.kind == "brole" else self.roles)[h.item]
        return {
            "id": role.role_id,
            "uniquePolicyId": role.unique_id,
            "name": role.name,
            "description": f"{'Business' if h.kind == 'brole' else 'Technical'} role {role.name}",
            "state": "ACTIVE",
            "assigned": h.requested,
            "authorizedBy": [],
            "privileged": role.privileged,
        }

    def request_json(self, item: ReqItem, now: float) -> dict[str, Any]:
        decision, _, _ = item.progress(now)
        recipient = self.users.get(item.recipient)
        body: dict[str, Any] = {
            "resourceRequestId": item.request_id,
            "resourceRequestItemId": item.item_id,
            "requestType": item.request_type,
            "requestItem": item.request_item,
            "displayName": item.display_name,
            "appDisplayName": item.app_display_name,
            "recipient": item.recipient,
            "recipientDisplayName": recipient.display_name if recipient else None,
            "recipientAccountUniqueId": item.account_unique_id,
            "instanceGuid": item.instance_guid,
            "decision": decision,
            "reason": item.reason,
            "effectiveDate": None,
            "requestDate": int(item.submitted * 1000),
        }
        if self.config["version"] == "3.7":
            del body["resourceRequestId"]
        return body

    def info_json(self, item: ReqItem, now: float) -> dict[str, Any]:
        decision, status, changed = item.progress(now)
        actions = []
        if status is not None:
            actions.append(
                {
                    "changeItemId": item.change_item_id,
                    "itemId": item.target_id,
                    "order": 1,
                    "action": "REMOVE",
                    "status": status,
                    "fulfillerType": "MANUAL" if item.manual else "CONNECTOR",
                    "fulfillerName": "BR administrator"
                    if item.manual
                    else f"{item.app_display_name or 'IG'} connector",
                    "comment": f"Fulfilment {status.lower()}" if status in FAIL_STATUSES else None,
                    "updateTime": int(changed * 1000),
                }
            )
        steps = []
        if item.approval_delay > 0 or item.outcome == "rejected":
            steps.append(
                {
                    "stepNumber": 1,
                    "stepType": "APPROVAL",
                    "stepApproveOrDenyStatus": decision,
                    "approvers": [{"name": "Access Approver"}],
                    "stepCompletionTime": int(changed * 1000) if decision != "NO_DECISION" else None,
                }
            )
        return {
            "requestStatus": decision,
            "itemApprovalStatus": decision,
            "requestTime": int(item.submitted * 1000),
            "lastStatusUpdateTime": int(changed * 1000),
            "requestReason": item.request_reason,
            "requestItemReason": item.reason,
            "delayed": False,
            "delayedToTime": None,
            "requesterFeedback": None,
            "approvalSteps": steps,
            "changeItemActions": actions,
        }

    # ------------------------------------------------------------ requests

    def submit(self, principal: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("requestItems"), list):
            raise IgFault(400, "InvalidRequest", "Request body must be a Request with requestItems[]")
        self.settle()
        request_id: int | None = None
        now = self.clock.now()
        statuses = []
        for raw in body["requestItems"]:
            entry = raw if isinstance(raw, dict) else {}
            status, message = self._check(entry)
            if status is None:
                if request_id is None:
                    request_id = self._next("request")
                self._start(principal, entry, str(body.get("reason") or ""), request_id, now)
                needs_approval = self.config["approval_delay"] > 0 or self.config["outcome"] == "rejected"
                status = "APPROVING" if needs_approval else "REQUESTING"
            statuses.append(
                {
                    "requestItem": entry.get("requestItem"),
                    "recipient": entry.get("recipient"),
                    "requestType": entry.get("requestType"),
                    "instanceGuid": entry.get("instanceGuid"),
                    "itemStatus": status,
                    "errMessage": message,
                }
            )
        self.record(_submissions(body))
        return {"requestItemsStatus": statuses}

    def _check(self, entry: dict[str, Any]) -> tuple[str | None, str | None]:
        """(itemStatus, errMessage) for an item refused at submit; (None, None) when accepted."""
        rtype = entry.get("requestType")
        if rtype not in REQUEST_TYPES or (self.config["version"] == "3.7" and rtype in BR_ONLY_4X):
            return "INVALID_REQUEST_TYPE", f"Invalid request type {rtype}"
        recipient, target = entry.get("recipient"), entry.get("requestItem")
        if recipient not in self.users:
            return "ERROR_STARTING_REQUEST", f"Unknown recipient {recipient}"
        if rtype not in REMOVALS:
            return "ERROR_STARTING_REQUEST", f"Request type {rtype} is not supported for {target}"
        forced = self.config["submit_item_status"]
        if forced:
            return forced, f"Simulated submit outcome {forced}"
        for item_id in self.in_flight:
            other = self.items[item_id]
            if (other.recipient, other.request_item, other.request_type) == (recipient, target, rtype):
                return "DUPLICATE_REQUEST", "A request for this item is already in progress"
        holding = self._holding(entry)
        if holding is None:
            return "ERROR_STARTING_REQUEST", f"Recipient {recipient} does not hold {target}"
        if not holding.revocable:
            return "ERROR_STARTING_REQUEST", f"Assignment of {target} is not revocable"
        return None, None

    def _holding(self, entry: dict[str, Any]) -> Holding | None:
        kind = REMOVALS[entry["requestType"]]
        guid = entry.get("instanceGuid")
        acct_unique = entry.get("recipientAccountUniqueId")
        if entry["requestType"] == "REMOVE_ACCOUNT_PERMISSION" and not acct_unique:
            return None
        acct_id = self._account_id(acct_unique)
        for h in self.holdings.get(entry["recipient"], []):
            if h.kind != kind or h.item != entry.get("requestItem"):
                continue
            if guid and h.instance_guid != guid:
                continue
            if acct_id is not None and h.account_id != acct_id:
                continue
            return h
        return None

    def _start(
        self, principal: str, entry: dict[str, Any], request_reason: str, request_id: int, now: float
    ) -> ReqItem:
        holding = self._holding(entry)
        assert holding is not None
        item = self._new_item(
            principal,
            entry["requestType"],
            holding,
            entry["recipient"],
            str(entry.get("reason") or ""),
            request_reason,
            request_id,
            now,
        )
        item.instance_guid = entry.get("instanceGuid")
        item.account_unique_id = entry.get("recipientAccountUniqueId")
        if holding.kind == "role":
            # IG removes a technical role's permissions with it, as items of the same request.
            for h in self.holdings.get(entry["recipient"], []):
                if h.kind == "perm" and h.via_role == holding.item:
                    child = self._new_item(
                        principal,
                        "REMOVE_PERMISSION_ASSIGNMENT",
                        h,
                        entry["recipient"],
                        f"Removed with technical role {item.display_name}",
                        request_reason,
                        request_id,
                        now,
                    )
                    child.parent = item.item_id
        return item

    def _new_item(
        self,
        principal: str,
        rtype: str,
        h: Holding,
        recipient: str,
        reason: str,
        request_reason: str,
        request_id: int,
        now: float,
    ) -> ReqItem:
        if h.kind == "perm":
            perm = self.perms[h.item]
            name, app, target_id = perm.display_name, self.apps[perm.app_id].name, perm.perm_id
        else:
            role = (self.broles if h.kind == "brole" else self.roles)[h.item]
            name, app, target_id = role.name, None, role.role_id
        cfg = self.config
        item = ReqItem(
            item_id=self._next("item"),
            request_id=request_id,
            change_item_id=self._next("change"),
            request_type=rtype,
            request_item=h.item,
            recipient=recipient,
            requester=principal,
            reason=reason,
            request_reason=request_reason,
            submitted=now,
            approval_delay=float(cfg["approval_delay"]),
            fulfil_delay=float(cfg["fulfil_delay"]),
            verify_delay=float(cfg["verify_delay"]),
            outcome=cfg["outcome"],
            fail_status=cfg["fail_status"],
            verify_result=cfg["verify_result"],
            display_name=name,
            app_display_name=app,
            target_id=target_id,
            instance_guid=h.instance_guid if rtype != "REMOVE_TECH_ROLE_ASSIGNMENT" else None,
            manual=h.kind == "brole" and not h.requested,
        )
        self.items[item.item_id] = item
        self.in_flight.append(item.item_id)
        return item

    def retract(self, ids: list[str]) -> dict[str, Any]:
        """Retract request items that are still undecided or unfulfilled (and their cascades)."""
        self.settle()
        now = self.clock.now()
        succeeded: list[int] = []
        failed: list[int] = []
        for raw in ids:
            item = self.items.get(int(raw)) if raw.isdigit() else None
            if item is None:
                failed.append(int(raw) if raw.isdigit() else -1)
                continue
            decision, status, _ = item.progress(now)
            if decision in ("DENIED", "RETRACTED", "CLEARED") or status not in (
                None,
                "INITIALIZED",
                "IN_PROGRESS",
                "PENDING",
                "RETRY",
            ):
                failed.append(item.item_id)
                continue
            for other in self.items.values():
                if other.item_id == item.item_id or other.parent == item.item_id:
                    other.retracted_at = now
            succeeded.append(item.item_id)
        return {
            "status": "SUCCESS" if not failed else ("PARTIAL" if succeeded else "FAILURE"),
            "reason": None if not failed else "Some items could not be retracted: already decided or fulfilled",
            "succeeded": succeeded,
            "failed": failed,
        }

    def requests_for(self, principal: str, q: Mapping[str, str]) -> list[dict[str, Any]]:
        """The `/request/requests` list: the caller's requests (all with getAll=true), filtered,
        as `{"item": ...}` placeholders that `request_json` renders for the page asked for."""
        self.settle()
        now = self.clock.now()
        get_all = _bool(q, "getAll", False)
        flags = {
            name: _bool(q, name, True)
            for name in (
                "getInProgress",
                "getCompleted",
                "getAdds",
                "getRemoves",
                "getPerms",
                "getApps",
                "getRoles",
                "getBroles",
            )
        }
        start = _int(q, "startDate", 0)
        end = _int(q, "endDate", 0)
        rows = []
        for item in self.items.values():
            if not get_all and item.requester != principal:
                continue
            submitted_ms = int(item.submitted * 1000)
            if submitted_ms < start or (end and submitted_ms > end):
                continue
            done = item.final(now)
            if (done and not flags["getCompleted"]) or (not done and not flags["getInProgress"]):
                continue
            removal = item.request_type.startswith("REMOVE_")
            if (removal and not flags["getRemoves"]) or (not removal and not flags["getAdds"]):
                continue
            kind = REMOVALS.get(item.request_type, "app")
            flag = {"perm": "getPerms", "role": "getRoles", "brole": "getBroles", "app": "getApps"}[kind]
            if not flags[flag]:
                continue
            rows.append(item)
        descending = q.get("sortOrder", "DESC").upper() != "ASC"
        rows.sort(key=lambda i: (i.submitted, i.item_id), reverse=descending)
        return [{"item": i} for i in rows]  # rendered per page only: the list may be long


# ---------------------------------------------------------------- helpers


def _number(key: str, value: Any, *, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise IgFault(400, "InvalidParameter", f"{key} must be a number") from None
    if number < minimum:
        raise IgFault(400, "InvalidParameter", f"{key} must be >= {minimum:g}")
    return number


def _int(q: Mapping[str, str], name: str, default: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise IgFault(400, "InvalidParameter", f"Parameter {name} must be a number, got {raw!r}") from None


def _bool(q: Mapping[str, str], name: str, default: bool) -> bool:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise IgFault(400, "InvalidParameter", f"Parameter {name} must be true or false, got {raw!r}")
    return raw.lower() == "true"


def _page(
    sim: NetIqIgSimulator, q: Mapping[str, str], key: str, rows: list[dict[str, Any]], default_size: int, **extra: Any
) -> dict[str, Any]:
    """One page in IG's envelope; `totalSearch` only with showCt=true, size > 1000 refused."""
    index_from, size = _int(q, "indexFrom", 0), _int(q, "size", default_size)
    if index_from < 0 or size < 0:
        raise IgFault(400, "InvalidParameter", "indexFrom and size must not be negative")
    if size > MAX_SIZE:
        raise IgFault(400, "InvalidParameter", f"Requested size {size} exceeds the maximum of {MAX_SIZE}")
    size = min(size, int(sim.config["page_size_max"]))
    page = rows[index_from : index_from + size]
    body: dict[str, Any] = {"arraySize": len(page), "indexFrom": index_from, "size": size, **extra, key: page}
    if _bool(q, "showCt", False):
        body["totalSearch"] = len(rows)
    return body


def _sorted(
    rows: list[dict[str, Any]], q: Mapping[str, str], fields: Mapping[str, str], default: str, id_key: str
) -> list[dict[str, Any]]:
    sort_by = q.get("sortBy") or default
    if sort_by not in fields:
        raise IgFault(400, "InvalidParameter", f"Cannot sort by {sort_by!r}; use one of {sorted(fields)}")
    column = fields[sort_by]
    descending = (q.get("sortOrder") or "ASC").upper() == "DESC"
    return sorted(rows, key=lambda r: (str(r.get(column) or "").lower(), r[id_key]), reverse=descending)


def _matches(value: str | None, wanted: str, how: str) -> bool:
    if value is None:
        return False
    value, wanted = value.lower(), wanted.lower()
    if how in ("EQ", "EXACT", "EQUALS"):
        return value == wanted
    if how in ("START", "STARTS_WITH", "SW"):
        return value.startswith(wanted)
    if how in ("ANY", "CONTAINS", "CO"):
        return wanted in value
    if how in ("NE", "NEQ", "NOT_EQUALS"):
        return value != wanted
    raise IgFault(400, "InvalidParameter", f"Unsupported operator {how!r}")


def _criterion_ok(user: IgUser, node: Any) -> bool:
    """Evaluate one `Criteria{operator, childCriteria}` or `UniquenessCriterion` node."""
    if isinstance(node, str):
        try:
            node = json.loads(node)
        except ValueError:
            raise IgFault(400, "InvalidRequest", "criterias entries must be JSON") from None
    if not isinstance(node, dict):
        raise IgFault(400, "InvalidRequest", "criteria must be objects")
    if "childCriteria" in node:
        results = [_criterion_ok(user, child) for child in node.get("childCriteria") or []]
        return any(results) if str(node.get("operator", "AND")).upper() == "OR" else all(results)
    key = node.get("attributeKey")
    if not key:
        raise IgFault(400, "InvalidRequest", "criterion without attributeKey")
    value = user.attributes.get(str(key))
    operator = str(node.get("operator") or "EQ").upper()
    if operator == "IN":
        return any(_matches(value, str(v), "EQ") for v in node.get("values") or [])
    return _matches(value, str(node.get("value", "")), operator)


def _search_ok(user: IgUser, body: dict[str, Any], q: Mapping[str, str]) -> bool:
    for node in body.get("criterias") or []:
        if not _criterion_ok(user, node):
            return False
    for crit in body.get("searchCriteria") or []:
        if not isinstance(crit, dict) or not crit.get("attributeKey"):
            raise IgFault(400, "InvalidRequest", "searchCriteria entries need attributeKey")
        value = user.attributes.get(str(crit["attributeKey"]))
        how = str(crit.get("attributeMatch") or "EXACT").upper()
        wanted = crit.get("attributeValues") or [crit.get("attributeValue", "")]
        if not any(_matches(value, str(w), how) for w in wanted):
            return False
    text = q.get("q")
    if text:
        how = (q.get("qMatch") or "START").upper()
        quick = ("displayName", "userId", "email", "workforceId", "userDn")
        if not any(_matches(user.attributes.get(k), text, how) for k in quick):
            return False
    return True


def _form(raw: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return urllib.parse.unquote(user), urllib.parse.unquote(password)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={"Cache-Control": "no-store"}
    )


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise IgFault(400, "InvalidRequest", "Request body is not valid JSON") from None


# ---------------------------------------------------------------- app


def create_app(sim: NetIqIgSimulator | None = None) -> FastAPI:
    """A fresh IG simulator with the demo people (`app.state.sim` exposes it to tests)."""
    sim = sim or NetIqIgSimulator()
    app = FastAPI(title="NetIQ Identity Governance simulator", version="4.2.0-sim")
    app.state.sim = sim

    @app.exception_handler(IgFault)
    async def on_fault(request: Request, exc: IgFault) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(fault_body(exc.status, exc.subcode, exc.text), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(fault_body(exc.status_code, text=str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(fault_body(400, "InvalidParameter", "Invalid request parameters"), status_code=400)

    def caller(request: Request, *, rights: bool = True) -> str:
        principal = sim.principal(request.headers.get("authorization"))
        if rights and principal == NO_RIGHTS_USER:
            path = request.scope["path"].split("/api", 1)[-1]
            raise IgFault(403, "RestApiUnAuthorized", f"Denying access to {path} for user {principal}.")
        return principal

    def q(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    # --- OSP ---------------------------------------------------------------

    async def token(request: Request) -> Response:
        form = _form(await request.body())
        basic = _basic(request.headers.get("authorization"))
        client_id, client_secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        grant = form.get("grant_type")
        with sim.lock:
            if grant == "password":
                user, password = form.get("username", ""), form.get("password", "")
                if not user or sim.credentials.get(user) != password:
                    return _oauth_error(400, "invalid_grant", "Invalid resource owner credentials")
                body = sim.issue_tokens(user, refresh=True)
            elif grant == "refresh_token":
                principal = sim.refresh_tokens.get(form.get("refresh_token", ""))
                if principal is None:
                    return _oauth_error(400, "invalid_grant", "Invalid or revoked refresh token")
                body = sim.issue_tokens(principal, refresh=False)
            else:
                return _oauth_error(400, "unsupported_grant_type", f"Grant type {grant!r} is not supported")
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    app.add_api_route(f"{OSP}/token", token, methods=["POST"], summary="OAuth2 token (password grant)")
    app.add_api_route(f"{OSP}/grant", token, methods=["POST"], summary="OAuth2 token (alternate path)")

    @app.post(f"{OSP}/revoke", summary="RFC 7009 token revocation")
    async def revoke(request: Request) -> Response:
        form = _form(await request.body())
        basic = _basic(request.headers.get("authorization"))
        client_id, client_secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        with sim.lock:
            value = form.get("token", "")
            sim.refresh_tokens.pop(value, None)
            sim.access_tokens.pop(value, None)
        return Response(status_code=200)

    # --- API ---------------------------------------------------------------

    @app.get("/api/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        with sim.lock:
            principal = caller(request, rights=False)
        return {"principal": principal, "userId": 1 if principal == SERVICE_USER else 2}

    @app.post("/api/data/users/search")
    async def search_users(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise IgFault(400, "InvalidRequest", "SearchCriteria must be an object")
        params = q(request)
        with sim.lock:
            caller(request)
            wanted = [k for part in request.query_params.getlist("listAttr") for k in part.split(",") if k]
            keys = set(wanted) or None
            hits = [
                sim.user_json(u, keys) | {"_name": u.display_name}
                for u in sim.users.values()
                if _search_ok(u, body, params)
            ]
            rows = _sorted(hits, params, {"displayName": "_name", "userId": "userId"}, "displayName", "userId")
            for row in rows:
                row.pop("_name")
            page = _page(sim, params, "users", rows, 10)
        page.pop("indexFrom")
        page.pop("size")
        return page

    @app.get("/api/data/users/{user_id}")
    def get_user(user_id: int, request: Request) -> dict[str, Any]:
        with sim.lock:
            caller(request)
            user = sim.user_by_id(user_id)
            if user.deleted and not _bool(q(request), "allowDeleted", False):
                raise IgFault(404, "NotFound", f"No user with ID {user_id}")
            return sim.user_json(user)

    @app.get("/api/data/users/{user_id}/accounts")
    def user_accounts(user_id: int, request: Request) -> dict[str, Any]:
        with sim.lock:
            caller(request)
            user = sim.user_by_id(user_id)
            held = sim.held(user.unique_id, "perm")
            rows: list[dict[str, Any]] = []
            for acct in sim.accounts.values():
                if acct.owner != user.unique_id:
                    continue
                app_ = sim.apps[acct.app_id]
                perms = [sim.perms[h.item] for h in held if h.account_id == acct.account_id]
                rows.append(
                    {
                        "accountId": acct.account_id,
                        "uniqueAcctId": acct.unique_id,
                        "name": acct.name,
                        "appId": app_.app_id,
                        "appDisplayName": app_.name,
                        "appType": APP_TYPES.get(app_.name, "ENTERPRISE"),
                        "authorizedBy": [],
                        "deleted": False,
                        "permissions": [
                            {"permId": p.perm_id, "uniquePermId": p.unique_id, "displayName": p.display_name}
                            for p in perms
                        ],
                    }
                )
            rows.sort(key=lambda r: r["accountId"])
            page = _page(sim, q(request), "accounts", rows, 10)
        page.pop("indexFrom")
        page.pop("size")
        return page

    @app.get("/api/request/users/{unique_user_id}/perms")
    def user_perms(unique_user_id: str, request: Request) -> dict[str, Any]:
        params = q(request)
        with sim.lock:
            caller(request)
            user = sim.user(unique_user_id)
            rows = [sim.perm_json(h) for h in sim.held(user.unique_id, "perm")]
            if params.get("q"):
                how = (params.get("qMatch") or "START").upper()
                rows = [r for r in rows if _matches(r["displayName"], params["q"], how)]
            rows = _sorted(
                rows,
                params,
                {"permname": "displayName", "appname": "appDisplayName", "permdesc": "description"},
                "permname",
                "permId",
            )
            return _page(sim, params, "permissions", rows, 0)

    def role_list(request: Request, unique_user_id: str, kind: str, paged: bool) -> dict[str, Any]:
        params = q(request)
        with sim.lock:
            caller(request)
            if kind == "brole" and sim.config["version"] == "3.7":
                raise IgFault(404, "NotFound", "Business role requests need Identity Governance 4.0 or later")
            user = sim.user(unique_user_id)
            held = sim.held(user.unique_id, kind)
            if paged and kind == "brole":
                held = [h for h in held if h.requested]
            rows = [sim.role_json(h) for h in held]
            if not paged:
                return {"arraySize": len(rows), "roles": rows}
            rows = _sorted(rows, params, {"name": "name", "description": "description"}, "name", "id")
            return _page(sim, params, "roles", rows, 0)

    @app.get("/api/request/users/{unique_user_id}/roles")
    def user_roles(unique_user_id: str, request: Request) -> dict[str, Any]:
        return role_list(request, unique_user_id, "role", paged=True)

    @app.get("/api/request/users/{unique_user_id}/broles")
    def user_requested_broles(unique_user_id: str, request: Request) -> dict[str, Any]:
        return role_list(request, unique_user_id, "brole", paged=True)

    @app.get("/api/request/user/{unique_user_id}/broles")
    def user_all_broles(unique_user_id: str, request: Request) -> dict[str, Any]:
        return role_list(request, unique_user_id, "brole", paged=False)

    @app.post("/api/request/request")
    async def submit_request(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        with sim.lock:
            principal = caller(request)
            return sim.submit(principal, body)

    @app.post("/api/request/requests")
    async def list_requests(request: Request) -> dict[str, Any]:
        await _json_body(request)
        params = q(request)
        with sim.lock:
            principal = caller(request)
            rows = sim.requests_for(principal, params)
            page = _page(sim, params, "requests", rows, 0)
            now = sim.clock.now()
            page["requests"] = [sim.request_json(row["item"], now) for row in page["requests"]]
        page.pop("indexFrom")
        page.pop("size")
        return page

    @app.get("/api/request/requestItem/{item_id}/info")
    def item_info(item_id: int, request: Request) -> dict[str, Any]:
        with sim.lock:
            caller(request)
            sim.settle()
            item = sim.items.get(item_id)
            if item is None:
                raise IgFault(404, "NotFound", f"No request item with ID {item_id}")
            return sim.info_json(item, sim.clock.now())

    @app.put("/api/request/resourceItem/retract")
    def retract(request: Request) -> dict[str, Any]:
        ids = [i for raw in request.query_params.getlist("id") for i in raw.split(",") if i]
        if not ids:
            raise IgFault(400, "InvalidParameter", "Parameter id is required")
        _bool(q(request), "retractPerms", False)
        with sim.lock:
            caller(request)
            return sim.retract(ids)

    # --- test helpers ----------------------------------------------------------

    @app.get("/_config", include_in_schema=False)
    def get_config() -> dict[str, Any]:
        with sim.lock:
            return sim.current_config()

    @app.get("/_state/users/{username}/access", include_in_schema=False)
    def state_access(username: str) -> list[dict[str, Any]]:
        """What a user still holds (after every removal that reached VERIFIED)."""
        with sim.lock:
            user = next((u for u in sim.users.values() if u.username == username), None)
            if user is None:
                raise IgFault(404, "NotFound", f"No user {username}")
            sim.settle()
            out = []
            for h in sim.holdings.get(user.unique_id, []):
                if h.kind == "perm":
                    perm = sim.perms[h.item]
                    name, app_name = perm.display_name, sim.apps[perm.app_id].name
                else:
                    name, app_name = (sim.broles if h.kind == "brole" else sim.roles)[h.item].name, None
                out.append(
                    {
                        "kind": h.kind,
                        "uniqueId": h.item,
                        "name": name,
                        "application": app_name,
                        "revocable": h.revocable,
                    }
                )
            return out

    @app.get("/_state/requests", include_in_schema=False)
    def state_requests() -> list[dict[str, Any]]:
        with sim.lock:
            now = sim.clock.now()
            return [
                sim.request_json(i, now) | {"requester": i.requester, "status": i.progress(now)[1]}
                for i in sim.items.values()
            ]

    install_simulator_plumbing(app, sim, fault_body)
    return app


def demo_target(base_url: str, name: str = SYSTEM) -> TargetSettings:
    """A target for the real adapter against this simulator served at `base_url`."""
    base = base_url.rstrip("/")
    return TargetSettings(
        name=name,
        system=SYSTEM,
        base_url=base,
        token_url=f"{base}{OSP}/token",
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        username=SERVICE_USER,
        password=SecretStr(SERVICE_PASSWORD),
    )


SPEC = SimulatorSpec(
    system=SYSTEM,
    create_app=lambda: create_app(),
    demo_target=demo_target,
    test_config={"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.3},
    small_pages=CONTRACT_SMALL_PAGES,
)
