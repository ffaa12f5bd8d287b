"""The PingOne AIC simulator as an ASGI app: the shared plumbing (log, faults, clock, control
routes, probes), the token endpoints, and the IDM and IGA routes leaver calls, each checked for a
live bearer with the right scope. Every answer carries `x-forgerock-transactionid` (§9.7)."""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.simulator.base import SimulatorBase, Submission, Withdrawal, install_simulator_plumbing
from app.simulator.demo_users import DemoPerson, demo_people
from app.simulator.pingone_aic.api import ACTIONS, DEMO_REALM, CrestError, Tenant
from app.simulator.pingone_aic.config import SimConfig
from app.simulator.pingone_aic.directory import Directory
from app.simulator.pingone_aic.requests import GovernanceError, GovRequest, Plan
from app.simulator.pingone_aic.signin import SignIn
from app.simulator.pingone_aic.wire import crest_error

SYSTEM = "pingone-aic"
#: Drafts other people left for jdoe (username, request type, item name): never adopted (§6, §9.5).
DRAFTS = (("jdoe", "entitlementRemove", "VPN Users"), ("jdoe", "roleRemove", "Sales Global"))
_UUID8 = "[0-9a-f]" * 8


class PingOneAicSimulator(SimulatorBase):
    """The tenant's data and configuration; every public method runs under `lock`."""

    endpoints = {
        "submit": ("POST", "/iga/governance/requests/*Remove"),
        "lookup": ("POST", "/iga/governance/requests/search"),
        "status": ("GET", "/iga/governance/requests/*"),
        "withdraw": ("POST", f"/iga/governance/requests/{_UUID8}-*"),
        "inventory": ("GET", "/iga/governance/user/*/grants"),
        "search": ("GET", "/openidm/managed/*"),
        "token": ("POST", "/am/oauth2/*access_token"),
        "any": (None, "/iga/*"),
    }

    def __init__(self) -> None:
        super().__init__(system=SYSTEM)
        self.config = SimConfig()
        self.transactions = itertools.count(1)
        self._fresh()

    def _fresh(self) -> None:
        self.directory = Directory()
        self.directory.seed(demo_people(), self.clock.now() - 86400)
        self.tenant = Tenant(self.directory, lambda: self.config, self._submitted)
        self.signin = SignIn()
        self._seed_drafts()

    def _seed_drafts(self) -> None:
        now, d = self.clock.now() - 3600, self.directory
        for username, kind, name in DRAFTS:
            user_id = self.user_id(username)
            if kind == "entitlementRemove":
                field, item = "entitlementId", next(e.assignment_id for e in d.entitlements.values() if e.name == name)
            else:
                field, item = "roleId", next(r.id for r in d.roles.values() if r.name == name)
            common = {"userId": user_id, field: item, "justification": "draft left by a manager", "isDraft": True}
            plan = Plan("completed", now, 0.0, 0.0, False)
            self.tenant.requests.all.append(
                GovRequest(str(uuid.uuid4()), kind, user_id, item, common, now, plan, draft=True, modified=now)
            )

    def reset(self) -> None:
        self.config = SimConfig()
        self._fresh()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        changes = dict(changes)
        if changes.pop("revoke_tokens", False):
            self.signin.revoke_all()
        try:
            self.config = SimConfig.model_validate({**self.config.model_dump(), **changes})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise GovernanceError(400, f"invalid simulator config: {where}: {first['msg']}") from None
        return self.config.model_dump()

    def _submitted(self, req: GovRequest) -> None:
        key = req.common.get("externalRequestId")
        self.record([Submission(time.time(), req.user_id, req.item_id, str(key) if key else None, None)])

    # ---- probes

    def withdrawn(self) -> list[Withdrawal]:
        return [Withdrawal(r.user_id, r.item_id) for r in self.tenant.requests.withdrawn]

    def user_id(self, username: str) -> str:
        return next(p.id for p in self.directory.people.values() if p.user_name == username)

    def add_people(self, people: list[DemoPerson]) -> None:
        self.directory.seed(people, self.clock.now() - 86400)

    # ---- HTTP

    def serve(self, call: Callable[[float], tuple[int, Any]], api: str, authorization: str) -> Response:
        """Run one call of `api` ("/iga/" or "/openidm/") under the lock: the bearer check, the
        clock's effects, then the handler."""
        crest = api == "/openidm/"
        with self.lock:
            now = self.clock.now()
            refused = self.signin.check(authorization, api, self.config, now)
            if refused is not None:
                status, message = refused
                body = crest_error(status, message) if crest else {"message": message}
                headers = {"WWW-Authenticate": 'Bearer realm="/"'} if status == 401 else {}
                return JSONResponse(body, status_code=status, headers=headers)
            self.tenant.requests.tick(now)
            try:
                status, body = call(now)
            except GovernanceError as exc:
                body = crest_error(exc.status, exc.message) if crest and not isinstance(exc, CrestError) else exc.body()
                return JSONResponse(body, status_code=exc.status)
        return JSONResponse(body, status_code=status)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise GovernanceError(400, "Invalid request: the body is not valid JSON") from None


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}


