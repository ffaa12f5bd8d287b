"""Adapter for NetIQ / OpenText Identity Governance 3.6 - 4.x (contract: backends/netiq-ig.md).

IG answers a removal request without any ID, so every submission writes a marker
(`<key>:<plan item id>`) into the request and item `reason`, then finds its own items again through
`POST /api/request/requests` (§7). The same lookup makes a lost or uncertain submit recoverable.
Every value the contract marks as assumed [A] is a field of `NetIqIgOptions`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from app.domain import (
    AccessItem,
    GrantSource,
    IgaStatus,
    IgaUser,
    RemovalRequest,
    RequestRef,
    RequestState,
    UserIdentifiers,
)
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.http import HttpPolicy, IgaHttp, OAuth2Token, json_object
from app.settings import TargetSettings

SYSTEM = "netiq-ig"
OSP_TOKEN_PATH = "/osp/a/idm/auth/oauth2/token"


class NetIqIgOptions(BaseModel):
    """Per-target knobs for IG, read from `target.options`. Each default is the contract's
    assumption [A]; change one when a live IG (or its identity-collector mapping) differs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: IG attribute keys the user search filters on, per event identifier (§3).
    attr_dn: str = "userDn"
    attr_username: str = "userId"
    attr_email: str = "email"
    attr_employee_id: str = "workforceId"
    #: Body of `POST /data/users/search`: `criterias` as JSON strings (as public Java code sends),
    #: `criterias_objects`, `searchCriteria`, or `q` (quick search on `q=<value>`, empty body).
    search_body: Literal["criterias", "criterias_objects", "searchCriteria", "q"] = "criterias"
    #: Where the user's unique ID is read: these top-level fields in order, then an attribute of that key.
    unique_id_fields: tuple[str, ...] = ("uniqueUserId", "userUniqueId")
    #: Items per removal request (IG documents no limit; one recipient per request).
    batch_size: int = Field(25, ge=1, le=500)
    #: Longest `reason` sent; the marker at its start is never cut.
    reason_max_length: int = Field(255, ge=40)
    #: Text after the marker in the request-level reason.
    request_reason: str = "Leaver: removal of a departed user's access"
    #: requestType per item kind (§5 pairing).
    request_type_permission: str = "REMOVE_PERMISSION_ASSIGNMENT"
    request_type_account_permission: str = "REMOVE_ACCOUNT_PERMISSION"
    request_type_tech_role: str = "REMOVE_TECH_ROLE_ASSIGNMENT"
    request_type_business_role: str = "REMOVE_BUSINESS_ROLE_MEMBERSHIP"
    #: Remove permissions held through an account as REMOVE_ACCOUNT_PERMISSION with
    #: `recipientAccountUniqueId` (costs one accounts listing per inventory) instead of the plain type.
    account_scoped_removal: bool = False
    #: `size` of every paged call (IG's request APIs default it to 0, so it is always sent).
    page_size: int = Field(100, ge=1, le=1000)
    #: IG has no privileged flag: a permission/role field that marks one (truthy), and name globs.
    privileged_field: str | None = "privileged"
    privileged_names: tuple[str, ...] = ()
    #: IG version: "4.x" adds requested business roles to the inventory.
    version: str = "4.2"
    #: How far before a submit the lookup's `startDate` reaches (clock skew), and how far back
    #: `find_existing` and the duplicate adoption look.
    lookup_window_seconds: float = Field(600.0, ge=0)
    recovery_window_seconds: float = Field(7 * 86400.0, ge=0)
    #: Add `getAll=true` to the lookup (needs ManageRequests scope ALL) to see other requesters' items.
    lookup_get_all: bool = False
    lookup_max_pages: int = Field(20, ge=1)
    #: After a submit, how often and how far apart to look for items IG has not listed yet.
    lookup_attempts: int = Field(3, ge=1)
    lookup_retry_seconds: float = Field(1.0, ge=0)
    #: OSP: client credentials in the form body or as HTTP Basic; revoke URL (default: token URL's
    #: last segment replaced by `revoke`); renew this long before expiry; token call timeout.
    client_auth: Literal["form", "basic"] = "form"
    revoke_url: str | None = None
    token_renew_seconds: float = Field(20.0, ge=0)
    token_timeout_seconds: float = Field(10.0, gt=0)
    #: `retractPerms` sent with a retract.
    retract_perms: bool = False


