"""`SailPointIscClient`: the ISC calls in the order the contract needs them; the JSON shapes are in `wire`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, RequestState, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.http import HttpPolicy, IgaHttp, OAuth2Token
from app.iga.lookup import first_single
from app.iga.sailpoint_isc.assign import alone, resolve, targets
from app.iga.sailpoint_isc.options import SEARCH_WINDOW, SailPointIscOptions
from app.iga.sailpoint_isc.wire import (
    access_item,
    build_revoke_body,
    combine_states,
    error_text,
    field_values,
    is_row_of,
    isc_type,
    iso_time,
    item_tag,
    norm_dn,
    pick_row,
    quote,
    refs_from_rows,
    row_state,
    to_user,
)
from app.settings import TargetSettings

SYSTEM = "sailpoint-isc"


def _request_ids(ref: RequestRef) -> list[str]:
    """The requests an item was revoked by: several when it was held on several accounts."""
    head = ref.tracking_id.split(":", 1)[0]
    return head.split("+") if "+" in head else [ref.request_id]


#: ISC allows 100 requests per token per 10 s; we stay under it (contract §8).
REQUESTS_PER_SECOND = 9.0
TOKEN_RENEW_EARLY = 60.0


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
        h = target.http
        policy = HttpPolicy.of(h, requests_per_second=REQUESTS_PER_SECOND)
        self.http = IgaHttp(
            target.name,
            target.base_url,
            token,
            policy,
            error_text=error_text,
            transport=transport,
            verify=h.verify_tls,
        )
        self._prefix = f"/{self.options.api_version}"
        self._in_filter = True  # cleared when the tenant refuses `accessRequestId in (...)`
        self._created_quoted = self.options.created_filter_quoted  # flipped once the tenant refuses it

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
                return to_user(await self._identity(ids.iga_id))
            except UserNotFound:
                pass  # a stale direct ID: the other identifiers may still name the user
        found, several = await first_single(self.options.lookup_order, lambda k: getattr(ids, k), self._candidates)
        if found is not None:
            return to_user(found)
        if several:
            raise AmbiguousUser("; ".join(f"{key} matches {n} identities" for key, n in several))
        tried = ", ".join(k for k in ("iga_id", *self.options.lookup_order) if getattr(ids, k))
        raise UserNotFound(f"no ISC identity matches {tried or 'the event (no identifiers)'}")

    async def _candidates(self, key: str, value: str) -> list[dict[str, Any]]:
        """Identity documents whose `key` equals `value` exactly (search itself is fuzzy)."""
        opts = self.options
        if key == "dn" and opts.dn_lookup == "accounts":
            return await self._by_account_native_identity(value)
        if key == "employee_id":
            query, field, want = f"employeeNumber:{quote(value)}", "employeeNumber", value.casefold()
        elif key == "email":
            query, field, want = f"email:{quote(value)}", "email", value.casefold()
        elif key == "username" and opts.username_lookup == "attribute":
            attr = opts.username_attribute
            query, field, want = f"{attr}:{quote(value)}", attr, value.casefold()
        else:  # a DN, or a username held as an account's native identity
            query, field = f"@accounts(accountId:{quote(value)})", "accounts.accountId"
            want = norm_dn(value) if key == "dn" else value.casefold()
        body = {"indices": ["identities"], "query": {"query": query}, "sort": ["id"], "includeNested": True}
        docs = await self._pages("POST", f"{self._prefix}/search", {}, opts.search_page_size, body, SEARCH_WINDOW)

        def norm(v: Any) -> str:
            return norm_dn(str(v)) if key == "dn" else str(v).casefold()

        return [d for d in docs if isinstance(d, dict) and any(norm(v) == want for v in field_values(d, field))]

    async def _by_account_native_identity(self, dn: str) -> list[dict[str, Any]]:
        flt = f"nativeIdentity eq {quote(dn)}"
        if self.options.dn_source_id:
            flt += f" and sourceId eq {quote(self.options.dn_source_id)}"
        accounts = await self._pages("GET", f"{self._prefix}/accounts", {"filters": flt}, self.options.status_page_size)
        owners = sorted(
            {
                a["identityId"]
                for a in accounts
                if a.get("identityId") and norm_dn(str(a.get("nativeIdentity", ""))) == norm_dn(dn)
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

    # ---- access

    async def list_access(self, user: IgaUser) -> list[AccessItem]:
        doc = await self._identity(user.id)
        listed = [access_item(raw) for raw in doc.get("access") or [] if isinstance(raw, dict)]
        items = list({i.id: i for i in listed if i is not None}.values())
        version = self.options.role_assignments_version
        return await resolve(doc, items, self._list, self._get, self._prefix, f"/{version}" if version else None)

    async def _list(self, path: str, params: Mapping[str, str]) -> list[Any]:
        return await self._pages("GET", path, params, self.options.status_page_size)

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        return (await self.http.request("GET", path, params=params)).json()

    # ---- removals

    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]:
        """Entitlements one per request (ISC's limit); roles and access profiles together, up to
        `batch_max` per request. Entitlements are never mixed with the others."""
        batches: list[list[RemovalRequest]] = []
        group: list[RemovalRequest] = []
        for req in requests:
            if req.item.type == "entitlement" or req.item.extra.get("isc_type") == "ENTITLEMENT" or alone(req):
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
        """The REVOKE_ACCESS request for one batch (the first, when an item needs one per target)."""
        return build_revoke_body(user, batch, key, self.options, [targets(r)[0] for r in batch])

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        if not batch:
            return []
        plan = [targets(r) for r in batch]
        if len(plan[0]) > 1:  # one item on several accounts or assignments: alone in its batch
            refs = [await self._submit(user, batch, key, [t]) for t in plan[0]]
            parts = [r[0] for r in refs if r]
            if not parts:
                return []
            tag = parts[0].tracking_id.split(":", 1)[1]
            joined = "+".join(p.request_id for p in parts)
            return [RequestRef(item_id=parts[0].item_id, request_id=parts[0].request_id, tracking_id=f"{joined}:{tag}")]
        return await self._submit(user, batch, key, [p[0] for p in plan])

    async def _submit(
        self, user: IgaUser, batch: Sequence[RemovalRequest], key: str, fields: Sequence[Mapping[str, str]]
    ) -> list[RequestRef]:
        body = build_revoke_body(user, batch, key, self.options, fields)
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
                    ids_by_tag[item_tag(str(detail.get("type")), str(detail.get("id")))] = ids
        rows: list[dict[str, Any]] | None = None
        refs = []
        for req in batch:
            kind = isc_type(req.item)
            candidates = ids_by_tag.get(item_tag(kind, req.item.id))
            if not candidates:
                continue  # ISC returned nothing for this item: the pipeline records that
            request_id = candidates[0]
            if len(candidates) > 1:
                # High volume can spread one submission over several IDs: the rows tell which is whose.
                if rows is None:
                    rows = await self._rows_for_ids(user, sorted({i for v in ids_by_tag.values() for i in v}))
                row = next(
                    (r for r in rows if str(r.get("accessRequestId")) in candidates and is_row_of(r, kind, req)),
                    None,
                )
                request_id = str(row["accessRequestId"]) if row else candidates[0]
            refs.append(
                RequestRef(
                    item_id=req.item.id,
                    request_id=request_id,
                    tracking_id=f"{request_id}:{item_tag(kind, req.item.id)}",
                )
            )
        return refs

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """Rows of `access-request-status` for this user whose `clientMetadata.leaverKey` is `key`
        (ISC cannot filter on it, so the match is ours), retried over a short grace period."""
        wanted = {item_tag(isc_type(r.item), r.item.id): r for r in batch}
        for attempt in range(self.options.lookup_grace_tries):
            if attempt:
                await asyncio.sleep(self.options.lookup_grace_seconds)
            since = iso_time(datetime.now(UTC) - timedelta(days=self.options.lookup_window_days))
            refs = refs_from_rows(await self._rows_since(user, since), wanted, key, self.options)
            if refs:
                return refs
        return []

    # ---- tracking

    async def _status_rows(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        rows = await self._pages("GET", f"{self._prefix}/access-request-status", params, self.options.status_page_size)
        return [r for r in rows if isinstance(r, dict)]

    async def _rows_since(self, user: IgaUser, since: str) -> list[dict[str, Any]]:
        """The user's status rows created since `since`. Which date form ISC takes is undocumented:
        the remembered one first; on a 400 the other once, and that one is kept for this target."""
        for flip in (False, True):
            quoted = self._created_quoted != flip
            flt = f"created ge {quote(since) if quoted else since}"
            try:
                rows = await self._status_rows({"requested-for": user.id, "sorters": "-created", "filters": flt})
            except IgaPermanentError as exc:
                if exc.status_code != 400 or flip:
                    raise
                continue
            self._created_quoted = quoted
            return rows
        raise AssertionError("unreachable")

    async def _rows_for_ids(self, user: IgaUser, request_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Status rows of these requests: `in` per chunk of IDs, or `eq` per ID on a tenant that
        refuses `in` (the v2025 spec text omits it; the forum requires it)."""
        base = {"requested-for": user.id, "sorters": "-created"}
        rows: list[dict[str, Any]] = []
        step = self.options.status_ids_per_call
        chunks = [request_ids[i : i + step] for i in range(0, len(request_ids), step)]
        for chunk in chunks:
            if self._in_filter:
                flt = f"accessRequestId in ({','.join(quote(i) for i in chunk)})"
                try:
                    rows.extend(await self._status_rows({**base, "filters": flt}))
                    continue
                except IgaPermanentError as exc:
                    if exc.status_code != 400:
                        raise
                    self._in_filter = False
            for request_id in chunk:
                rows.extend(await self._status_rows({**base, "filters": f"accessRequestId eq {quote(request_id)}"}))
        return rows

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        parts = {r.tracking_id: _request_ids(r) for r in refs}
        request_ids = sorted({i for ids in parts.values() for i in ids if i})
        if not request_ids:
            return {}
        rows = await self._rows_for_ids(user, request_ids)
        by_request: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_request.setdefault(str(row.get("accessRequestId")), []).append(row)
        states = {}
        for ref in refs:
            found = [pick_row(ref, by_request.get(i, [])) for i in parts[ref.tracking_id]]
            if found and all(row is not None for row in found):
                states[ref.tracking_id] = combine_states([row_state(r, self.options) for r in found if r is not None])
        return states

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
