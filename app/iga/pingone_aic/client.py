"""`PingOneAicClient`: the `IgaClient` for PingOne Advanced Identity Cloud Identity Governance,
contract `backends/pingone-aic.md`.

Users are found with IDM's managed-user query (a DN through the IGA account search where the
tenant keeps no DN on the user), access is read from the user's IGA grants, and each item is
removed by its own remove request (`entitlementRemove`, `roleRemove`, `applicationRemove`)
published with leaver's correlation key in `externalRequestId`. An interrupted submission is found
again by the admin request search on (user, item), comparing the key on every hit; a duplicate
refusal (the types' `uniqueKeys`) is adopted as the open request it names.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from pydantic import ValidationError

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, RequestState, UserIdentifiers
from app.iga.base import (
    AmbiguousUser,
    IgaError,
    IgaNotSent,
    IgaPermanentError,
    IgaTransientError,
    IgaUncertainError,
    UserNotFound,
)
from app.iga.http import HttpPolicy, IgaHttp, json_object
from app.iga.lookup import first_single
from app.iga.pingone_aic.auth import build_auth
from app.iga.pingone_aic.options import PingOneAicOptions
from app.iga.pingone_aic.wire import (
    Doc,
    access_items,
    error_text,
    id_field,
    is_draft,
    open_request,
    own_request,
    pair_filter,
    publish_body,
    quote,
    refusal,
    request_state,
    user_from_doc,
)
from app.settings import TargetSettings

SYSTEM = "pingone-aic"
#: AIC publishes no rate limits: at most 10 calls a second and 4 in flight per tenant (contract §8) [A].
REQUESTS_PER_SECOND = 10.0
MAX_CONCURRENCY = 4
#: What the vendor UI asks of entitlement grants, so that `assignment.id` is returned (§4).
ENTITLEMENT_FIELDS = "application,catalog,descriptor,entitlement,glossary,item,keys,relationship,assignment.id,user"
USER_FIELDS = ("_id", "userName", "mail", "givenName", "sn", "accountStatus")
GRANTS = "/iga/governance/user/{user}/grants"
REQUESTS = "/iga/governance/requests"
log = structlog.get_logger(__name__)


def _options(target: TargetSettings) -> PingOneAicOptions:
    """The options, with errors that name each field and never echo a value (the key is one)."""
    try:
        return PingOneAicOptions.model_validate(target.options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors(include_input=False)
        )
        raise ValueError(f"target {target.name!r}: invalid pingone-aic options: {problems}") from None


def _ref(item_id: str, doc: Doc, message: str | None = None) -> RequestRef:
    state = request_state(doc)
    request_id = str(doc["id"])
    return RequestRef(item_id, request_id, request_id, state.status, state.raw_status, message or state.message)


class PingOneAicClient:
    """`IgaClient` for one PingOne AIC tenant."""

    system = SYSTEM

    def __init__(self, target: TargetSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.options = _options(target)
        h = target.http
        policy = HttpPolicy.of(h, requests_per_second=REQUESTS_PER_SECOND, max_concurrency=MAX_CONCURRENCY)
        auth = build_auth(target, self.options)
        self.http = IgaHttp(
            target.name, target.base_url, auth, policy, error_text=error_text, transport=transport, verify=h.verify_tls
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _json(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Doc:
        resp = await self.http.request(method, path, idempotent=idempotent, **kwargs)
        body = json_object(resp)
        if body is None:
            raise IgaPermanentError(f"{method} {path}: the answer is not a JSON object", status_code=resp.status_code)
        return body

    async def _pages(self, method: str, path: str, params: Mapping[str, str], size: int, body: Any = None) -> list[Doc]:
        """Every row of an IGA listing, by offset. A short page ends it, and so does reaching a
        positive `totalCount` (the docs' samples show `totalCount: 0` beside full pages) (§4, §8)."""
        rows: list[Doc] = []
        offset = 0
        for _ in range(self.options.max_pages):
            query = {**params, "_pageSize": str(size), "_pagedResultsOffset": str(offset)}
            page = await self._json(method, path, params=query, json=body)
            found = [r for r in page.get("result") or [] if isinstance(r, Mapping)]
            rows += found
            offset += len(found)
            total = page.get("totalCount")
            if len(found) < size or (isinstance(total, int) and 0 < total <= offset):
                return rows
        raise IgaPermanentError(f"{path}: more than {self.options.max_pages} pages of {size}; raise max_pages")

    # ---------------------------------------------------------------- users

    async def find_user(self, ids: UserIdentifiers) -> IgaUser:
        """The keys in `lookup_order`; the first that names exactly one user wins. A key naming
        several is ambiguous unless a later key names exactly one (contract §3)."""
        if ids.iga_id:
            docs = await self._users(f"_id eq {quote(ids.iga_id)}")
            if len(docs) == 1:
                return user_from_doc(docs[0], self.options)
            raise UserNotFound(f"no AIC managed user {ids.iga_id}")
        given = {"employee_id": ids.employee_id, "username": ids.username, "dn": ids.dn, "email": ids.email}
        found, several = await first_single(self.options.lookup_order, given.get, self._candidates)
        if found is not None:
            return user_from_doc(found, self.options)
        if several:
            raise AmbiguousUser(f"several AIC users match the event's {' and '.join(key for key, _ in several)}")
        tried = ", ".join(sorted(k for k, v in given.items() if v)) or "no identifiers"
        raise UserNotFound(f"no AIC managed user matches the event ({tried})")

    async def _candidates(self, key: str, wanted: str) -> list[Doc]:
        o = self.options
        if key == "dn" and o.dn_attribute is None:
            return await self._users_by_account_name(wanted)
        attribute = {"employee_id": o.employee_id_attribute, "username": "userName", "email": "mail"}.get(key)
        attribute = o.dn_attribute if key == "dn" else attribute
        return await self._users(f"{attribute} eq {quote(wanted)}") if attribute else []

    async def _users(self, query_filter: str) -> list[Doc]:
        o = self.options
        fields = [*USER_FIELDS, *(a for a in (o.employee_id_attribute, o.dn_attribute) if a), *o.user_fields]
        params = {
            "_queryFilter": query_filter,
            "_fields": ",".join(dict.fromkeys(fields)),
            "_pageSize": "2",
            "_totalPagedResultsPolicy": "EXACT",
        }
        body = await self._json("GET", f"/openidm/managed/{o.realm}_user", params=params)
        return [d for d in body.get("result") or [] if isinstance(d, Mapping) and d.get("_id")]

    async def _users_by_account_name(self, dn: str) -> list[Doc]:
        """The owners of the accounts whose name is this DN (contract §3, DN fallback)."""
        query = {"operator": "EQUALS", "operand": {"targetName": self.options.dn_account_attribute, "targetValue": dn}}
        body = await self._json(
            "POST",
            "/iga/governance/account",
            params={"_action": "search", "_pageSize": "2"},
            json={"targetFilter": query},
        )
        owners = {str(a["keys"]["userId"]) for a in body.get("result") or [] if (a.get("keys") or {}).get("userId")}
        docs = [d for owner in sorted(owners) for d in await self._users(f"_id eq {quote(owner)}")]
        return docs

    # ---------------------------------------------------------------- access

    async def list_access(self, user: IgaUser) -> list[AccessItem]:
        path, size = GRANTS.format(user=urllib.parse.quote(user.id, safe="")), self.options.page_size
        entitlements = await self._pages("GET", path, {"grantType": "entitlement", "_fields": ENTITLEMENT_FIELDS}, size)
        accounts = await self._pages("GET", path, {"grantType": "account"}, size)
        roles = await self._pages("GET", path, {"grantType": "role"}, size)
        return access_items(entitlements, accounts, roles, self.options)

    # ---------------------------------------------------------------- removals

    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]:
        """`batch_size` items per batch (one by default, see the option), entitlements and roles
        before accounts (an account takes its entitlements with it)."""
        ordered = [r for r in requests if r.item.type != "account"] + [r for r in requests if r.item.type == "account"]
        size = self.options.batch_size
        return [ordered[i : i + size] for i in range(0, len(ordered), size)]

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """One publish per item (concurrently, should a batch hold several). Any unanswered publish
        makes the batch uncertain (recovery finds what arrived); items the IGA refused get no ref;
        all refused is an error."""
        if not batch:
            return []
        outcomes = await asyncio.gather(*(self._publish(user, r, key) for r in batch), return_exceptions=True)
        refs = [o for o in outcomes if isinstance(o, RequestRef)]
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for error in errors:
            if not isinstance(error, IgaError):
                raise error  # a bug or a cancellation: never swallowed
        # Unanswered or unsent publishes leave the batch to recovery, which looks each item up.
        for kind in (IgaUncertainError, IgaNotSent, IgaTransientError):
            first = next((e for e in errors if isinstance(e, kind)), None)
            if first is not None:
                if refs:
                    log.warning(
                        "pingone_aic.batch_partly_answered", key=key, answered=len(refs), not_answered=len(errors)
                    )
                raise first
        if errors and not refs:
            raise IgaPermanentError(
                "; ".join(str(e) for e in errors), status_code=getattr(errors[0], "status_code", None)
            )
        return refs

    async def _publish(self, user: IgaUser, req: RemovalRequest, key: str) -> RequestRef:
        request_type = self.options.request_type(req.item.type)
        if request_type is None:
            raise IgaPermanentError(f"item {req.item.id}: AIC has no remove request for a {req.item.type!r}")
        body = publish_body(user, req, key, self.options, datetime.now(UTC))
        path = f"{REQUESTS}/{urllib.parse.quote(request_type, safe='')}"
        try:
            resp = await self.http.request("POST", path, params={"_action": "publish"}, json=body, idempotent=False)
        except IgaPermanentError as exc:
            if exc.status_code == 400 and "duplicate" in str(exc).casefold():
                return await self._adopt_duplicate(user, req, None, str(exc))
            raise
        doc = json_object(resp) or {}
        refused = refusal(doc)
        if refused is not None:
            duplicate, existing, message = refused
            if duplicate:
                return await self._adopt_duplicate(user, req, existing, message)
            raise IgaPermanentError(
                f"AIC refused the removal of {req.item.id}: {message}", status_code=resp.status_code
            )
        if not doc.get("id"):
            raise IgaUncertainError(f"AIC answered the removal of {req.item.id} with no request id")
        log.info(
            "pingone_aic.published",
            request=doc["id"],
            item=req.item.id,
            key=key,
            transaction=resp.headers.get("x-forgerock-transactionid"),
        )
        return _ref(req.item.id, doc)

    async def _adopt_duplicate(
        self, user: IgaUser, req: RemovalRequest, existing: str | None, message: str
    ) -> RequestRef:
        """The IGA refused a second open request for this (user, item): adopt the open one."""
        hits = await self._pair_hits(user, req, None)
        found = open_request(hits)
        if found is None and existing:
            doc = await self._request_or_none(existing)
            found = doc if doc is not None and not is_draft(doc) else None
        if found is None:
            raise IgaUncertainError(
                f"AIC refused the removal of {req.item.id} as a duplicate ({message}) and the open request "
                "is not listed yet; it is looked for again before anything is resent"
            )
        log.info("pingone_aic.duplicate_adopted", request=found["id"], item=req.item.id)
        return _ref(req.item.id, found, f"adopted open request {found['id']} (AIC refused a duplicate)")

    async def _pair_hits(self, user: IgaUser, req: RemovalRequest, key: str | None) -> list[Doc]:
        """Every request of this (user, item) pair in the admin request search (§7)."""
        item = req.item
        body = pair_filter(user.id, id_field(item), item.id, self.options.request_type(item.type) or "", key)
        size = self.options.lookup_page_size
        return await self._pages("POST", f"{REQUESTS}/search", {"_action": "search"}, size, body)

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """This batch's earlier requests: per item, the newest request carrying `key` (drafts never)."""
        by_key = key if self.options.search_by_external_id else None
        hits = await asyncio.gather(*(self._pair_hits(user, r, by_key) for r in batch))
        refs = []
        for req, found in zip(batch, hits, strict=True):
            own = own_request(found, key)
            if own is not None:
                refs.append(_ref(req.item.id, own))
        return refs

    # ---------------------------------------------------------------- tracking

    async def _request_or_none(self, request_id: str) -> Doc | None:
        try:
            return await self._json("GET", f"{REQUESTS}/{urllib.parse.quote(request_id, safe='')}")
        except IgaPermanentError as exc:
            if exc.status_code != 404:
                raise
            log.warning("pingone_aic.request_not_found", request=request_id)
            return None

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        """One `GET /requests/{id}` per request: AIC has no verified multi-ID status query."""
        ids = sorted({r.request_id for r in refs if r.request_id})
        docs = dict(zip(ids, await asyncio.gather(*(self._request_or_none(i) for i in ids)), strict=True))
        states = {}
        for ref in refs:
            doc = docs.get(ref.request_id)
            if doc is not None:
                states[ref.tracking_id] = request_state(doc)
        return states

    async def cancel_request(self, user: IgaUser, ref: RequestRef, reason: str) -> bool:
        """The request's cancel action (rehire). A 400 means it is no longer open: true only if it
        ended cancelled anyway."""
        path = f"{REQUESTS}/{urllib.parse.quote(ref.request_id, safe='')}"
        body = {"comment": reason.strip() or "leaver: removal withdrawn"}
        try:
            await self.http.request("POST", path, params={"_action": "cancel"}, json=body)
        except IgaPermanentError as exc:
            if exc.status_code not in (400, 404):
                raise
            doc = await self._request_or_none(ref.request_id) if exc.status_code == 400 else None
            return doc is not None and request_state(doc).status is IgaStatus.CANCELLED
        return True