_PENDING = (
    "REQUESTING APPROVING APPROVING_PSODV NO_DECISION WAITING_PSODV_APPROVAL TENTATIVE_APPROVED TENTATIVE_DENIED "
    "TENTATIVE_RETRACTED APPROVED INITIALIZED PENDING IN_PROGRESS RETRY ADD REMOVE REASSIGNED"
)
_COMPLETED = "COMPLETED FULFILLED VERIFIED VERIFICATION_IGNORED SKIPPED"
_REJECTED = "DENIED REFUSED REQUEST_DENIED REQUEST_AUTO_DENIED PROXY_REQUEST_DENIED PROXY_REQUEST_AUTO_DENIED"
_CANCELLED = "RETRACTED CLEARED REQUEST_EXPIRED"
_FAILED = (
    "ERROR_STARTING_REQUEST ERROR_STARTING_APPROVAL ERROR_STARTING_PSODV_APPROVAL INVALID_REQUEST_TYPE "
    "INVALID_EFFECTIVE_DATE ERROR TIMED_OUT NOT_VERIFIED VERIFICATION_TIMEOUT"
)
#: Contract §6: every IG decision, itemStatus, fulfilment status and action, as a leaver status.
STATUS_MAP: dict[str, IgaStatus] = {
    value: status
    for words, status in (
        (_PENDING, IgaStatus.PENDING),
        (_COMPLETED, IgaStatus.COMPLETED),
        (_REJECTED, IgaStatus.REJECTED),
        (_CANCELLED, IgaStatus.CANCELLED),
        (_FAILED, IgaStatus.FAILED),
    )
    for value in words.split()
}
#: Submit answers meaning "an earlier request for this item is in flight": adopt it.
DUPLICATES = frozenset({"DUPLICATE_REQUEST", "DUP_EXPIRATION_REQUEST"})
ACCEPTED = frozenset({"REQUESTING", "APPROVING", "APPROVING_PSODV"})


def map_status(value: str | None) -> IgaStatus | None:
    """Leaver status of one IG value; None for duplicates and unknown values."""
    return STATUS_MAP.get(value or "")


def item_state(info: Mapping[str, Any]) -> RequestState:
    """State of a request item from its `/info` (§6): the decision, and once APPROVED the last
    change-item action (highest `order`, then latest `updateTime`)."""
    decision = str(info.get("requestStatus") or info.get("itemApprovalStatus") or "")
    if decision == "APPROVED":
        actions = [a for a in info.get("changeItemActions") or [] if isinstance(a, dict)]
        if not actions:
            return RequestState(IgaStatus.PENDING, decision)
        last = max(actions, key=lambda a: (a.get("order") or 0, a.get("updateTime") or 0))
        for value in (last.get("status"), last.get("action")):
            status = map_status(value)
            if status is not None:
                message = last.get("comment") if status in (IgaStatus.FAILED, IgaStatus.REJECTED) else None
                return RequestState(status, str(value), message)
        return RequestState(IgaStatus.PENDING, str(last.get("status") or decision), "unrecognised IG status")
    status = map_status(decision)
    if status is None:
        return RequestState(IgaStatus.PENDING, decision or "UNKNOWN", "unrecognised IG status")
    return RequestState(status, decision, info.get("requesterFeedback") or None)