def _endpoint_url(request: Request) -> str:
    return str(request.url.replace(query=""))


def create_app(sim: PingOneAicSimulator | None = None) -> FastAPI:
    """A fresh simulator with the demo people (or `sim`, already built)."""
    sim = sim or PingOneAicSimulator()
    app = FastAPI(title="PingOne AIC simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim
    install_simulator_plumbing(app, sim, crest_error)
    run = f"{uuid.uuid4()}"

    @app.middleware("http")
    async def transaction_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["x-forgerock-transactionid"] = f"{run}-{next(sim.transactions)}"
        return response

    @app.exception_handler(GovernanceError)
    async def governance_error(request: Request, exc: GovernanceError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/_config", include_in_schema=False)
    def get_config() -> dict[str, Any]:
        with sim.lock:
            return sim.config.model_dump()

    def bearer(request: Request) -> str:
        return request.headers.get("authorization", "")

    # ---- AM

    @app.post("/am/oauth2/access_token")
    async def token(request: Request) -> Response:
        form, url = await _form(request), _endpoint_url(request)
        with sim.lock:
            status, body = sim.signin.jwt_bearer(form, url, sim.config, sim.clock.now())
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @app.post("/am/oauth2/realms/root/realms/{realm}/access_token")
    async def realm_token(request: Request, realm: str) -> Response:
        form = await _form(request)
        if realm != DEMO_REALM:
            return JSONResponse({"error": "invalid_request", "error_description": "Invalid realm"}, status_code=400)
        with sim.lock:
            status, body = sim.signin.client_credentials(form, bearer(request), sim.config, sim.clock.now())
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    # ---- IDM

    @app.get("/openidm/managed/{managed}")
    async def query_users(request: Request, managed: str) -> Response:
        query = dict(request.query_params)
        return sim.serve(lambda now: sim.tenant.query_users(managed, query), "/openidm/", bearer(request))

    @app.get("/openidm/managed/{managed}/{user_id}")
    async def read_user(request: Request, managed: str, user_id: str) -> Response:
        return sim.serve(lambda now: sim.tenant.read_user(managed, user_id), "/openidm/", bearer(request))

    # ---- IGA

    @app.post("/iga/governance/account")
    async def accounts(request: Request) -> Response:
        query, body = dict(request.query_params), await _json(request)
        return sim.serve(lambda now: sim.tenant.account_search(query, body), "/iga/", bearer(request))

    @app.get("/iga/governance/user/{user_id}/grants")
    async def grants(request: Request, user_id: str) -> Response:
        query = dict(request.query_params)
        return sim.serve(lambda now: sim.tenant.grants(user_id, query, now), "/iga/", bearer(request))

    @app.post("/iga/governance/requests/search")
    async def search(request: Request) -> Response:
        query, body = dict(request.query_params), await _json(request)
        return sim.serve(lambda now: sim.tenant.search_requests(query, body, now), "/iga/", bearer(request))

    @app.post("/iga/governance/requests/{name}")
    async def publish_or_act(request: Request, name: str) -> Response:
        """`{requestTypeId}?_action=publish` makes a request; `{requestId}?_action=cancel|...` acts on one."""
        query, body = dict(request.query_params), await _json(request)
        with sim.lock:
            known = any(r.id == name for r in sim.tenant.requests.all)
        if known or query.get("_action") in ACTIONS:
            return sim.serve(lambda now: sim.tenant.act(name, query, body, now), "/iga/", bearer(request))
        return sim.serve(lambda now: sim.tenant.publish(name, query, body, now), "/iga/", bearer(request))

    @app.get("/iga/governance/requests/{request_id}")
    async def get_request(request: Request, request_id: str) -> Response:
        return sim.serve(lambda now: sim.tenant.get_request(request_id, now), "/iga/", bearer(request))

    return app
