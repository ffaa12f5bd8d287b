"""SailPoint Identity Security Cloud (IdentityNow) adapter, API v3 (contract `backends/sailpoint-isc.md`).

Users are found with the search API, access is read from the identity's search document, and
removals are REVOKE_ACCESS access requests tracked through `access-request-status`. Each request
carries the correlation key in `clientMetadata`, which ISC echoes on every status row: that is
how an interrupted submission is found again instead of being sent twice.

`RequestRef.tracking_id` is `"<accessRequestId>:<TYPE>:<item id>"`: the request to poll and the
item whose row to read from it (rows carry our `leaverItem` metadata; see `_pick_row`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.domain import (
    AccessItem,
    GrantSource,
    IgaStatus,
    IgaUser,
    ItemType,
    RemovalRequest,
    RequestRef,
    RequestState,
    UserIdentifiers,
)
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.http import HttpPolicy, IgaHttp, OAuth2Token, json_object
from app.settings import TargetSettings

SYSTEM = "sailpoint-isc"
#: ISC allows 100 requests per token per 10 s; we stay under it (contract §8).
REQUESTS_PER_SECOND = 9.0
TOKEN_RENEW_EARLY = 60.0
LIST_LIMIT_MAX = 250
SEARCH_WINDOW = 10000

ISC_TYPES: dict[str, ItemType] = {"ROLE": "role", "ACCESS_PROFILE": "access_profile", "ENTITLEMENT": "entitlement"}
LEAVER_TYPES = {v: k for k, v in ISC_TYPES.items()}

#: `access-request-status` state -> leaver status (contract §6). TERMINATED is set by options.
STATES: dict[str, IgaStatus] = {
    "EXECUTING": IgaStatus.PENDING,
    "PROVISIONING_VERIFICATION_PENDING": IgaStatus.PENDING,
    "REQUEST_COMPLETED": IgaStatus.COMPLETED,
    "NOT_ALL_ITEMS_PROVISIONED": IgaStatus.FAILED,
    "PROVISIONING_FAILED": IgaStatus.FAILED,
    "ERROR": IgaStatus.FAILED,
    "REJECTED": IgaStatus.REJECTED,
    "CANCELLED": IgaStatus.CANCELLED,
}

Lookup = Literal["employee_id", "username", "dn", "email"]
#: Employee number and username first: an email address can be shared (and then is ambiguous).
DEFAULT_ORDER: tuple[Lookup, ...] = ("employee_id", "username", "dn", "email")


class SailPointIscOptions(BaseModel):
    """`target.options` for sailpoint-isc. Each value is an assumption of the contract ([A]) or
    a tenant-specific choice, so it can be changed without code."""

    model_config = ConfigDict(extra="forbid")

    #: API path prefix. The same operations exist under v2024, v2025 and v2026.
    api_version: str = Field("v3", pattern=r"^(v3|v20\d\d|beta)$")
    #: Identity search field that holds the username; tenant-specific.
    username_attribute: str = Field("attributes.uid", pattern=r"^[A-Za-z0-9_.]+$")
    #: Find a username by that attribute, or by an account whose accountId is the username.
    username_lookup: Literal["attribute", "account"] = "attribute"
    #: Find a DN by `@accounts(accountId:"dn")` in search, or via `GET /accounts?filters=nativeIdentity eq`.
    dn_lookup: Literal["search", "accounts"] = "search"
    #: With dn_lookup "accounts": only accounts of this source (the IDM's directory) count.
    dn_source_id: str | None = None
    #: Identifiers tried in this order; the first one that names exactly one identity wins.
    lookup_order: list[Lookup] = Field(default_factory=lambda: list(DEFAULT_ORDER))
    #: Page size for identity searches (ISC allows up to 10000).
    search_page_size: int = Field(50, ge=1, le=SEARCH_WINDOW)
    #: Page size for access-request-status and accounts (ISC allows up to 250).
    status_page_size: int = Field(LIST_LIMIT_MAX, ge=1, le=LIST_LIMIT_MAX)
    #: Roles and access profiles per revoke request (no documented limit; entitlements go alone).
    batch_max: int = Field(25, ge=1, le=250)
    #: Request IDs per `accessRequestId in (...)` status call, to keep URLs short.
    status_ids_per_call: int = Field(50, ge=1, le=250)
    #: Looking for an earlier submission: tries, and seconds between them (contract §7.6).
    lookup_grace_tries: int = Field(3, ge=1, le=20)
    lookup_grace_seconds: float = Field(15.0, ge=0)
    #: Only status rows created this many days back are searched for a correlation key.
    lookup_window_days: float = Field(30.0, gt=0)
    #: Write the date in `created ge "..."` with quotes (the contract's form) or bare.
    created_filter_quoted: bool = True
    #: TERMINATED (stopped, e.g. by an admin) counts as failed: the access probably remains.
    terminated_as: Literal["failed", "cancelled"] = "failed"
    #: Comment for items whose removal reason is empty (ISC requires one on every revoke item).
    default_comment: str = Field("leaver: access removal", min_length=1)


def _isc_type(item: AccessItem) -> str:
    kind = item.extra.get("isc_type") or LEAVER_TYPES.get(item.type)
    if kind not in ISC_TYPES:
        raise IgaPermanentError(f"item {item.id}: ISC cannot revoke a {item.type!r} by access request")
    return str(kind)


def _tag(kind: str, item_id: str) -> str:
    """The `leaverItem` value: which item a status row belongs to."""
    return f"{kind}:{item_id}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _norm_dn(dn: str) -> str:
    return re.sub(r"\s*([,=+])\s*", r"\1", dn.strip()).casefold()


def _iso(when: datetime) -> str:
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _values(doc: Any, path: str) -> list[Any]:
    current = [doc]
    for part in path.split("."):
        current = [node[part] for node in current if isinstance(node, dict) and part in node]
        current = [v for value in current for v in (value if isinstance(value, list) else [value])]
    return current


def _error_text(resp: httpx.Response) -> str:
    """ISC's error bodies in one line: detailCode, messages, causes (never headers or tokens)."""
    body = json_object(resp)
    if body is None:
        return resp.text[:300]
    texts = [m.get("text") for m in [*(body.get("messages") or []), *(body.get("causes") or [])] if isinstance(m, dict)]
    parts = [body.get("detailCode"), *texts, body.get("error"), body.get("message")]
    return " | ".join(str(p).strip() for p in parts if p)[:500]