def fault_text(resp: httpx.Response) -> str:
    """`Fault.Reason.Text` (with its subcode) of an IG error, else the OAuth error or the raw text."""
    body = json_object(resp)
    if body is None:
        return resp.text[:300]
    fault = body.get("Fault")
    if isinstance(fault, dict):
        reason = (fault.get("Reason") or {}).get("Text") or ""
        subcode = ((fault.get("Code") or {}).get("Subcode") or {}).get("Value")
        return f"{subcode}: {reason}" if subcode else str(reason)
    return str(body.get("error_description") or body.get("error") or resp.text[:300])


def _marker(key: str, request: RemovalRequest) -> str:
    return f"{key}:{request.plan_item_id}"


def _has_marker(reason: Any, marker: str) -> bool:
    return isinstance(reason, str) and re.search(rf"(?<!\S){re.escape(marker)}(?!\S)", reason) is not None


class NetIqIgClient:
    """`IgaClient` for one IG target."""

    system = SYSTEM

    def __init__(self, target: TargetSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.target = target
        self.options = NetIqIgOptions.model_validate(target.options)
        missing = [n for n in ("client_id", "client_secret", "username", "password") if not getattr(target, n)]
        if missing:
            raise ValueError(f"target {target.name!r}: netiq-ig needs {', '.join(missing)}")
        assert target.client_id and target.client_secret and target.username and target.password
        o = self.options
        token_url = target.token_url or f"{target.base_url}{OSP_TOKEN_PATH}"
        client = (target.client_id, target.client_secret.get_secret_value())
        form = {"grant_type": "password", "username": target.username, "password": target.password.get_secret_value()}
        revoke_form: dict[str, str] = {}
        if o.client_auth == "form":
            form |= {"client_id": client[0], "client_secret": client[1]}
            revoke_form = {"client_id": client[0], "client_secret": client[1]}
        auth = OAuth2Token(
            token_url,
            form,
            early=o.token_renew_seconds,
            basic_client=client if o.client_auth == "basic" else None,
            revoke_url=o.revoke_url or token_url.rstrip("/").rsplit("/", 1)[0] + "/revoke",
            revoke_form=revoke_form,
            timeout=o.token_timeout_seconds,
        )
        h = target.http
        policy = HttpPolicy(
            connect_timeout=h.connect_timeout,
            read_timeout=h.read_timeout,
            attempts=h.attempts,
            retry_budget_seconds=h.retry_budget_seconds,
            requests_per_second=h.requests_per_second or 5.0,
            max_concurrency=h.max_concurrency or 4,
        )
        self.http = IgaHttp(
            target.name, target.base_url, auth, policy, error_text=fault_text, transport=transport, verify=h.verify_tls
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]:
        size = self.options.batch_size
        return [list(requests[i : i + size]) for i in range(0, len(requests), size)]

    # ------------------------------------------------------------------ users

    async def find_user(self, ids: UserIdentifiers) -> IgaUser:
        """First identifier with any hit decides: one hit is the user, several are ambiguous."""
        if ids.iga_id:
            return await self._user_by_iga_id(ids.iga_id)
        o = self.options
        for value, key in (
            (ids.dn, o.attr_dn),
            (ids.username, o.attr_username),
            (ids.email, o.attr_email),
            (ids.employee_id, o.attr_employee_id),
        ):
            if not value:
                continue
            hits, total = await self._search(key, value)
            if total > 1:
                raise AmbiguousUser(f"{total} IG users have {key}={value!r}")
            if hits:
                return self._to_user(hits[0])
        raise UserNotFound(f"no IG user matches {sorted(ids.present())}")

    async def _search(self, key: str, value: str) -> tuple[list[dict[str, Any]], int]:
        criterion = {"attributeKey": key, "operator": "EQ", "value": value}
        criteria = {"operator": "AND", "childCriteria": [criterion]}
        params: dict[str, Any] = {"indexFrom": 0, "size": 2, "showCt": "true", "qMatch": "EXACT"}
        body: dict[str, Any]
        match self.options.search_body:
            case "criterias":
                body = {"criterias": [json.dumps(criteria, separators=(",", ":"))]}
            case "criterias_objects":
                body = {"criterias": [criteria]}
            case "searchCriteria":
                body = {"searchCriteria": [{"attributeKey": key, "attributeMatch": "EXACT", "attributeValue": value}]}
            case "q":
                body, params = {}, {**params, "q": value}
        resp = await self.http.request("POST", "/api/data/users/search", params=params, json=body)
        data = resp.json()
        users = [u for u in data.get("users") or [] if isinstance(u, dict)]
        # Guard against a server that ignored the filter: drop users whose attribute disagrees.
        hits = [u for u in users if _attribute(u, key) in (None, value.lower())]
        total = len(hits)
        if len(hits) == len(users) and isinstance(data.get("totalSearch"), int):
            total = max(total, data["totalSearch"])
        return hits, total

    async def _user_by_iga_id(self, iga_id: str) -> IgaUser:
        if not iga_id.isdigit():
            return IgaUser(id=iga_id)  # a uniqueUserId, used as given
        resp = await self.http.request("GET", f"/api/data/users/{iga_id}", params={"allowDeleted": "true"})
        return self._to_user(resp.json())

    def _to_user(self, raw: Mapping[str, Any]) -> IgaUser:
        attributes = {
            str(a.get("attributeKey")): a.get("attributeValue")
            for a in raw.get("attributes") or []
            if isinstance(a, dict) and a.get("attributeKey")
        }
        unique = next((raw[f] for f in self.options.unique_id_fields if raw.get(f)), None)
        unique = unique or next((attributes[f] for f in self.options.unique_id_fields if attributes.get(f)), None)
        if not unique:
            raise IgaPermanentError(f"IG user {raw.get('userId')} has none of {self.options.unique_id_fields}")
        name = attributes.get("displayName")
        extra = {"userId": raw.get("userId"), "deleted": bool(raw.get("deleted"))}
        return IgaUser(id=str(unique), display_name=str(name) if name else None, attributes=attributes, extra=extra)

    # ------------------------------------------------------------------ access

    async def list_access(self, user: IgaUser) -> list[AccessItem]:
        """Permissions, technical roles and (4.x) requested business roles, every page."""
        base = f"/api/request/users/{urllib.parse.quote(user.id, safe='')}"
        perms = await self._pages(f"{base}/perms", "permissions", sortBy="permname", sortOrder="ASC")
        roles = await self._pages(f"{base}/roles", "roles", sortBy="name", sortOrder="ASC")
        broles = []
        if self.options.version.startswith("4"):
            broles = await self._pages(f"{base}/broles", "roles", sortBy="name", sortOrder="ASC")
        accounts = await self._account_ids(user) if self.options.account_scoped_removal else {}
        items = [self._perm_item(p, accounts) for p in perms]
        items += [self._role_item(r, business=False) for r in roles]
        items += [self._role_item(r, business=True) for r in broles]
        return items

    async def _pages(self, path: str, key: str, **params: str) -> list[dict[str, Any]]:
        """All rows of an IG list: advance by what came back until `totalSearch` (or a short page)."""
        size = self.options.page_size
        rows: list[dict[str, Any]] = []
        while True:
            query = {"indexFrom": len(rows), "size": size, "showCt": "true", **params}
            body = (await self.http.request("GET", path, params=query)).json()
            page = [r for r in body.get(key) or [] if isinstance(r, dict)]
            rows += page
            total = body.get("totalSearch")
            if not page or (isinstance(total, int) and len(rows) >= total) or (total is None and len(page) < size):
                return rows

    async def _account_ids(self, user: IgaUser) -> dict[Any, str]:
        user_id = user.extra.get("userId")
        if user_id is None:
            return {}
        rows = await self._pages(f"/api/data/users/{user_id}/accounts", "accounts")
        return {r.get("accountId"): str(r["uniqueAcctId"]) for r in rows if r.get("uniqueAcctId")}

    def _privileged(self, raw: Mapping[str, Any]) -> bool:
        field = self.options.privileged_field
        flag = raw.get(field) if field else None
        if flag is True or str(flag).lower() in ("true", "yes", "1"):
            return True
        names = [str(raw.get(k) or "") for k in ("displayName", "name")]
        return any(fnmatch.fnmatch(n.lower(), g.lower()) for g in self.options.privileged_names for n in names)

    def _perm_item(self, p: Mapping[str, Any], accounts: Mapping[Any, str]) -> AccessItem:
        o = self.options
        info = p.get("permissionAssignmentInfo") or {}
        role = info.get("assocById")
        auto = any(isinstance(a, dict) and a.get("autoGrant") for a in p.get("authorizedBy") or [])
        granted: GrantSource = "role" if role else "birthright" if auto else "direct"
        unique = str(p["uniquePermId"])
        guid = p.get("instanceGuid")
        account = accounts.get(p.get("accountId"))
        rtype = o.request_type_account_permission if account else o.request_type_permission
        extra = {
            "kind": "permission",
            "requestType": rtype,
            "uniqueId": unique,
            "permId": p.get("permId"),
            "appId": p.get("appId"),
            "accountId": p.get("accountId"),
            "accountName": p.get("accountName"),
            "accountUniqueId": account,
            "instanceGuid": guid,
            "assocById": role,
            "assocByName": info.get("assocByName"),
        }
        return AccessItem(
            id=f"{unique}:{guid}" if guid else unique,
            type="entitlement",
            name=str(p.get("displayName") or p.get("name") or unique),
            application=p.get("appDisplayName"),
            privileged=self._privileged(p),
            granted_by=granted,
            removable=info.get("revocable") is not False and granted == "direct",
            extra={k: v for k, v in extra.items() if v is not None},
        )

    def _role_item(self, r: Mapping[str, Any], *, business: bool) -> AccessItem:
        o = self.options
        auto = any(isinstance(a, dict) and a.get("autoGrant") for a in r.get("authorizedBy") or [])
        unique = str(r["uniquePolicyId"])
        return AccessItem(
            id=unique,
            type="role",
            name=str(r.get("name") or unique),
            privileged=self._privileged(r),
            granted_by="birthright" if auto else "direct",
            removable=not auto and r.get("assigned") is not False,
            extra={
                "kind": "business_role" if business else "tech_role",
                "requestType": o.request_type_business_role if business else o.request_type_tech_role,
                "uniqueId": unique,
                "roleId": r.get("id"),
            },
        )

    # ------------------------------------------------------------------ removals

    def _reason(self, marker: str, text: str) -> str:
        return f"{marker} {text}".strip()[: max(self.options.reason_max_length, len(marker))]

    def _request_item(self, user: IgaUser, r: RemovalRequest, key: str) -> dict[str, Any]:
        extra = r.item.extra
        default = self.options.request_type_tech_role if r.item.type == "role" else self.options.request_type_permission
        body: dict[str, Any] = {
            "requestType": extra.get("requestType", default),
            "requestItem": extra.get("uniqueId", r.item.id),
            "recipient": user.id,
            "reason": self._reason(_marker(key, r), r.reason),
        }
        if extra.get("accountUniqueId") and body["requestType"] == self.options.request_type_account_permission:
            body["recipientAccountUniqueId"] = extra["accountUniqueId"]
        if extra.get("instanceGuid"):
            body["instanceGuid"] = extra["instanceGuid"]
        return body

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """POST one request for the batch, then find each accepted item's IDs with the §7 lookup."""
        if not batch:
            return []
        started_ms = int(time.time() * 1000)
        bodies = [self._request_item(user, r, key) for r in batch]
        payload = {"reason": self._reason(key, self.options.request_reason), "requestItems": bodies}
        resp = await self.http.request("POST", "/api/request/request", json=payload, idempotent=False)
        data = resp.json()
        answers = _pair_statuses(bodies, data.get("requestItemsStatus") or [] if isinstance(data, dict) else [])

        refs: dict[int, RequestRef] = {}
        accepted: dict[int, RemovalRequest] = {}
        duplicate: dict[int, RemovalRequest] = {}
        for i, (r, answer) in enumerate(zip(batch, answers, strict=True)):
            status = str(answer.get("itemStatus") or "")
            if not status or status in ACCEPTED or map_status(status) is IgaStatus.PENDING:
                accepted[i] = r
            elif status in DUPLICATES:
                duplicate[i] = r
            else:
                refs[i] = RequestRef(
                    item_id=r.item.id,
                    request_id=f"{key}:{r.item.id}",
                    tracking_id=f"{key}:{r.item.id}",
                    status=map_status(status) or IgaStatus.FAILED,
                    raw_status=status,
                    message=answer.get("errMessage") or None,
                )

        since = started_ms - int(self.options.lookup_window_seconds * 1000)
        for attempt in range(self.options.lookup_attempts):
            waiting = {i: r for i, r in accepted.items() if i not in refs}
            if not waiting:
                break
            if attempt:
                await asyncio.sleep(self.options.lookup_retry_seconds)
            found = await self._lookup(user, list(waiting.values()), key, since)
            for (i, r), row in zip(waiting.items(), found, strict=True):
                if row is not None:
                    refs[i] = _ref(r, row)
        lost = [r.item.id for i, r in accepted.items() if i not in refs]
        if lost:
            raise IgaUncertainError(f"IG accepted {len(lost)} item(s) of {key} but does not list them yet: {lost}")

        if duplicate:
            since = started_ms - int(self.options.recovery_window_seconds * 1000)
            found = await self._lookup(user, list(duplicate.values()), None, since)
            for (i, r), row in zip(duplicate.items(), found, strict=True):
                refs[i] = _ref(r, row) if row is not None else _invisible_duplicate(r, key)
        return [refs[i] for i in range(len(batch))]

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        since = int((time.time() - self.options.recovery_window_seconds) * 1000)
        found = await self._lookup(user, batch, key, since)
        return [_ref(r, row) for r, row in zip(batch, found, strict=True) if row is not None]

    async def _lookup(
        self, user: IgaUser, batch: Sequence[RemovalRequest], key: str | None, since_ms: int
    ) -> list[dict[str, Any] | None]:
        """The newest request row per batch item since `since_ms` (§7), matched on recipient, item,
        type and (when `key` is given) the marker in the item reason."""
        wanted = [self._request_item(user, r, key or "") for r in batch]
        markers = [_marker(key, r) if key else None for r in batch]
        found: list[dict[str, Any] | None] = [None] * len(batch)
        o = self.options
        index = 0
        for _ in range(o.lookup_max_pages):
            params: dict[str, Any] = {
                "indexFrom": index,
                "size": o.page_size,
                "showCt": "true",
                "getInProgress": "true",
                "getCompleted": "true",
                "getAdds": "false",
                "getRemoves": "true",
                "getPerms": "true",
                "getApps": "true",
                "startDate": since_ms,
                "sortBy": "requestdate",
                "sortOrder": "DESC",
            }
            if o.lookup_get_all:
                params["getAll"] = "true"
            body = (await self.http.request("POST", "/api/request/requests", params=params, json={})).json()
            rows = [row for row in body.get("requests") or [] if isinstance(row, dict)]
            for row in rows:  # newest first: the first match of an item is its latest request
                for i, want in enumerate(wanted):
                    if (
                        found[i] is None
                        and _same_item(row, want)
                        and (markers[i] is None or _has_marker(row.get("reason"), markers[i] or ""))
                    ):
                        found[i] = row
                        break
            index += len(rows)
            total = body.get("totalSearch")
            short = total is None and len(rows) < o.page_size
            if all(found) or not rows or short or (isinstance(total, int) and index >= total):
                break
        else:
            # The list goes on past what we read: "not found" would invite a second submission.
            raise IgaUncertainError(
                f"request lookup read {o.lookup_max_pages} pages ({index} items) without reaching the end; "
                "raise the lookup_max_pages option or narrow recovery_window_seconds"
            )
        return found

    # ------------------------------------------------------------------ tracking

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        """One `/info` call per item: IG has no bulk status. Refs refused at submit keep their state."""
        states: dict[str, RequestState] = {}
        for ref in refs:
            if not ref.tracking_id.isdigit():
                states[ref.tracking_id] = RequestState(ref.status, ref.raw_status or "", ref.message)
                continue
            try:
                resp = await self.http.request("GET", f"/api/request/requestItem/{ref.tracking_id}/info")
            except IgaPermanentError as exc:
                if exc.status_code != 404:
                    raise
                states[ref.tracking_id] = RequestState(IgaStatus.FAILED, "NOT_FOUND", str(exc))
                continue
            states[ref.tracking_id] = item_state(resp.json())
        return states

    async def cancel_request(self, user: IgaUser, ref: RequestRef, reason: str) -> bool:
        """Retract the item; True also when an earlier retract already took it back."""
        if not ref.tracking_id.isdigit():
            return False
        params = {"id": ref.tracking_id, "retractPerms": str(self.options.retract_perms).lower()}
        body = (await self.http.request("PUT", "/api/request/resourceItem/retract", params=params)).json()
        if ref.tracking_id in {str(i) for i in body.get("succeeded") or []}:
            return True
        state = (await self.get_requests(user, [ref]))[ref.tracking_id]
        return state.raw_status == "RETRACTED"


def _attribute(user: Mapping[str, Any], key: str) -> str | None:
    for a in user.get("attributes") or []:
        if isinstance(a, dict) and a.get("attributeKey") == key and a.get("attributeValue") is not None:
            return str(a["attributeValue"]).lower()
    return None


def _same_item(row: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    if (row.get("recipient"), row.get("requestItem"), row.get("requestType")) != (
        want["recipient"],
        want["requestItem"],
        want["requestType"],
    ):
        return False
    guid = want.get("instanceGuid")
    return not guid or not row.get("instanceGuid") or row.get("instanceGuid") == guid


def _pair_statuses(bodies: Sequence[Mapping[str, Any]], answers: Sequence[Any]) -> list[Mapping[str, Any]]:
    """Each submitted item's answer: by item and type, else by position; {} when IG said nothing."""
    left = [a for a in answers if isinstance(a, dict)]
    paired: list[Mapping[str, Any]] = []
    for n, body in enumerate(bodies):
        match = next(
            (
                a
                for a in left
                if a.get("requestItem") == body["requestItem"] and a.get("requestType") == body["requestType"]
            ),
            None,
        )
        if match is None and len(left) == len(bodies) - n and left:
            match = left[0]
        if match is not None:
            left.remove(match)
        paired.append(match or {})
    return paired


def _ref(r: RemovalRequest, row: Mapping[str, Any]) -> RequestRef:
    item_id = str(row["resourceRequestItemId"])
    decision = str(row.get("decision") or "")
    return RequestRef(
        item_id=r.item.id,
        request_id=str(row.get("resourceRequestId") or item_id),  # 3.7 rows carry only the item ID
        tracking_id=item_id,
        status=map_status(decision) or IgaStatus.PENDING,
        raw_status=decision or None,
    )


def _invisible_duplicate(r: RemovalRequest, key: str) -> RequestRef:
    return RequestRef(
        item_id=r.item.id,
        request_id=f"{key}:{r.item.id}",
        tracking_id=f"{key}:{r.item.id}",
        status=IgaStatus.FAILED,
        raw_status="DUPLICATE_REQUEST",
        message="IG has a request for this item in flight that the service account cannot list "
        "(set option lookup_get_all with the ManageRequests right)",
    )
