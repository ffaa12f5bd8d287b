"""The ISC simulator as an ASGI app: the token endpoint, the v3 routes leaver calls (answered the
same under `/v2024`, `/v2025` and `/v2026`), and the shared plumbing (log, faults, clock,
`/_config`, probes)."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.simulator.base import install_error_handlers, install_simulator_plumbing
from app.simulator.sailpoint_isc.docs import account_docs, identity_doc, row_doc
from app.simulator.sailpoint_isc.multi import account_entitlements, role_assignments
from app.simulator.sailpoint_isc.query import field_values, parse_filter, parse_query, sort_rows
from app.simulator.sailpoint_isc.state import IscSimulator
from app.simulator.sailpoint_isc.wire import (
    ACCOUNT_FILTERS,
    ACCOUNT_SORTERS,
    API_VERSIONS,
    APPROVER,
    LIST_LIMIT_MAX,
    PAGING,
    SEARCH_LIMIT_MAX,
    STATUS_FILTERS,
    STATUS_SORTERS,
    IscError,
    bad,
    check_date_form,
    error_body,
    json_body,
)


def _page(request: Request, rows: list[Any], cap: int, maximum: int = LIST_LIMIT_MAX) -> Response:
    """One page as a JSON array; `X-Total-Count` with count=true."""
    page = PAGING.page(rows, dict(request.query_params), cap, maximum=maximum)
    headers = {}
    if request.query_params.get("count", "false").lower() == "true":
        headers["X-Total-Count"] = str(page.total)
    return JSONResponse(page.rows, headers=headers)


def create_app(sim: IscSimulator | None = None) -> FastAPI:
    """A fresh simulator with the demo people (`app.state.sim` exposes it to tests)."""
    sim = sim or IscSimulator()
    app = FastAPI(title="SailPoint Identity Security Cloud simulator", docs_url=None, redoc_url=None)
    app.state.sim = sim
    install_error_handlers(app, error_body)
    install_simulator_plumbing(app, sim, error_body)

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        form.update({k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()})
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                cid, _, csec = base64.b64decode(auth[6:]).decode().partition(":")
                form.setdefault("client_id", cid)
                form.setdefault("client_secret", csec)
            except ValueError:
                pass
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}, status_code=400
            )
        with sim.lock:
            body = sim.issue_token(form.get("client_id", ""), form.get("client_secret", ""))
        if body is None:
            return JSONResponse({"error": "invalid_client", "error_description": "Bad credentials"}, status_code=401)
        return JSONResponse(body)

    api = APIRouter()
    newer = APIRouter()

    @api.post("/search")
    async def search(request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad("The search body must be a JSON object")
        query = body.get("query") or {}
        predicate = parse_query(str(query.get("query", "*")) if isinstance(query, dict) else "*")
        offset, limit = PAGING.window(dict(request.query_params), SEARCH_LIMIT_MAX, maximum=SEARCH_LIMIT_MAX)
        if offset + limit > SEARCH_LIMIT_MAX:
            raise bad("offset + limit may not exceed 10000; use searchAfter")
        nested = body.get("includeNested", True) is not False
        with sim.lock:
            now = sim.tick()
            indices = body.get("indices") or ["*"]
            docs = []
            if "identities" in indices or "*" in indices:
                docs = [identity_doc(i, now) for i in sim.identities.values()]
            cap = sim.config.page_size_max if sim.config.page_size_max < LIST_LIMIT_MAX else SEARCH_LIMIT_MAX
        hits = [d for d in docs if predicate(d)]
        sort = body.get("sort") or ["id"]
        for key in reversed(sort):
            name = key.lstrip("+-")
            hits.sort(key=lambda d: str((field_values(d, name) or [""])[0]).casefold(), reverse=key.startswith("-"))
        after = body.get("searchAfter")
        if after:

            def position(d: dict[str, Any]) -> list[str]:
                return [str((field_values(d, k.lstrip("+-")) or [""])[0]).casefold() for k in sort]

            marker = [str(a).casefold() for a in after]
            hits = [d for d in hits if position(d)[: len(marker)] > marker]
        if not nested:
            for d in hits:
                d.pop("access", None)
                d.pop("accounts", None)
        return _page(request, hits, cap, SEARCH_LIMIT_MAX)

    @api.get("/search/{index}/{doc_id}")
    def search_get(index: str, doc_id: str, request: Request) -> dict[str, Any]:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
            if index not in ("accessprofiles", "accountactivities", "entitlements", "events", "identities", "roles"):
                raise bad(f"Unknown index '{index}'")
            now = sim.tick()
            ident = sim.identities.get(doc_id) if index == "identities" else None
            if ident is None:
                raise IscError(404, f"No document '{doc_id}' in index '{index}'")
            return identity_doc(ident, now)

    @api.get("/accounts")
    def accounts(request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
        flt = request.query_params.get("filters")
        predicate = parse_filter(flt, ACCOUNT_FILTERS) if flt else (lambda row: True)
        with sim.lock:
            docs = account_docs(sim.identities.values())
            cap = sim.config.page_size_max
        rows = sort_rows([d for d in docs if predicate(d)], request.query_params.get("sorters"), ACCOUNT_SORTERS)
        return _page(request, rows, cap)

    @api.get("/accounts/{account_id}/entitlements")
    def account_entitlements_route(account_id: str, request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
            now = sim.tick()
            owner = next((i for i in sim.identities.values() if any(a["id"] == account_id for a in i.accounts)), None)
            if owner is None:
                raise IscError(404, f"Account '{account_id}' was not found")
            rows, cap = account_entitlements(owner, account_id, now), sim.config.page_size_max
        return _page(request, rows, cap)

    @newer.get("/identities/{identity_id}/role-assignments")
    def role_assignments_route(identity_id: str, request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=False)
            now = sim.tick()
            ident = sim.identities.get(identity_id)
            if ident is None:
                raise IscError(404, f"Identity '{identity_id}' was not found")
            rows = role_assignments(ident, request.query_params.get("roleId"), now)
        return JSONResponse(rows)

    @api.post("/access-requests", status_code=202)
    async def access_requests(request: Request) -> Response:
        with sim.lock:
            token = sim.check_token(request.headers.get("authorization"), user_only=True)
        body = await json_body(request)
        with sim.lock:
            return JSONResponse(sim.submit(body, token), status_code=202)

    @api.post("/access-requests/cancel", status_code=202)
    async def cancel(request: Request) -> Response:
        with sim.lock:
            sim.check_token(request.headers.get("authorization"), user_only=True)
        body = await json_body(request)
        with sim.lock:
            sim.cancel(body)
        return JSONResponse({}, status_code=202)

    @api.get("/access-request-status")
    def status(request: Request) -> Response:
        q = request.query_params
        with sim.lock:
            token = sim.check_token(request.headers.get("authorization"), user_only=True)
        if q.get("regarding-identity") and (q.get("requested-for") or q.get("requested-by")):
            raise bad("regarding-identity is mutually exclusive with requested-for and requested-by")
        if q.get("request-state") not in (None, "EXECUTING"):
            raise bad("The only valid value of request-state is EXECUTING")
        flt = q.get("filters")
        predicate = parse_filter(flt, STATUS_FILTERS) if flt else (lambda row: True)
        with sim.lock:
            if flt and not sim.config.status_in_filter and re.search(r"\baccessRequestId\s+in\b", flt):
                raise bad("operator 'in' is not supported for field 'accessRequestId'")
            if flt:
                check_date_form(flt, sim.config.created_date_form)
            now = sim.tick()

            def who(name: str) -> str | None:
                value = q.get(name)
                return token.identity_id if value == "me" else value

            wanted_for, wanted_by, regarding, assigned = (
                who("requested-for"),
                who("requested-by"),
                who("regarding-identity"),
                who("assigned-to"),
            )
            rows = []
            for row in sim.rows:
                if now < row.visible_at:
                    continue
                target, requester = row.identity.id, row.requester["id"]
                if (wanted_for and target != wanted_for) or (wanted_by and requester != wanted_by):
                    continue
                if regarding and regarding not in (target, requester):
                    continue
                if assigned and not (row.approval_id and assigned == APPROVER["id"]):
                    continue
                doc = row_doc(row, now)
                if q.get("request-state") and doc["state"] != "EXECUTING":
                    continue
                if predicate(
                    {
                        "accessRequestId": row.access_request_id,
                        "accountActivityItemId": row.activity_item_id,
                        "created": row.created,
                    }
                ):
                    rows.append(doc)
            cap = sim.config.page_size_max
        rows = sort_rows(rows, q.get("sorters"), STATUS_SORTERS)
        return _page(request, rows, cap)

    for version in API_VERSIONS:
        app.include_router(api, prefix=f"/{version}")
        if version != "v3":  # role-assignments exists from v2024 on
            app.include_router(newer, prefix=f"/{version}")
    return app
