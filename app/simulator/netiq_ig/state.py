"""The simulated IG's state machine: OSP tokens, request submission (with IG's per-item refusals),
request items moving through their statuses on the clock, removals applied once VERIFIED,
retraction, and the request list; plus the probes tests read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.simulator.base import LogEntry, Simulator, Submission, Withdrawal
from app.simulator.demo_users import DemoPerson, demo_people
from app.simulator.netiq_ig.catalog import Catalog
from app.simulator.netiq_ig.model import Holding, NetIqConfig, ReqItem
from app.simulator.netiq_ig.query import matches
from app.simulator.netiq_ig.wire import (
    BR_ONLY_4X,
    CLIENT_ID,
    NO_RIGHTS_USER,
    REMOVALS,
    REQUEST_TYPES,
    SERVICE_PASSWORD,
    SERVICE_USER,
    SYSTEM,
    IgFault,
    bool_arg,
    int_arg,
    jwt_like,
    submissions,
)

#: Fulfilment statuses from which a request item can still be retracted.
_RETRACTABLE = (None, "INITIALIZED", "IN_PROGRESS", "PENDING", "RETRY")
#: The list's flags and their defaults, as IG's API has them: no role flags, getCompleted false.
_LIST_FLAGS = {
    "getInProgress": True,
    "getCompleted": False,
    "getAdds": True,
    "getRemoves": True,
    "getPerms": True,
    "getApps": True,
}


class NetIqIgSimulator(Simulator):
    """In-memory IG with the demo people; every public method expects `lock` to be held."""

    config: NetIqConfig
    config_error_status = 400
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

    def __init__(self) -> None:
        super().__init__(SYSTEM)
        #: OSP resource owners and their passwords (kept across `/_reset`).
        self.credentials = {SERVICE_USER: SERVICE_PASSWORD, NO_RIGHTS_USER: SERVICE_PASSWORD}
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (principal, expiry)
        self.refresh_tokens: dict[str, str] = {}  # unrevoked token -> principal
        self.reset()

    def reset(self) -> None:
        self.config = NetIqConfig()
        self.catalog = Catalog()
        self.items: dict[int, ReqItem] = {}
        self.in_flight: list[int] = []  # items not yet settled
        self.access_tokens.clear()
        self.refresh_tokens.clear()
        self.add_people(demo_people())

    def add_people(self, people: list[DemoPerson]) -> None:
        for person in people:
            self.catalog.seed(person, self.clock.now_ms() - 86_400_000)

    def current_config(self) -> dict[str, Any]:
        return {**self.config.model_dump(), "unrevoked_refresh_tokens": len(self.refresh_tokens)}

    # ------------------------------------------------------------ probes

    def submitted(self, entry: LogEntry) -> list[Submission]:
        return submissions(entry)

    def withdrawn(self) -> list[Withdrawal]:
        return [
            Withdrawal(i.recipient, i.request_item)
            for i in self.items.values()
            if i.parent is None and i.retracted_at is not None
        ]

    def user_id(self, username: str) -> str:
        user = self.catalog.user_named(username)
        if user is None:
            raise KeyError(username)
        return user.unique_id

    # ------------------------------------------------------------ tokens

    def revoke_tokens(self) -> None:
        self.access_tokens.clear()

    def issue_tokens(self, principal: str, *, refresh: bool) -> dict[str, Any]:
        lifetime = self.config.token_lifetime
        now = self.clock.now()
        access = jwt_like({"sub": principal, "aud": CLIENT_ID, "exp": int(now + lifetime), "jti": self.catalog.hex()})
        self.access_tokens[access] = (principal, now + lifetime)
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "expires_in": lifetime}
        if refresh:
            token = jwt_like({"sub": principal, "typ": "refresh", "jti": self.catalog.hex()})
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

    # ------------------------------------------------------------ the clock's effects

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
        held = self.catalog.holdings.get(item.recipient, [])
        acct_id = self.catalog.account_id(item.account_unique_id)
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

    def held(self, unique_id: str, kind: str) -> list[Holding]:
        self.settle()
        return [h for h in self.catalog.holdings.get(unique_id, []) if h.kind == kind]

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
                    request_id = self.catalog.next("request")
                self._start(principal, entry, str(body.get("reason") or ""), request_id, now)
                needs_approval = self.config.approval_delay > 0 or self.config.outcome == "rejected"
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
        return {"requestItemsStatus": statuses}

    def _check(self, entry: dict[str, Any]) -> tuple[str | None, str | None]:
        """(itemStatus, errMessage) for an item refused at submit; (None, None) when accepted."""
        rtype = entry.get("requestType")
        if rtype not in REQUEST_TYPES or (self.config.version == "3.7" and rtype in BR_ONLY_4X):
            return "INVALID_REQUEST_TYPE", f"Invalid request type {rtype}"
        recipient, target = entry.get("recipient"), entry.get("requestItem")
        if recipient not in self.catalog.users:
            return "ERROR_STARTING_REQUEST", f"Unknown recipient {recipient}"
        if rtype not in REMOVALS:
            return "ERROR_STARTING_REQUEST", f"Request type {rtype} is not supported for {target}"
        forced = self.config.submit_item_status
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
        acct_id = self.catalog.account_id(acct_unique)
        for h in self.catalog.holdings.get(entry["recipient"], []):
            if h.kind != kind or h.item != entry.get("requestItem"):
                continue
            if guid and h.instance_guid != guid:
                continue
            if acct_id is not None and h.account_id != acct_id:
                continue
            return h
        return None

    def _start(self, principal: str, entry: dict[str, Any], request_reason: str, request_id: int, now: float) -> None:
        holding = self._holding(entry)
        assert holding is not None
        recipient, reason = entry["recipient"], str(entry.get("reason") or "")
        item = self._new_item(
            principal, entry["requestType"], holding, recipient, reason, request_reason, request_id, now
        )
        item.instance_guid = entry.get("instanceGuid")
        item.account_unique_id = entry.get("recipientAccountUniqueId")
        if holding.kind == "role":
            # IG removes a technical role's permissions with it, as items of the same request.
            for h in self.catalog.holdings.get(recipient, []):
                if h.kind == "perm" and h.via_role == holding.item:
                    why = f"Removed with technical role {item.display_name}"
                    child = self._new_item(
                        principal, "REMOVE_PERMISSION_ASSIGNMENT", h, recipient, why, request_reason, request_id, now
                    )
                    child.parent = item.item_id

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
        cat, cfg = self.catalog, self.config
        if h.kind == "perm":
            perm = cat.perms[h.item]
            name, app, target_id = perm.display_name, cat.apps[perm.app_id].name, perm.perm_id
        else:
            role = cat.role_of(h)
            name, app, target_id = role.name, None, role.role_id
        item = ReqItem(
            item_id=cat.next("item"),
            request_id=request_id,
            change_item_id=cat.next("change"),
            request_type=rtype,
            request_item=h.item,
            recipient=recipient,
            requester=principal,
            reason=reason,
            request_reason=request_reason,
            submitted=now,
            approval_delay=cfg.approval_delay,
            fulfil_delay=cfg.fulfil_delay,
            verify_delay=cfg.verify_delay,
            outcome=cfg.outcome,
            fail_status=cfg.fail_status,
            verify_result=cfg.verify_result,
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
            if decision in ("DENIED", "RETRACTED", "CLEARED") or status not in _RETRACTABLE:
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

    def requests_for(self, principal: str, q: Mapping[str, str]) -> list[ReqItem]:
        """The `/request/requests` list: the caller's requests (all with getAll=true), filtered and
        sorted; rendered per page only, as the list may be long."""
        self.settle()
        now = self.clock.now()
        get_all = bool_arg(q, "getAll", False)
        flags = {name: bool_arg(q, name, default) for name, default in _LIST_FLAGS.items()}
        start = int_arg(q, "startDate", 0)
        end = int_arg(q, "endDate", 0)
        text, how = q.get("q"), (q.get("qMatch") or "START").upper()
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
            if kind in ("role", "brole"):
                if not self.config.role_items_in_lookup:
                    continue  # the switch: IG may not list role items here at all
            elif not flags["getPerms" if kind == "perm" else "getApps"]:
                continue
            if text and not self._named(item, text, how):
                continue
            rows.append(item)
        descending = (q.get("sortOrder") or "ASC").upper() == "DESC"
        rows.sort(key=lambda i: (i.submitted, i.item_id), reverse=descending)
        return rows

    def _named(self, item: ReqItem, text: str, how: str) -> bool:
        """`q`: the application, permission or recipient name matches."""
        recipient = self.catalog.users.get(item.recipient)
        names = (item.display_name, item.app_display_name, recipient.display_name if recipient else None)
        return any(matches(name, text, how) for name in names)
