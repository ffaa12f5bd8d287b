"""The IDHub simulator as an ASGI app: the shared plumbing (log, faults, clock, control routes,
probes) and one catch-all route that hands every other call to the dispatcher (`api`), which
follows the route table of the configuration."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app.simulator.base import Simulator, Submission, Withdrawal, install_error_handlers, install_simulator_plumbing
from app.simulator.demo_users import DemoPerson
from app.simulator.idhub.api import Call, IdHubApi
from app.simulator.idhub.catalog import add_people
from app.simulator.idhub.config import IdHubConfig
from app.simulator.idhub.state import Request as UserRequest
from app.simulator.idhub.state import Store
from app.simulator.idhub.wire import IdHubError, error_body

SYSTEM = "idhub"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
#: Token-form fields the shared log does not mask on its own (the RFC 8693 exchange's).
_MASKED = ("subject_token", "actor_token", "client_secret")


class IdHubSimulator(Simulator):
    """The tenant's data and configuration; every public method runs under `lock`."""

    config: IdHubConfig
    config_error_status = 400

    endpoints = {
        "submit": ("POST", "/api/v1/request/cart/submit"),
        "lookup": ("GET", "/api/v1/request"),
        # A request `_id` is 24 hex; the glob must not take `/request/cart` or `/request/search`.
        "status": ("GET", "/api/v1/request/" + "[0-9a-f]" * 6 + "*"),
        "withdraw": ("POST", "/api/v1/request/*/withdraw"),  # IDHub has none: never called
        "inventory": ("GET", "/api/v1/user/account"),
        "search": ("GET", "/api/v1/request/search"),
        "token": ("POST", "/auth/realms/*/protocol/openid-connect/token"),
        "any": (None, "/api/v1/*"),
    }

    def __init__(self) -> None:
        super().__init__(SYSTEM)
        self.reset()

    def reset(self) -> None:
        self.config = IdHubConfig()
        self.store = Store(self.clock.now(), self.rng)
        self.api = IdHubApi(self.store, lambda: self.config, self._submitted)

    def revoke_tokens(self) -> None:
        self.api.tokens.clear()

    def _submitted(self, requests: list[UserRequest]) -> None:
        """A cart submit names no items: the requests it made are counted from the handler."""
        revokes = [r for r in requests if r.type == self.config.revoke_type]
        self.record([Submission(time.time(), r.person_id, r.entity.id, r.cart_name, None) for r in revokes])

    # ---- probes

    def withdrawn(self) -> list[Withdrawal]:
        return []  # IDHub's API cannot withdraw a request

    def user_id(self, username: str) -> str:
        person = self.store.person_by_login(username)
        if person is None:
            raise KeyError(username)
        return person.id

    def add_people(self, people: list[DemoPerson]) -> None:
        add_people(self.store.catalog, self.store.people, people, self.clock.now() - 86400)

    # ---- HTTP

    def answer(self, call: Call) -> Response:
        try:
            with self.lock:
                status, body, headers = self.api.handle(call)
        except IdHubError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        return JSONResponse(body, status_code=status, headers=headers)

    def mask_token_form(self, path: str) -> None:
        """The shared log keeps form fields it does not know as credentials: mask ours."""
        with self.lock:
            for entry in reversed(self.log):
                if entry.path == path and isinstance(entry.body, dict):
                    entry.body = {k: "***" if k in _MASKED else v for k, v in entry.body.items()}
                    return


async def _call(sim: IdHubSimulator, request: Request, path: str) -> Call:
    raw = await request.body()
    kind = request.headers.get("content-type", "")
    form: dict[str, str] = {}
    body: Any = None
    if kind.startswith("application/x-www-form-urlencoded"):
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}
    elif raw:
        try:
            body = json.loads(raw)
        except ValueError:
            raise IdHubError(400, "Invalid JSON: the body is not valid JSON") from None
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Call(request.method, path, dict(request.query_params), headers, body, form, sim.clock.now())


def create_app() -> FastAPI:
    """A fresh simulator with the demo people."""
    sim = IdHubSimulator()
    app = FastAPI(title="IDHub simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim
    install_error_handlers(app, error_body)
    install_simulator_plumbing(app, sim, error_body)

    @app.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
    async def idhub(request: Request, path: str) -> Response:
        call = await _call(sim, request, "/" + path)
        response = sim.answer(call)
        if "/protocol/openid-connect/token" in call.path:
            sim.mask_token_form(call.path)
        return response

    return app
