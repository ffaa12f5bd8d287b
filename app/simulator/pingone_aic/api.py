"""The simulated tenant's API, one method per call leaver makes (contract §3 to §8): managed-user
queries, the account search, user grants, publishing remove requests, reading, searching and
acting on requests. Each takes the parsed call and answers `(status, body)` or raises
`GovernanceError` (IGA) / `CrestError` (IDM); `app` puts them on HTTP."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from app.simulator.pingone_aic.config import SimConfig
from app.simulator.pingone_aic.directory import Directory, hex128
from app.simulator.pingone_aic.filters import FilterError, crest_filter, project, target_filter
from app.simulator.pingone_aic.requests import COMMON_FIELDS, REMOVE_TYPES, GovernanceError, GovRequest, Plan, Requests
from app.simulator.pingone_aic.wire import (
    account_doc,
    account_grant,
    crest_error,
    entitlement_grant,
    managed_user,
    request_doc,
    role_grant,
)

Answer = tuple[int, Any]
Query = Mapping[str, str]
REALMS = ("alpha", "bravo")
DEMO_REALM = "alpha"
GRANT_TYPES = ("entitlement", "account", "role")
PRIORITIES = (None, "low", "medium", "high")
ACTIONS = ("cancel", "approve", "reject", "comment")


class CrestError(GovernanceError):
    """An IDM answer: `{"code", "reason", "message"}`."""

    def body(self) -> dict[str, Any]:
        return crest_error(self.status, self.message)


def _int(query: Query, name: str, default: int, error: type[GovernanceError] = GovernanceError) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        raise error(400, f"{name} must be an integer") from None


def _object(body: Any, what: str = "the request body") -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise GovernanceError(400, f"Invalid request: {what} must be a JSON object")
    return body


class Tenant:
    """The tenant behind the routes. Callers hold the simulator lock."""

    def __init__(
        self, directory: Directory, config: Callable[[], SimConfig], submitted: Callable[[GovRequest], None]
    ) -> None:
        self.directory = directory
        self.requests = Requests(directory)
        self.config = config
        self.submitted = submitted

    # ---- paging

    def _page_size(self, query: Query, default: int, error: type[GovernanceError]) -> int:
        size, cap = _int(query, "_pageSize", default, error), self.config().page_size_max
        if not 1 <= size <= cap:
            raise error(400, f"_pageSize must be between 1 and {cap}")
        return size

    def _iga_page(self, rows: list[dict[str, Any]], query: Query) -> dict[str, Any]:
        """IGA's offset paging and envelope (§8)."""
        size, offset = self._page_size(query, 10, GovernanceError), _int(query, "_pagedResultsOffset", 0)
        if offset < 0:
            raise GovernanceError(400, "_pagedResultsOffset must not be negative")
        page = rows[offset : offset + size]
        last = page[-1] if page else None
        after = [str(last.get("id") or last.get("compositeId") or "")] if last else []
        total = 0 if self.config().zero_total_count else len(rows)
        return {"result": page, "searchAfterKey": after, "totalCount": total, "resultCount": len(page)}

    # ---- IDM: managed users

    def _realm_people(self, managed: str) -> list[dict[str, Any]]:
        realm, _, kind = managed.partition("_")
        if kind != "user" or realm not in REALMS:
            raise CrestError(404, f"Managed object {managed} not found")
        return [managed_user(p) for p in self.directory.people.values()] if realm == DEMO_REALM else []

    def query_users(self, managed: str, query: Query) -> Answer:
        people = self._realm_people(managed)
        if "_queryFilter" not in query:
            raise CrestError(400, "Query request needs a _queryFilter, _queryId or _queryExpression")
        try:
            wanted = crest_filter(query["_queryFilter"])
        except FilterError as exc:
            raise CrestError(400, str(exc)) from None
        rows = [p for p in people if wanted(p)]
        size = self._page_size(query, len(rows) or 1, CrestError) if "_pageSize" in query else None
        cookie = query.get("_pagedResultsCookie")
        try:
            offset = int(base64.urlsafe_b64decode(cookie).decode()) if cookie else _int(query, "_pagedResultsOffset", 0)
        except ValueError:
            raise CrestError(400, "Invalid _pagedResultsCookie") from None
        page = rows[offset : offset + size] if size else rows[offset:]
        more = size is not None and offset + size < len(rows)
        fields = ",".join(["_id", "_rev", *(f.strip().lstrip("/") for f in query.get("_fields", "").split(","))])
        exact = query.get("_totalPagedResultsPolicy", "NONE").upper() == "EXACT"
        return 200, {
            "result": [project(p, fields if query.get("_fields") else None) for p in page],
            "resultCount": len(page),
            "pagedResultsCookie": base64.urlsafe_b64encode(str(offset + len(page)).encode()).decode() if more else None,
            "totalPagedResultsPolicy": "EXACT" if exact else "NONE",
            "totalPagedResults": len(rows) if exact else -1,
            "remainingPagedResults": -1,
        }

    def read_user(self, managed: str, user_id: str) -> Answer:
        found = [p for p in self._realm_people(managed) if p["_id"] == user_id]
        if not found:
            raise CrestError(404, f"Object {user_id} not found in managed/{managed}")
        return 200, found[0]

    # ---- IGA: accounts and grants

    def account_search(self, query: Query, body: Any) -> Answer:
        if query.get("_action") != "search":
            raise GovernanceError(400, "Invalid action: the available value is search")
        d = self.directory
        docs = [
            account_doc(d, d.people[g.user_id], d.apps[g.target])
            for g in d.grants.values()
            if g.kind == "account" and g.user_id in d.people
        ]
        return 200, self._iga_page(self._filtered(docs, body), query)

    def _filtered(self, docs: list[dict[str, Any]], body: Any, ignored: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        tree = _object(body or {}).get("targetFilter")
        if tree is None:
            return docs
        try:
            wanted = target_filter(tree, ignored)
        except FilterError as exc:
            raise GovernanceError(400, f"Invalid targetFilter: {exc}") from None
        return [d for d in docs if wanted(d)]

    def grants(self, user_id: str, query: Query, now: float) -> Answer:
        person = self.directory.people.get(user_id)
        if person is None:
            raise GovernanceError(404, f"User {user_id} not found")
        kind = query.get("grantType")
        if kind is not None and kind not in GRANT_TYPES:
            raise GovernanceError(400, f"grantType must be one of {', '.join(GRANT_TYPES)}")
        render = {"entitlement": entitlement_grant, "account": account_grant, "role": role_grant}
        docs = [
            render[g.kind](g, person, self.directory, now)
            for g in sorted(self.directory.held(user_id), key=lambda g: (g.kind, g.relationship_id))
            if kind in (None, g.kind)
        ]
        fields = query.get("_fields")
        # The grant's assignment is returned only when `_fields` asks for it (what the vendor UI does, §4).
        docs = [project(d, fields) if fields else {k: v for k, v in d.items() if k != "assignment"} for d in docs]
        return 200, self._iga_page(docs, query)

    # ---- IGA: requests

    def publish(self, kind: str, query: Query, body: Any, now: float) -> Answer:
        """`POST /requests/{requestTypeId}?_action=publish` for the three remove types (§5, §9.4)."""
        if kind not in REMOVE_TYPES:
            raise GovernanceError(404, "Request Type Id doesn't exist")
        if query.get("_action") not in (None, "publish"):
            raise GovernanceError(400, "Invalid action")
        config, (id_field, _, _) = self.config(), REMOVE_TYPES[kind]
        common = _object(_object(body).get("common"), "common")
        allowed = COMMON_FIELDS | {id_field} | ({"accountId"} if config.accept_account_id else set())
        unknown = sorted(set(common) - allowed)
        if unknown:
            raise GovernanceError(400, f"Invalid request: property {unknown[0]} is not defined in request type {kind}")
        for name in ("userId", id_field):
            if not isinstance(common.get(name), str) or not common[name]:
                raise GovernanceError(400, f"Invalid request: common.{name} is required")
        user_id, item_id = str(common["userId"]), str(common[id_field])
        if user_id not in self.directory.people:
            raise GovernanceError(400, f"Invalid request: user {user_id} not found")
        d = self.directory
        known = {"entitlementId": set(d.entitlements), "roleId": set(d.roles), "applicationId": set(d.apps)}
        if item_id not in known[id_field]:
            raise GovernanceError(400, f"Invalid request: {id_field} {item_id} not found")
        justification = common.get("justification")
        if justification is not None and not isinstance(justification, str):
            raise GovernanceError(400, "Invalid request: justification must be a string")
        if config.require_justification and not (justification or "").strip():
            raise GovernanceError(400, "Justification is required")
        if common.get("priority") not in PRIORITIES:
            raise GovernanceError(400, "Invalid request: priority must be one of low, medium, high")
        context = common.get("context")
        if context is not None and not (isinstance(context, Mapping) and isinstance(context.get("type"), str)):
            raise GovernanceError(400, "Invalid request: context must be an object with a type")
        end_date = _date(common.get("endDate"), "endDate")
        draft = common.get("isDraft") is True
        duplicate = None if draft else self.requests.open_duplicate(kind, user_id, item_id, now)
        if duplicate is not None:
            return self._duplicate(duplicate, user_id, config)
        auto = config.admin_context_allowed and (context or {}).get("type") in ("admin", "certification")
        outcome = config.item_outcomes.get(item_id, config.outcome)
        plan = Plan(outcome, now + config.approval_delay, config.fulfil_delay, config.verify_delay, auto)
        req = GovRequest(
            id=str(uuid.uuid4()),
            type=kind,
            user_id=user_id,
            item_id=item_id,
            common={**common, "isDraft": draft},
            created=now,
            plan=plan,
            draft=draft,
            end_date=end_date,
            modified=now,
            instance=2500 + len(self.requests.all),
        )
        self.requests.all.append(req)
        if not draft:
            self.submitted(req)
        return 200, request_doc(req, self.directory, now)

    def _duplicate(self, existing: GovRequest, user_id: str, config: SimConfig) -> Answer:
        message = "Duplicate request already exists."
        if config.duplicate_as == "http400":
            raise GovernanceError(400, message, requestId=existing.id)
        error = {
            "error": "DUPLICATE",
            "message": message,
            "user": user_id,
            "requestId": existing.id,
            "catalogId": hex128("catalog", existing.grant, existing.item_id),
        }
        return 200, {"errors": [error]}

    def get_request(self, request_id: str, now: float) -> Answer:
        return 200, request_doc(self.requests.get(request_id), self.directory, now)

    def act(self, request_id: str, query: Query, body: Any, now: float) -> Answer:
        action = query.get("_action")
        if action not in ACTIONS:
            raise GovernanceError(400, "Invalid action")
        req = self.requests.get(request_id)
        comment = _object(body or {}).get("comment")
        self.requests.act(req, action, str(comment or ""), now)
        return 200, request_doc(req, self.directory, now)

    def search_requests(self, query: Query, body: Any, now: float) -> Answer:
        """The admin request search (`POST /requests/search?_action=search`, §7)."""
        if query.get("_action") != "search":
            raise GovernanceError(400, "Invalid action: the available value is search")
        ignored = () if self.config().external_id_searchable else ("request.common.externalRequestId",)
        docs = [request_doc(r, self.directory, now) for r in self.requests.all]
        return 200, self._iga_page(self._filtered(docs, body, ignored), query)


def _date(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise GovernanceError(400, f"Invalid request: {name} must be an ISO 8601 date") from None