def _messages(row: Mapping[str, Any]) -> str | None:
    """The text ISC gives for a row's outcome: its error messages, else the cancellation comment."""
    texts = [
        str(m["text"])
        for group in row.get("errorMessages") or []
        for m in (group or [])
        if isinstance(m, dict) and m.get("text")
    ]
    if texts:
        return "; ".join(texts)
    cancelled = row.get("cancelledRequestDetails") or {}
    return cancelled.get("comment") or None


class SailPointIscClient:
    """`IgaClient` for SailPoint Identity Security Cloud."""

    system = SYSTEM

    def __init__(self, target: TargetSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        try:
            self.options = SailPointIscOptions.model_validate(target.options)
        except ValidationError as exc:
            raise ValueError(f"target {target.name!r}: invalid sailpoint-isc options: {exc}") from None
        if not target.client_id or not target.client_secret:
            raise ValueError(f"target {target.name!r}: sailpoint-isc needs client_id and client_secret (a PAT)")
        token = OAuth2Token(
            target.token_url or f"{target.base_url}/oauth/token",
            {
                "grant_type": "client_credentials",
                "client_id": target.client_id,
                "client_secret": target.client_secret.get_secret_value(),
            },
            early=TOKEN_RENEW_EARLY,
        )
        h, default = target.http, HttpPolicy()
        policy = HttpPolicy(
            connect_timeout=h.connect_timeout,
            read_timeout=h.read_timeout,
            attempts=h.attempts,
            retry_budget_seconds=h.retry_budget_seconds,
            requests_per_second=h.requests_per_second or REQUESTS_PER_SECOND,
            max_concurrency=h.max_concurrency or default.max_concurrency,
        )
        self.http = IgaHttp(
            target.name,
            target.base_url,
            token,
            policy,
            error_text=_error_text,
            transport=transport,
            verify=h.verify_tls,
        )
        self._prefix = f"/{self.options.api_version}"
        self._in_filter = True  # cleared when the tenant refuses `accessRequestId in (...)`

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---- paging

    async def _pages(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        page_size: int,
        body: Any = None,
        window: int | None = None,
    ) -> list[Any]:
        """Every record of a collection. `X-Total-Count` decides the end, because a server may
        return shorter pages than asked for; without it a short or empty page does."""
        out: list[Any] = []
        offset = 0
        while True:
            limit = page_size if window is None else min(page_size, window - offset)
            resp = await self.http.request(
                method,
                path,
                params={**params, "limit": str(limit), "offset": str(offset), "count": "true"},
                json=body,
            )
            page = resp.json()
            if not isinstance(page, list):
                raise IgaPermanentError(f"{method} {path}: expected a JSON array")
            out.extend(page)
            offset += len(page)
            total = resp.headers.get("x-total-count")
            if not page or (total is not None and offset >= int(total)):
                return out
            if total is None and len(page) < limit:
                return out
            if window is not None and offset >= window:
                return out

    # ---- users

    async def find_user(self, ids: UserIdentifiers) -> IgaUser:
        if ids.iga_id:
            try:
                return self._user(await self._identity(ids.iga_id))
            except UserNotFound:
                pass  # a stale direct ID: the other identifiers may still name the user
        ambiguous: list[str] = []
        for key in self.options.lookup_order:
            value = getattr(ids, key)
            if not value:
                continue
            docs = await self._candidates(key, value)
            if len(docs) == 1:
                return self._user(docs[0])
            if docs:
                ambiguous.append(f"{key} matches {len(docs)} identities")
        if ambiguous:
            raise AmbiguousUser("; ".join(ambiguous))
        tried = ", ".join(k for k in ("iga_id", *self.options.lookup_order) if getattr(ids, k))
        raise UserNotFound(f"no ISC identity matches {tried or 'the event (no identifiers)'}")

    async def _candidates(self, key: str, value: str) -> list[dict[str, Any]]:
        """Identity documents whose `key` equals `value` exactly (search itself is fuzzy)."""
        opts = self.options
        if key == "dn" and opts.dn_lookup == "accounts":
            return await self._by_account_native_identity(value)
        if key == "employee_id":
            query, field, want = f"employeeNumber:{_quote(value)}", "employeeNumber", value.casefold()
        elif key == "email":
            query, field, want = f"email:{_quote(value)}", "email", value.casefold()
        elif key == "username" and opts.username_lookup == "attribute":
            attr = opts.username_attribute
            query, field, want = f"{attr}:{_quote(value)}", attr, value.casefold()
        else:  # a DN, or a username held as an account's native identity
            query, field = f"@accounts(accountId:{_quote(value)})", "accounts.accountId"
            want = _norm_dn(value) if key == "dn" else value.casefold()
        body = {"indices": ["identities"], "query": {"query": query}, "sort": ["id"], "includeNested": True}
        docs = await self._pages("POST", f"{self._prefix}/search", {}, opts.search_page_size, body, SEARCH_WINDOW)

        def norm(v: Any) -> str:
            return _norm_dn(str(v)) if key == "dn" else str(v).casefold()

        return [d for d in docs if isinstance(d, dict) and any(norm(v) == want for v in _values(d, field))]

    async def _by_account_native_identity(self, dn: str) -> list[dict[str, Any]]:
        flt = f"nativeIdentity eq {_quote(dn)}"
        if self.options.dn_source_id:
            flt += f" and sourceId eq {_quote(self.options.dn_source_id)}"
        accounts = await self._pages("GET", f"{self._prefix}/accounts", {"filters": flt}, self.options.status_page_size)
        owners = sorted(
            {
                a["identityId"]
                for a in accounts
                if a.get("identityId") and _norm_dn(str(a.get("nativeIdentity", ""))) == _norm_dn(dn)
            }
        )
        return [await self._identity(i) for i in owners]

    async def _identity(self, identity_id: str) -> dict[str, Any]:
        try:
            resp = await self.http.request("GET", f"{self._prefix}/search/identities/{identity_id}")
        except IgaPermanentError as exc:
            if exc.status_code == 404:
                raise UserNotFound(f"no ISC identity {identity_id}", status_code=404) from None
            raise
        doc = resp.json()
        if not isinstance(doc, dict) or "id" not in doc:
            raise IgaPermanentError(f"identity {identity_id}: unexpected search document")
        return doc

    @staticmethod
    def _user(doc: Mapping[str, Any]) -> IgaUser:
        attributes = dict(doc.get("attributes") or {})
        for name in ("email", "employeeNumber", "name"):
            if doc.get(name) is not None:
                attributes.setdefault(name, doc[name])
        return IgaUser(
            id=str(doc["id"]),
            display_name=doc.get("displayName") or doc.get("name"),
            attributes=attributes,
            extra={"name": doc.get("name"), "inactive": bool(doc.get("inactive", False))},
        )

    # ---- access

    async def list_access(self, user: IgaUser) -> list[AccessItem]:
        doc = await self._identity(user.id)
        items = [self._access_item(raw) for raw in doc.get("access") or [] if isinstance(raw, dict)]
        return [i for i in items if i is not None]

    @staticmethod
    def _access_item(raw: Mapping[str, Any]) -> AccessItem | None:
        """One `access[]` entry. Roles and access profiles with `revocable: false` came from role
        criteria, a lifecycle state or a role; an entitlement with `standalone: false` came with
        an access profile or role. ISC refuses to revoke either by request (contract §4).

        ISC does not say which grant a non-standalone entitlement came with: it counts as
        role-granted (it goes when its role goes) unless the document marks it `revocable: false`,
        which leaver reads as birthright (it stays until the source removes it)."""
        kind = raw.get("type")
        if kind not in ISC_TYPES or not raw.get("id"):
            return None
        source = raw.get("source") or {}
        granted_by: GrantSource
        if kind == "ENTITLEMENT":
            removable = raw.get("standalone", True) is not False
            granted_by = "direct" if removable else ("birthright" if raw.get("revocable") is False else "role")
        else:
            removable = raw.get("revocable", True) is not False
            granted_by = "direct" if removable else ("birthright" if kind == "ROLE" else "role")
        return AccessItem(
            id=str(raw["id"]),
            type=ISC_TYPES[kind],
            name=str(raw.get("displayName") or raw.get("name") or raw["id"]),
            application=source.get("name"),
            privileged=bool(raw.get("privileged", False)),
            granted_by=granted_by,
            removable=removable,
            extra={
                "isc_type": kind,
                "name": raw.get("name"),
                "source_id": source.get("id"),
                "attribute": raw.get("attribute"),
                "value": raw.get("value"),
                "revocable": raw.get("revocable"),
                "standalone": raw.get("standalone"),
            },
        )

    # ---- removals

    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]:
        """Entitlements one per request (ISC's limit); roles and access profiles together, up to
        `batch_max` per request. Entitlements are never mixed with the others."""
        batches: list[list[RemovalRequest]] = []
        group: list[RemovalRequest] = []
        for req in requests:
            if req.item.type == "entitlement" or req.item.extra.get("isc_type") == "ENTITLEMENT":
                batches.append([req])
                continue
            group.append(req)
            if len(group) == self.options.batch_max:
                batches.append(group)
                group = []
        if group:
            batches.append(group)
        return batches

    def revoke_body(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> dict[str, Any]:
        """The REVOKE_ACCESS request for one batch, with the key on the request and every item."""
        now = datetime.now(UTC)
        items = []
        for req in batch:
            kind = _isc_type(req.item)
            item: dict[str, Any] = {
                "type": kind,
                "id": req.item.id,
                "comment": req.reason.strip() or self.options.default_comment,
                "clientMetadata": {"leaverKey": key, "leaverItem": _tag(kind, req.item.id)},
            }
            if req.remove_at is not None:
                when = req.remove_at if req.remove_at.tzinfo else req.remove_at.replace(tzinfo=UTC)
                if when > now:
                    item["removeDate"] = _iso(when)
            items.append(item)
        return {
            "requestType": "REVOKE_ACCESS",
            "requestedFor": [user.id],
            "requestedItems": items,
            "clientMetadata": {"leaverKey": key},
        }

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        if not batch:
            return []
        body = self.revoke_body(user, batch, key)
        resp = await self.http.request("POST", f"{self._prefix}/access-requests", json=body, idempotent=False)
        try:
            answer = resp.json() if resp.content else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict) or ("newRequests" not in answer and "existingRequests" not in answer):
            # A tenant from before 2024-12 answers `{}`: the IDs are only in access-request-status.
            refs = await self.find_existing(user, batch, key)
            if not refs:
                raise IgaUncertainError(
                    "ISC accepted the request without request IDs and it is not listed yet; "
                    "look it up again before any resend"
                )
            return refs
        ids_by_tag: dict[str, list[str]] = {}
        for entry in [*(answer.get("newRequests") or []), *(answer.get("existingRequests") or [])]:
            ids = [str(i) for i in entry.get("accessRequestIds") or []]
            for detail in entry.get("requestedItemsDetails") or []:
                if ids:
                    ids_by_tag[_tag(str(detail.get("type")), str(detail.get("id")))] = ids
        rows: list[dict[str, Any]] | None = None
        refs = []
        for req in batch:
            kind = _isc_type(req.item)
            candidates = ids_by_tag.get(_tag(kind, req.item.id))
            if not candidates:
                continue  # ISC returned nothing for this item: the pipeline records that
            request_id = candidates[0]
            if len(candidates) > 1:
                # High volume can spread one submission over several IDs: the rows tell which is whose.
                if rows is None:
                    rows = await self._rows_for_ids(user, sorted({i for v in ids_by_tag.values() for i in v}))
                row = next(
                    (r for r in rows if str(r.get("accessRequestId")) in candidates and self._is_row_of(r, kind, req)),
                    None,
                )
                request_id = str(row["accessRequestId"]) if row else candidates[0]
            refs.append(
                RequestRef(
                    item_id=req.item.id, request_id=request_id, tracking_id=f"{request_id}:{_tag(kind, req.item.id)}"
                )
            )
        return refs

    @staticmethod
    def _is_row_of(row: Mapping[str, Any], kind: str, req: RemovalRequest) -> bool:
        meta = row.get("clientMetadata") or {}
        if meta.get("leaverItem"):
            return bool(meta["leaverItem"] == _tag(kind, req.item.id))
        names = {req.item.name, req.item.extra.get("name")}
        return row.get("type") == kind and row.get("name") in names

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """Rows of `access-request-status` for this user whose `clientMetadata.leaverKey` is `key`
        (ISC cannot filter on it, so the match is ours), retried over a short grace period."""
        wanted = {_tag(_isc_type(r.item), r.item.id): r for r in batch}
        for attempt in range(self.options.lookup_grace_tries):
            if attempt:
                await asyncio.sleep(self.options.lookup_grace_seconds)
            since = _iso(datetime.now(UTC) - timedelta(days=self.options.lookup_window_days))
            created = _quote(since) if self.options.created_filter_quoted else since
            rows = await self._status_rows(
                {"requested-for": user.id, "sorters": "-created", "filters": f"created ge {created}"}
            )
            refs: dict[str, RequestRef] = {}
            for row in rows:  # newest first: a later resend under the same key wins
                meta = row.get("clientMetadata") or {}
                tag = meta.get("leaverItem")
                if meta.get("leaverKey") != key or tag not in wanted or tag in refs:
                    continue
                request_id = str(row.get("accessRequestId"))
                state = self._state(row)
                refs[tag] = RequestRef(
                    item_id=wanted[tag].item.id,
                    request_id=request_id,
                    tracking_id=f"{request_id}:{tag}",
                    status=state.status,
                    raw_status=state.raw_status,
                    message=state.message,
                )
            if refs:
                return [refs[t] for t in wanted if t in refs]
        return []

    # ---- tracking

    async def _status_rows(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        rows = await self._pages("GET", f"{self._prefix}/access-request-status", params, self.options.status_page_size)
        return [r for r in rows if isinstance(r, dict)]

    async def _rows_for_ids(self, user: IgaUser, request_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Status rows of these requests: `in` per chunk of IDs, or `eq` per ID on a tenant that
        refuses `in` (the v2025 spec text omits it; the forum requires it)."""
        base = {"requested-for": user.id, "sorters": "-created"}
        rows: list[dict[str, Any]] = []
        step = self.options.status_ids_per_call
        chunks = [request_ids[i : i + step] for i in range(0, len(request_ids), step)]
        for chunk in chunks:
            if self._in_filter:
                flt = f"accessRequestId in ({','.join(_quote(i) for i in chunk)})"
                try:
                    rows.extend(await self._status_rows({**base, "filters": flt}))
                    continue
                except IgaPermanentError as exc:
                    if exc.status_code != 400:
                        raise
                    self._in_filter = False
            for request_id in chunk:
                rows.extend(await self._status_rows({**base, "filters": f"accessRequestId eq {_quote(request_id)}"}))
        return rows

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        request_ids = sorted({r.request_id for r in refs if r.request_id})
        if not request_ids:
            return {}
        rows = await self._rows_for_ids(user, request_ids)
        by_request: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_request.setdefault(str(row.get("accessRequestId")), []).append(row)
        states = {}
        for ref in refs:
            picked = self._pick_row(ref, by_request.get(ref.request_id, []))
            if picked is not None:
                states[ref.tracking_id] = self._state(picked)
        return states

    @staticmethod
    def _pick_row(ref: RequestRef, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        """The item's row: by our `leaverItem`; else (a request adopted from someone else) the
        only row of the item's type, else the only row. None while ISC does not list it yet."""
        tag = ref.tracking_id.split(":", 1)[1] if ":" in ref.tracking_id else ""
        for row in rows:
            if (row.get("clientMetadata") or {}).get("leaverItem") == tag:
                return row
        same_type = [r for r in rows if r.get("type") == tag.split(":", 1)[0]]
        for candidates in (same_type, rows):
            if len(candidates) == 1:
                return candidates[0]
        if same_type and len({r.get("state") for r in same_type}) == 1:
            return same_type[0]
        return None

    def _state(self, row: Mapping[str, Any]) -> RequestState:
        raw = str(row.get("state") or "UNKNOWN")
        if raw == "TERMINATED":
            status = IgaStatus.FAILED if self.options.terminated_as == "failed" else IgaStatus.CANCELLED
        else:
            status = STATES.get(raw, IgaStatus.PENDING)  # an unknown new state is not taken as final
        return RequestState(status=status, raw_status=raw, message=_messages(row))

    async def cancel_request(self, user: IgaUser, ref: RequestRef, reason: str) -> bool:
        """Cancel the whole access request (ISC cancels per request, not per item). Allowed only
        before approval completes; a 400 means too late, unless it was cancelled already."""
        body = {"accountActivityId": ref.request_id, "comment": reason.strip() or "leaver: removal withdrawn"}
        try:
            await self.http.request("POST", f"{self._prefix}/access-requests/cancel", json=body)
        except IgaPermanentError as exc:
            if exc.status_code != 400:
                raise
            state = (await self.get_requests(user, [ref])).get(ref.tracking_id)
            return state is not None and state.status is IgaStatus.CANCELLED
        return True
