"""`IdHubClient`: the `IgaClient` for IDHub (Sath), contract `backends/idhub.md`.

A removal is a cart of revoke items for one beneficiary, created and then submitted. The submit
answers no request IDs (its `correlationId` is the cart's, not the requests'), so the requests
are found afterwards in the listing of revoke requests by beneficiary, entity, type and the
correlation key at the start of their justification. The same lookup makes an interrupted submit
recoverable: a cart created but never submitted is inert, a fresh one is made for a resend, and
nothing is resent while the lookup finds the earlier requests.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from pydantic import ValidationError

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, RequestState, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.http import HttpPolicy, IgaHttp
from app.iga.idhub.auth import build_auth
from app.iga.idhub.options import IdHubOptions
from app.iga.idhub.wire import (
    Doc,
    Match,
    access_items,
    as_list,
    doc_id,
    error_text,
    iso_ms,
    oid,
    parse_time,
    request_state,
    same,
    user_from_doc,
)
from app.settings import TargetSettings

SYSTEM = "idhub"
#: No documented rate limit: 5 calls a second unless the target says otherwise (contract §8).
REQUESTS_PER_SECOND = 5.0
log = structlog.get_logger(__name__)


class IdHubClient:
    """`IgaClient` for one IDHub tenant."""

    system = SYSTEM

    def __init__(self, target: TargetSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        try:
            self.options = IdHubOptions.model_validate(target.options)
        except ValidationError as exc:
            raise ValueError(f"target {target.name!r}: invalid idhub options: {exc}") from None
        h = target.http
        policy = HttpPolicy.of(h, requests_per_second=REQUESTS_PER_SECOND)
        auth = build_auth(target, self.options)
        self.http = IgaHttp(
            target.name, target.base_url, auth, policy, error_text=error_text, transport=transport, verify=h.verify_tls
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(
        self,
        route: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        path_params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call on a named route of the options, with the tenant header. Only the cart
        submit creates requests: it alone is sent as non-idempotent (uncertain on 5xx or timeout)."""
        spec = self.options.routes.get(route)
        path = spec.path
        for name, value in (path_params or {}).items():
            path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
        return await self.http.request(
            spec.method,
            path,
            params=params,
            json=body,
            headers={self.options.tenant_header: self.options.tenant},
            idempotent=route != "cart_submit",
        )

    async def _json(self, route: str, **kwargs: Any) -> Any:
        resp = await self._call(route, **kwargs)
        try:
            return resp.json() if resp.content else None
        except ValueError:
            raise IgaPermanentError(f"IDHub {route}: the answer is not JSON", status_code=resp.status_code) from None

    # ---------------------------------------------------------------- users

    async def find_user(self, ids: UserIdentifiers) -> IgaUser:
        """Logins, user IDs and employee numbers are unique in IDHub, so one hit on any decides. An
        email may be shared: it decides only from a search that returns every holder (by that
        email, or of every user), and two holders are ambiguous. A DN's `cn` stands for the
        username: DNs are no IDHub attribute (contract §3)."""
        username = ids.username or _cn(ids.dn)
        seen: dict[str, Doc] = {}

        def unique() -> Doc | None:
            if ids.iga_id and ids.iga_id in seen:
                return seen[ids.iga_id]
            for field, value in (("login", username), ("employeeNumber", ids.employee_id)):
                hit = next((d for d in seen.values() if same(d.get(field), value)), None)
                if hit is not None:
                    return hit
            return None

        def by_email(pool: list[Doc]) -> Doc | None:
            holders = {doc_id(d): d for d in pool if same(d.get("email"), ids.email)}
            if len(holders) > 1:
                raise AmbiguousUser(f"{len(holders)} IDHub users have email {ids.email!r}")
            return next(iter(holders.values()), None)

        local_part = (ids.email or "").split("@")[0]
        for keyword in [k for k in dict.fromkeys([username, ids.email, local_part]) if k]:
            docs = await self._search_users(keyword)
            seen.update({doc_id(d) or "": d for d in docs})
            found = unique() or (by_email(docs) if keyword == ids.email else None)
            if found is not None:
                return user_from_doc(found)
        # Strict keyword matching (display names only): the user's accounts name them.
        for params in ({"userid": ids.iga_id}, {"login": username}):
            if next(iter(params.values())):
                seen.update({doc_id(d) or "": d for d in await self._users_by_accounts(params)})
                if (found := unique()) is not None:
                    return user_from_doc(found)
        if self.options.scan_users:
            everyone = await self._search_users("")
            seen.update({doc_id(d) or "": d for d in everyone})
            if (found := unique() or by_email(everyone)) is not None:
                return user_from_doc(found)
        elif (found := by_email(list(seen.values()))) is not None:
            return user_from_doc(found)
        tried = ", ".join(sorted(ids.present())) or "no identifiers"
        raise UserNotFound(f"no IDHub user matches the event ({tried})")

    async def _search_users(self, keyword: str) -> list[Doc]:
        docs = await self._json("catalog_search", params={"collection": "Users", "keyword": keyword})
        return [d for d in as_list(docs) if doc_id(d)]

    async def _users_by_accounts(self, params: Mapping[str, str | None]) -> list[Doc]:
        """Users owning the accounts these parameters find, searched by their form's first and
        last name (what a display name is made of)."""
        accounts = as_list(await self._json("user_accounts", params={k: str(v) for k, v in params.items()}))
        found: list[Doc] = []
        for user_id in dict.fromkeys(str(a.get("userId")) for a in accounts if a.get("userId")):
            form = next((a.get("form") or {} for a in accounts if str(a.get("userId")) == user_id), {})
            name = " ".join(str(form[k]) for k in ("First Name", "Last Name") if form.get(k))
            found += [d for d in await self._search_users(name) if doc_id(d) == user_id] if name else []
        return found

    async def _user_doc(self, user: IgaUser) -> Doc:
        """The user's current catalog document (its `accessList` changes as requests complete)."""
        extra = user.extra
        for keyword in dict.fromkeys(k for k in (extra.get("displayName"), extra.get("login")) if k):
            doc = next((d for d in await self._search_users(str(keyword)) if doc_id(d) == user.id), None)
            if doc is not None:
                return doc
        if self.options.scan_users:
            doc = next((d for d in await self._search_users("") if doc_id(d) == user.id), None)
            if doc is not None:
                return doc
        raise UserNotFound(f"IDHub user {user.id} ({extra.get('login')}) is no longer in the catalog")

    # ---------------------------------------------------------------- access

    async def list_access(self, user: IgaUser) -> list[AccessItem]:
        doc = await self._user_doc(user)
        params = {"userid": user.id, "status": "Provisioned"}
        accounts = as_list(await self._json("user_accounts", params=params))
        return access_items(doc, [a for a in accounts if str(a.get("userId") or user.id) == user.id], self.options)

    # ---------------------------------------------------------------- removals

    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]:
        size = self.options.batch_size
        return [list(requests[i : i + size]) for i in range(0, len(requests), size)]

    def _entity_type(self, item: AccessItem) -> str:
        kind = item.extra.get("entity_type") or self.options.entity_type(item.type)
        if not kind:
            raise IgaPermanentError(f"item {item.id}: IDHub has no revoke request for a {item.type!r}")
        return str(kind)

    def cart(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> dict[str, Any]:
        """The cart of revoke items (contract §5): one beneficiary, named by the correlation key."""
        o, extra = self.options, user.extra
        items = []
        for req in batch:
            beneficiary = {
                "login": extra.get("login"),
                "employeeNumber": extra.get("employeeNumber"),
                "displayName": extra.get("displayName") or user.display_name,
            }
            if req.item.extra.get("account_name"):
                beneficiary["accountName"] = req.item.extra["account_name"]
            beneficiary["type"] = o.revoke_type
            items.append(
                {"beneficiaries": [beneficiary], "entityId": req.item.id, "entityType": self._entity_type(req.item)}
            )
        r = o.requester
        return {
            "requester": {"login": r.login, "employeeNumber": r.employee_number, "displayName": r.display_name},
            "cartItems": items,
            "owner": f"User/{r.user_id}",
            "name": key,
        }

    def justification(self, batch: Sequence[RemovalRequest], key: str) -> str:
        reasons = list(dict.fromkeys(r.reason.strip() for r in batch if r.reason.strip()))
        return f"{key}: {'; '.join(reasons)}" if reasons else key

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """Create the cart, submit it, then find the requests it made. Creating a cart changes
        nothing (only its submit makes requests), so a lost create is simply made again."""
        if not batch:
            return []
        if not user.extra.get("login"):
            raise IgaPermanentError(f"IDHub user {user.id} has no login: requests cannot name the beneficiary")
        cart = self.cart(user, batch, key)
        started = datetime.now(UTC)
        created = await self._call("cart_create", body=cart)
        answer = _answer(created, "cart create")
        submit: dict[str, Any] = {
            **cart,
            "justification": self.justification(batch, key),
            "archive": False,
            "collection": "UserCart",
            "modifiedOn": iso_ms(datetime.now(UTC)),
        }
        if self.options.send_etag:
            etag = oid(answer.get("_etag")) or (created.headers.get("etag") or "").strip('"') or None
            if not etag:
                raise IgaPermanentError("IDHub cart create answered no _etag, and option send_etag is set")
            submit["_etag"] = {self.options.etag_key: etag}
        cart_id = str(answer.get("correlationId") or "")
        submitted = _answer(await self._call("cart_submit", body=submit, path_params={"cart": cart_id}), "cart submit")
        correlation = str(submitted.get("correlationId") or "") or None
        since = started - timedelta(seconds=self.options.clock_skew_seconds)
        match_id = correlation if self.options.match_submit_correlation_id else None
        refs: dict[str, RequestRef] = {}
        for attempt in range(self.options.resolve_attempts):
            if attempt:
                await asyncio.sleep(self.options.resolve_interval_seconds)
            refs = await self._lookup(user, batch, key, since, match_id)
            if len(refs) == len(batch):
                break
        missing = [r.item.id for r in batch if r.item.id not in refs]
        if missing:
            log.warning("idhub.requests_not_listed", key=key, cart=correlation, missing=missing)
            raise IgaUncertainError(
                f"IDHub accepted cart {key} ({correlation}) but does not list requests for {missing} yet; "
                "they are looked up again before anything is resent"
            )
        return [refs[r.item.id] for r in batch]

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        since = datetime.now(UTC) - timedelta(seconds=self.options.lookup_window_seconds)
        refs = await self._lookup(user, batch, key, since, None)
        return [refs[r.item.id] for r in batch if r.item.id in refs]

    async def _lookup(
        self, user: IgaUser, batch: Sequence[RemovalRequest], key: str, since: datetime, correlation: str | None
    ) -> dict[str, RequestRef]:
        """The newest listed revoke request per batch item that carries `key` (contract §7).
        Filtering is ours: IDHub filters the listing by request type only."""
        o = self.options
        match = Match(
            login=str(user.extra.get("login") or ""),
            entities={r.item.id: self._entity_type(r.item) for r in batch},
            revoke_type=o.revoke_type,
            key=key,
            since=since,
            correlation_id=correlation,
        )
        best: dict[str, tuple[datetime | None, Doc]] = {}
        for page in range(o.first_page, o.first_page + o.lookup_max_pages):
            params = {"filter": o.revoke_type, "pagesize": str(o.page_size), o.page_param: str(page)}
            rows = as_list(await self._json("requests_by_type", params=params))
            for row in (r for r in rows if match(r)):
                entity, created = str(row["payload"]["entityId"]), parse_time(row.get("createDate"))
                if entity not in best or _later(created, best[entity][0], o.newest_first):
                    best[entity] = (created, row)
            dates = [t for t in (parse_time(r.get("createDate")) for r in rows) if t is not None]
            past_window = o.newest_first and bool(dates) and min(dates) < since
            complete = o.newest_first and len(best) == len(batch)
            if len(rows) < o.page_size or past_window or complete:
                return {entity: _ref(entity, row, o) for entity, (_, row) in best.items()}
        raise IgaUncertainError(
            f"the request listing has more than {o.lookup_max_pages} pages inside the lookup window; "
            "raise option lookup_max_pages or lower lookup_window_seconds"
        )

    # ---------------------------------------------------------------- tracking

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        """One fetch by ID per request: the listing is tenant-wide and IDHub has no bulk status."""
        states: dict[str, RequestState] = {}
        for ref in refs:
            try:
                rows = as_list(await self._json("request_by_id", path_params={"id": ref.tracking_id}))
            except IgaPermanentError as exc:
                if exc.status_code != 404:
                    raise
                rows = []
            row = next((r for r in rows if doc_id(r) in (ref.tracking_id, None)), None)
            if row is None:
                states[ref.tracking_id] = RequestState(
                    IgaStatus.FAILED, "NOT_FOUND", f"IDHub no longer has request {ref.request_id} ({ref.tracking_id})"
                )
            else:
                states[ref.tracking_id] = request_state(row, self.options)
        return states

    async def cancel_request(self, user: IgaUser, ref: RequestRef, reason: str) -> bool:
        """IDHub's API offers no withdrawal (only its UI does, to the requester, before the request
        completes), so nothing is sent and the caller hears "no"."""
        log.warning(
            "idhub.cannot_withdraw",
            request=ref.request_id,
            tracking=ref.tracking_id,
            requester=self.options.requester.login,
            why=reason,
            action=f"withdraw the request in the IDHub UI as {self.options.requester.login} before it completes",
        )
        return False


def _cn(dn: str | None) -> str | None:
    """The `cn` of a DN (`cn=jdoe,ou=users,o=example` -> `jdoe`)."""
    if not dn:
        return None
    first = dn.split(",", 1)[0].strip()
    name, _, value = first.partition("=")
    return value.strip() or None if name.strip().casefold() == "cn" else None


def _answer(resp: httpx.Response, what: str) -> Doc:
    """`{"correlationId": …, "result": true}`; `result: false` is IDHub refusing the cart."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping) or body.get("result") is False:
        raise IgaPermanentError(
            f"IDHub {what} did not accept the cart: {resp.text[:300]}", status_code=resp.status_code
        )
    return body


def _later(created: datetime | None, known: datetime | None, newest_first: bool) -> bool:
    """Whether a second matching request for one item is the later one. The listing's order is
    used only where the dates cannot tell (newest first: the one seen first is the later)."""
    if created is not None and known is not None and created != known:
        return created > known
    return not newest_first


def _ref(entity: str, row: Doc, options: IdHubOptions) -> RequestRef:
    tracking = doc_id(row) or ""
    state = request_state(row, options)
    return RequestRef(
        item_id=entity,
        request_id=str(row.get("requestId") or tracking),
        tracking_id=tracking,
        status=state.status,
        raw_status=state.raw_status,
        message=state.message,
    )
