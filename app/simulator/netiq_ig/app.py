"""The NetIQ IG simulator as an ASGI app: OSP's token endpoints, the REST API routes leaver calls,
the `/_state` test helpers, and the shared plumbing (log, faults, clock, `/_config`, probes)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.simulator.base import install_error_handlers, install_simulator_plumbing
from app.simulator.netiq_ig.query import matches, search_ok, sorted_rows
from app.simulator.netiq_ig.shapes import account_json, held_json, info_json, perm_json, request_json, role_json
from app.simulator.netiq_ig.shapes import user_json as user_shape
from app.simulator.netiq_ig.state import NetIqIgSimulator
from app.simulator.netiq_ig.wire import (
    CLIENT_ID,
    CLIENT_SECRET,
    NO_RIGHTS_USER,
    OSP,
    SERVICE_USER,
    IgFault,
    basic_credentials,
    bool_arg,
    envelope,
    fault_body,
    form_fields,
    json_body,
    malformed_call,
    oauth_error,
)


def create_app(sim: NetIqIgSimulator | None = None) -> FastAPI:
    """A fresh IG simulator with the demo people (`app.state.sim` exposes it to tests)."""
    sim = sim or NetIqIgSimulator()
    app = FastAPI(title="NetIQ Identity Governance simulator", version="4.2.0-sim")
    app.state.sim = sim
    install_error_handlers(app, fault_body, invalid=malformed_call)
    _osp_routes(app, sim)
    _api_routes(app, sim)
    _state_routes(app, sim)
    install_simulator_plumbing(app, sim, fault_body)
    return app


def _client_ok(request: Request, form: dict[str, str]) -> bool:
    basic = basic_credentials(request.headers.get("authorization"))
    client_id, client_secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    return client_id == CLIENT_ID and client_secret == CLIENT_SECRET


def _osp_routes(app: FastAPI, sim: NetIqIgSimulator) -> None:
    async def token(request: Request) -> Response:
        form = form_fields(await request.body())
        if not _client_ok(request, form):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        grant = form.get("grant_type")
        with sim.lock:
            if grant == "password":
                user, password = form.get("username", ""), form.get("password", "")
                if not user or sim.credentials.get(user) != password:
                    return oauth_error(400, "invalid_grant", "Invalid resource owner credentials")
                body = sim.issue_tokens(user, refresh=True)
            elif grant == "refresh_token":
                principal = sim.refresh_tokens.get(form.get("refresh_token", ""))
                if principal is None:
                    return oauth_error(400, "invalid_grant", "Invalid or revoked refresh token")
                body = sim.issue_tokens(principal, refresh=False)
            else:
                return oauth_error(400, "unsupported_grant_type", f"Grant type {grant!r} is not supported")
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    app.add_api_route(f"{OSP}/token", token, methods=["POST"], summary="OAuth2 token (password grant)")
    app.add_api_route(f"{OSP}/grant", token, methods=["POST"], summary="OAuth2 token (alternate path)")

    @app.post(f"{OSP}/revoke", summary="RFC 7009 token revocation")
    async def revoke(request: Request) -> Response:
        form = form_fields(await request.body())
        if not _client_ok(request, form):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        with sim.lock:
            value = form.get("token", "")
            sim.refresh_tokens.pop(value, None)
            sim.access_tokens.pop(value, None)
        return Response(status_code=200)


def _api_routes(app: FastAPI, sim: NetIqIgSimulator) -> None:
    def caller(request: Request, *, rights: bool = True) -> str:
        principal = sim.principal(request.headers.get("authorization"))
        if rights and principal == NO_RIGHTS_USER:
            path = request.scope["path"].split("/api", 1)[-1]
            raise IgFault(403, "RestApiUnAuthorized", f"Denying access to {path} for user {principal}.")
        return principal

    def q(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    @app.get("/api/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        with sim.lock:
            principal = caller(request, rights=False)
        return {"principal": principal, "userId": 1 if principal == SERVICE_USER else 2}

    @app.post("/api/data/users/search")
    async def search_users(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise IgFault(400, "InvalidRequest", "SearchCriteria must be an object")
        params = q(request)
        with sim.lock:
            caller(request)
            wanted = [k for part in request.query_params.getlist("listAttr") for k in part.split(",") if k]
            keys = set(wanted) or None
            hits = [
                user_shape(u, keys) | {"_name": u.display_name}
                for u in sim.catalog.users.values()
                if search_ok(u, body, params)
            ]
            rows = sorted_rows(hits, params, {"displayName": "_name", "userId": "userId"}, "displayName", "userId")
            for row in rows:
                row.pop("_name")
            return envelope(params, "users", rows, sim.config.page_size_max, default=10, window=False)

    @app.get("/api/data/users/{user_id}")
    def get_user(user_id: int, request: Request) -> dict[str, Any]:
        with sim.lock:
            caller(request)
            user = sim.catalog.user_by_id(user_id)
            if user.deleted and not bool_arg(q(request), "allowDeleted", False):
                raise IgFault(404, "NotFound", f"No user with ID {user_id}")
            return user_shape(user)

    @app.get("/api/data/users/{user_id}/accounts")
    def user_accounts(user_id: int, request: Request) -> dict[str, Any]:
        with sim.lock:
            caller(request)
            user = sim.catalog.user_by_id(user_id)
            held = sim.held(user.unique_id, "perm")
            accounts = sorted(
                (a for a in sim.catalog.accounts.values() if a.owner == user.unique_id), key=lambda a: a.account_id
            )
            rows = [account_json(sim.catalog, acct, held) for acct in accounts]
            return envelope(q(request), "accounts", rows, sim.config.page_size_max, default=10, window=False)

    @app.get("/api/request/users/{unique_user_id}/perms")
    def user_perms(unique_user_id: str, request: Request) -> dict[str, Any]:
        params = q(request)
        with sim.lock:
            caller(request)
            user = sim.catalog.user(unique_user_id)
            rows = [perm_json(sim.catalog, h) for h in sim.held(user.unique_id, "perm")]
            if params.get("q"):
                how = (params.get("qMatch") or "START").upper()
                rows = [r for r in rows if matches(r["displayName"], params["q"], how)]
            columns = {"permname": "displayName", "appname": "appDisplayName", "permdesc": "description"}
            rows = sorted_rows(rows, params, columns, "permname", "permId")
            return envelope(params, "permissions", rows, sim.config.page_size_max)

    def role_list(request: Request, unique_user_id: str, kind: str, paged: bool) -> dict[str, Any]:
        params = q(request)
        with sim.lock:
            caller(request)
            if kind == "brole" and sim.config.version == "3.7":
                raise IgFault(404, "NotFound", "Business role requests need Identity Governance 4.0 or later")
            user = sim.catalog.user(unique_user_id)
            held = sim.held(user.unique_id, kind)
            if paged and kind == "brole":
                held = [h for h in held if h.requested]
            rows = [role_json(sim.catalog, h) for h in held]
            if not paged:
                return {"arraySize": len(rows), "roles": rows}
            rows = sorted_rows(rows, params, {"name": "name", "description": "description"}, "name", "id")
            return envelope(params, "roles", rows, sim.config.page_size_max)

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
        body = await json_body(request)
        with sim.lock:
            principal = caller(request)
            return sim.submit(principal, body)

    @app.post("/api/request/requests")
    async def list_requests(request: Request) -> dict[str, Any]:
        await json_body(request)
        params = q(request)
        with sim.lock:
            principal = caller(request)
            rows = sim.requests_for(principal, params)
            page = envelope(params, "requests", rows, sim.config.page_size_max, window=False)
            now = sim.clock.now()
            page["requests"] = [request_json(sim.catalog, item, now, sim.config.version) for item in page["requests"]]
        return page

    @app.get("/api/request/requestItem/{item_id}/info")
    def item_info(item_id: int, request: Request) -> dict[str, Any]:
        with sim.lock:
            caller(request)
            sim.settle()
            item = sim.items.get(item_id)
            if item is None:
                raise IgFault(404, "NotFound", f"No request item with ID {item_id}")
            return info_json(item, sim.clock.now())

    @app.put("/api/request/resourceItem/retract")
    def retract(request: Request) -> dict[str, Any]:
        ids = [i for raw in request.query_params.getlist("id") for i in raw.split(",") if i]
        if not ids:
            raise IgFault(400, "InvalidParameter", "Parameter id is required")
        bool_arg(q(request), "retractPerms", False)
        with sim.lock:
            caller(request)
            return sim.retract(ids)


def _state_routes(app: FastAPI, sim: NetIqIgSimulator) -> None:
    """Test helpers beside the probes: what a user still holds, every request item."""

    @app.get("/_state/users/{username}/access", include_in_schema=False)
    def state_access(username: str) -> list[dict[str, Any]]:
        """What a user still holds (after every removal that reached VERIFIED)."""
        with sim.lock:
            user = sim.catalog.user_named(username)
            if user is None:
                raise IgFault(404, "NotFound", f"No user {username}")
            sim.settle()
            return [held_json(sim.catalog, h) for h in sim.catalog.holdings.get(user.unique_id, [])]

    @app.get("/_state/requests", include_in_schema=False)
    def state_requests() -> list[dict[str, Any]]:
        with sim.lock:
            now = sim.clock.now()
            return [
                request_json(sim.catalog, i, now, sim.config.version)
                | {"requester": i.requester, "status": i.progress(now)[1]}
                for i in sim.items.values()
            ]
