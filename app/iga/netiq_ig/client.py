"""`NetIqIgClient`: the IG calls in the order the contract needs them; the JSON shapes are in `wire`."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import httpx

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, RequestState, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.http import HttpPolicy, IgaHttp, OAuth2Token
from app.iga.netiq_ig.options import NetIqIgOptions
from app.iga.netiq_ig.wire import (
    ACCEPTED,
    DUPLICATES,
    RELIST,
    fault_text,
    has_marker,
    invisible_duplicate,
    is_role,
    item_marker,
    item_state,
    map_status,
    no_longer_held,
    pair_statuses,
    permission_item,
    reason_text,
    ref_from_row,
    relist_ref,
    relist_state,
    request_item,
    role_item,
    same_item,
    to_user,
    user_attribute,
)
from app.settings import TargetSettings


class LookupExhausted(IgaUncertainError):
    """The request list goes on past the page cap: what was not found may still be there."""

    def __init__(self, message: str, found: list[dict[str, Any] | None]) -> None:
        super().__init__(message)
        self.found = found


SYSTEM = "netiq-ig"
OSP_TOKEN_PATH = "/osp/a/idm/auth/oauth2/token"


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
        policy = HttpPolicy.of(h)
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
                return to_user(hits[0], self.options)
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
        hits = [u for u in users if user_attribute(u, key) in (None, value.lower())]
        total = len(hits)
        if len(hits) == len(users) and isinstance(data.get("totalSearch"), int):
            total = max(total, data["totalSearch"])
        return hits, total

    async def _user_by_iga_id(self, iga_id: str) -> IgaUser:
        if not iga_id.isdigit():
            return IgaUser(id=iga_id)  # a uniqueUserId, used as given
        resp = await self.http.request("GET", f"/api/data/users/{iga_id}", params={"allowDeleted": "true"})
        return to_user(resp.json(), self.options)

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
        items = [permission_item(p, accounts, self.options) for p in perms]
        items += [role_item(r, self.options, business=False) for r in roles]
        items += [role_item(r, self.options, business=True) for r in broles]
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

    # ------------------------------------------------------------------ removals

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """POST one request for the batch, then find each accepted item's IDs with the §7 lookup."""
        if not batch:
            return []
        started_ms = int(time.time() * 1000)
        bodies = [request_item(user, r, key, self.options) for r in batch]
        payload = {"reason": reason_text(key, self.options.request_reason, self.options), "requestItems": bodies}
        resp = await self.http.request("POST", "/api/request/request", json=payload, idempotent=False)
        data = resp.json()
        answers = pair_statuses(bodies, data.get("requestItemsStatus") or [] if isinstance(data, dict) else [])

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
        listed = self.options.role_items_in_lookup
        for attempt in range(self.options.lookup_attempts):
            waiting = {i: r for i, r in accepted.items() if i not in refs and (listed or not is_role(r))}
            if not waiting:
                break
            if attempt:
                await asyncio.sleep(self.options.lookup_retry_seconds)
            found = await self._lookup(user, list(waiting.values()), key, since)
            for (i, r), row in zip(waiting.items(), found, strict=True):
                if row is not None:
                    refs[i] = ref_from_row(r, row)
        for i, r in accepted.items():
            if i not in refs and is_role(r):  # IG may not list role removals: re-list roles instead
                refs[i] = relist_ref(r, key)
        lost = [r.item.id for i, r in accepted.items() if i not in refs]
        if lost:
            raise IgaUncertainError(f"IG accepted {len(lost)} item(s) of {key} but does not list them yet: {lost}")

        if duplicate:
            since = started_ms - int(self.options.recovery_window_seconds * 1000)
            found = await self._lookup(user, list(duplicate.values()), None, since)
            for (i, r), row in zip(duplicate.items(), found, strict=True):
                if row is not None:
                    refs[i] = ref_from_row(r, row)
                else:  # a role's request in flight the list does not show: re-list, as above
                    refs[i] = relist_ref(r, key) if is_role(r) else invisible_duplicate(r, key)
        return [refs[i] for i in range(len(batch))]

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """The batch's earlier requests (§7). When the request list is too long to read to the end,
        absence cannot be proven from it, so the user's current access decides: an item no longer
        held needs nothing more; one still held stays uncertain (an operator settles it)."""
        since = int((time.time() - self.options.recovery_window_seconds) * 1000)
        try:
            found = await self._lookup(user, batch, key, since)
        except LookupExhausted as exhausted:
            return await self._decide_from_access(user, batch, key, exhausted)
        refs = [ref_from_row(r, row) for r, row in zip(batch, found, strict=True) if row is not None]
        unlisted = [r for r, row in zip(batch, found, strict=True) if row is None and is_role(r)]
        if unlisted:  # role removals may never be listed: a role no longer held needs nothing more
            held = {item.id for item in await self.list_access(user)}
            refs += [no_longer_held(r, key) for r in unlisted if r.item.id not in held]
        return refs

    async def _decide_from_access(
        self, user: IgaUser, batch: Sequence[RemovalRequest], key: str, exhausted: LookupExhausted
    ) -> list[RequestRef]:
        held = {item.id for item in await self.list_access(user)}
        refs = []
        for r, row in zip(batch, exhausted.found, strict=True):
            if row is not None:
                refs.append(ref_from_row(r, row))
            elif r.item.id not in held:
                refs.append(no_longer_held(r, key))
            else:
                raise IgaUncertainError(
                    f"{exhausted}; item {r.item.id} is still held, so whether {key} reached IG cannot be "
                    "proven: check IG, then settle the case"
                ) from None
        return refs

    async def _lookup(
        self, user: IgaUser, batch: Sequence[RemovalRequest], key: str | None, since_ms: int
    ) -> list[dict[str, Any] | None]:
        """The newest request row per batch item since `since_ms` (§7), matched on recipient, item,
        type and (when `key` is given) the marker in the item reason."""
        wanted = [request_item(user, r, key or "", self.options) for r in batch]
        markers = [item_marker(key, r) if key else None for r in batch]
        found: list[dict[str, Any] | None] = [None] * len(batch)
        o = self.options
        narrow = {"q": user.display_name, "qMatch": "EXACT"} if o.lookup_by_recipient_name and user.display_name else {}
        index = 0
        for _ in range(o.lookup_max_pages):
            params: dict[str, Any] = {
                **narrow,
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
                        and same_item(row, want)
                        and (markers[i] is None or has_marker(row.get("reason"), markers[i] or ""))
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
            raise LookupExhausted(
                f"request lookup read {o.lookup_max_pages} pages ({index} items) without reaching the end; "
                "raise the lookup_max_pages option or narrow recovery_window_seconds",
                found,
            )
        return found

    # ------------------------------------------------------------------ tracking

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        """One `/info` call per item: IG has no bulk status. Refs refused at submit keep their state."""
        states: dict[str, RequestState] = {}
        if any(r.tracking_id.startswith(RELIST) for r in refs):
            held = {item.id for item in await self.list_access(user)}
            states = {r.tracking_id: relist_state(r.item_id in held) for r in refs if r.tracking_id.startswith(RELIST)}
        for ref in refs:
            if ref.tracking_id in states:
                continue
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
