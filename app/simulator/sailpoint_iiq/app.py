"""The IdentityIQ simulator as an ASGI app: the shared plumbing (log, faults, clock, control
routes, probes), the OAuth2 token endpoint, and the SCIM routes under `/identityiq/scim/v2`."""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app.simulator.base import install_error_handlers, install_simulator_plumbing
from app.simulator.sailpoint_iiq.scim import (
    SAILPOINT_USER,
    ScimError,
    error_body,
    invalid_value,
    list_response,
    parse_filter,
    project,
    sort_docs,
)
from app.simulator.sailpoint_iiq.simulator import LAUNCH_RIGHT, ROOT, SCIM, IiqSimulator

SCIM_JSON = "application/scim+json"
#: Attributes of a User returned only when asked for (contract §4).
BY_REQUEST = [(SAILPOINT_USER, "roles"), (SAILPOINT_USER, "entitlements"), (SAILPOINT_USER, "accounts")]
USER_FIELDS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "userName": lambda d: [d.get("userName")],
    "displayName": lambda d: [d.get("displayName")],
    "active": lambda d: [d.get("active")],
    "emails.value": lambda d: [e.get("value") for e in d.get("emails") or []],
    "emails": lambda d: [e.get("value") for e in d.get("emails") or []],
    "empId": lambda d: [(d.get(SAILPOINT_USER) or {}).get("empId")],
    "name.familyName": lambda d: [(d.get("name") or {}).get("familyName")],
    "name.givenName": lambda d: [(d.get("name") or {}).get("givenName")],
}
TASK_FIELDS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "name": lambda d: [d.get("name")],
    "completed": lambda d: [d.get("completed")],
    "completionStatus": lambda d: [d.get("completionStatus")],
}
LAUNCH_FILTERS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "targetName": lambda d: [d.get("targetName")],
    "launcher": lambda d: [d.get("launcher")],
    "launched": lambda d: [d.get("launched")],
}


def scim(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=SCIM_JSON)


def create_app() -> FastAPI:
    """A fresh simulator with the demo people."""
    sim = IiqSimulator()
    app = FastAPI(title="SailPoint IdentityIQ simulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sim = sim
    install_error_handlers(app, error_body, invalid_value)
    install_simulator_plumbing(app, sim, error_body)

    def base(request: Request) -> str:
        url = str(request.url)
        return url[: url.index(SCIM) + len(SCIM)]

    def caller(request: Request) -> str:
        return sim.authenticate(request.headers.get("authorization"))

    @app.get("/_state/plans", include_in_schema=False)
    def plans() -> list[dict[str, Any]]:
        with sim.lock:
            return list(sim.plans)

    @app.post(f"{ROOT}/oauth2/token", include_in_schema=False)
    async def token(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        grant = (form.get("grant_type") or [request.query_params.get("grant_type", "")])[-1]
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        client_id, secret = "", ""
        if scheme.casefold() == "basic":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                client_id, _, secret = base64.b64decode(value).decode().partition(":")
        with sim.lock:
            issued = sim.issue_token(client_id, secret) if grant == "client_credentials" else None
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if issued is None:
            return Response(status_code=401)  # IIQ's body here is not SCIM (contract §2)
        return JSONResponse(issued, headers={"Cache-Control": "no-store"})

    @app.get(f"{SCIM}/ServiceProviderConfig", include_in_schema=False)
    def provider_config(request: Request) -> Response:
        return scim(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "patch": {"supported": False},
                "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
                "filter": {"supported": True, "maxResults": sim.config.page_size_max},
                "changePassword": {"supported": False},
                "sort": {"supported": True},
                "etag": {"supported": False},
                "authenticationSchemes": [
                    {"type": "httpbasic", "name": "HTTP Basic", "description": "Basic authentication", "primary": True},
                    {
                        "type": "oauthbearertoken",
                        "name": "OAuth Bearer Token",
                        "description": "OAuth2 client credentials",
                    },
                ],
            }
        )

    @app.get(f"{SCIM}/Users", include_in_schema=False)
    def users(request: Request) -> Response:
        caller(request)
        with sim.lock:
            now, params = sim.tick(), dict(request.query_params)
            docs = [
                sim.directory.user(i, base(request), now, sim.lag, sim.config.expose_assignment_ids)
                for i in sim.directory.identities.values()
            ]
            return scim(_listing(docs, params, USER_FIELDS, sim.config.page_size_max, BY_REQUEST))

    @app.get(f"{SCIM}/Users/{{user_id}}", include_in_schema=False)
    def user(request: Request, user_id: str) -> Response:
        caller(request)
        with sim.lock:
            now, params = sim.tick(), dict(request.query_params)
            ident = sim.identity(user_id, params.get("lookupByName", "").casefold() == "true")
            doc = sim.directory.user(ident, base(request), now, sim.lag, sim.config.expose_assignment_ids)
            return scim(project(doc, params, BY_REQUEST))

    @app.get(f"{SCIM}/Accounts", include_in_schema=False)
    def accounts(request: Request) -> Response:
        caller(request)
        with sim.lock:
            now, params = sim.tick(), dict(request.query_params)
            if not sim.config.account_owner_filter:
                sim.refuse_unsupported(params.get("filter", ""), ("identity.value",))
            docs = [
                sim.directory.account_doc(a, i, base(request), now, sim.lag)
                for i in sim.directory.identities.values()
                for a in i.accounts
                if a.listed(now, sim.lag)
            ]
            return scim(_listing(docs, params, sim.account_fields(), sim.config.page_size_max))

    @app.get(f"{SCIM}/Accounts/{{account_id}}", include_in_schema=False)
    def account(request: Request, account_id: str) -> Response:
        caller(request)
        with sim.lock:
            now = sim.tick()
            for ident in sim.directory.identities.values():
                for acct in ident.accounts:
                    if acct.id == account_id and acct.listed(now, sim.lag):
                        doc = sim.directory.account_doc(acct, ident, base(request), now, sim.lag)
                        return scim(project(doc, dict(request.query_params)))
        raise ScimError(404, f"Resource {account_id} not found")

    @app.get(f"{SCIM}/Entitlements/{{entitlement_id}}", include_in_schema=False)
    def entitlement(request: Request, entitlement_id: str) -> Response:
        caller(request)
        with sim.lock:
            ent = sim.directory.entitlements.get(entitlement_id)
            if ent is None:
                raise ScimError(404, f"Resource {entitlement_id} not found")
            return scim(
                project(sim.directory.entitlement_doc(ent, base(request), sim.seeded), dict(request.query_params))
            )

    @app.get(f"{SCIM}/Roles/{{role_id}}", include_in_schema=False)
    def role(request: Request, role_id: str) -> Response:
        caller(request)
        with sim.lock:
            by_name = request.query_params.get("lookupByName", "").casefold() == "true"
            found = sim.directory.role_named(role_id) if by_name else sim.directory.roles.get(role_id)
            if found is None:
                raise ScimError(404, f"Resource {role_id} not found")
            return scim(project(sim.directory.role_doc(found, base(request), sim.seeded), dict(request.query_params)))

    @app.post(f"{SCIM}/LaunchedWorkflows", include_in_schema=False)
    async def launch(request: Request) -> Response:
        user = caller(request)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise ScimError(400, "Unable to parse the request body as JSON", "invalidSyntax") from None

        with sim.lock:
            sim.require(user, LAUNCH_RIGHT)
            sim.tick()
            return scim(sim.launch(body, user, base(request)), 201)

    @app.get(f"{SCIM}/LaunchedWorkflows", include_in_schema=False)
    def launched_list(request: Request) -> Response:
        caller(request)
        with sim.lock:
            now, params = sim.tick(), dict(request.query_params)
            if not sim.config.launch_filters:
                sim.refuse_unsupported(params.get("filter", ""), tuple(LAUNCH_FILTERS))
            docs = [
                sim.launch_of(i, now).launched(base(request), now, sim.config.attributes_as_object)
                for i in list(sim.launches)
                if _alive(sim, i, now)
            ]
            return scim(_listing(docs, params, {**TASK_FIELDS, **LAUNCH_FILTERS}, sim.config.page_size_max))

    def one_launch(request: Request, launch_id: str) -> Response:
        caller(request)
        with sim.lock:
            now = sim.tick()
            doc = sim.launch_of(launch_id, now).launched(base(request), now, sim.config.attributes_as_object)
            return scim(project(doc, dict(request.query_params)))

    app.get(f"{SCIM}/LaunchedWorkflows/{{launch_id}}", include_in_schema=False)(one_launch)
    app.get(f"{SCIM}/LaunchedWorkflow/{{launch_id}}", include_in_schema=False)(one_launch)

    @app.get(f"{SCIM}/TaskResults", include_in_schema=False)
    def task_results(request: Request) -> Response:
        caller(request)
        with sim.lock:
            now, params = sim.tick(), dict(request.query_params)
            docs = [
                sim.launch_of(i, now).task_result(base(request), now, sim.config.attributes_as_object)
                for i in list(sim.launches)
                if _alive(sim, i, now)
            ]
            return scim(_listing(docs, params, TASK_FIELDS, sim.config.page_size_max))

    @app.get(f"{SCIM}/TaskResults/{{task_id}}", include_in_schema=False)
    def task_result(request: Request, task_id: str) -> Response:
        caller(request)
        with sim.lock:
            now = sim.tick()
            doc = sim.launch_of(task_id, now).task_result(base(request), now, sim.config.attributes_as_object)
            return scim(project(doc, dict(request.query_params)))

    @app.api_route(f"{SCIM}/{{rest:path}}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(request: Request, rest: str) -> Response:
        caller(request)
        raise ScimError(404, f"The resource type {rest.split('/', 1)[0]} is not supported")

    return app


def _alive(sim: IiqSimulator, launch_id: str, now: float) -> bool:
    try:
        sim.launch_of(launch_id, now)
    except ScimError:
        return False
    return True


def _listing(
    docs: list[dict[str, Any]],
    params: dict[str, str],
    fields: Any,
    page_max: int,
    by_request: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Filter, sort, page, then project each resource of the page."""
    if params.get("filter"):
        matches = parse_filter(params["filter"], fields)
        docs = [d for d in docs if matches(d)]
    page = list_response(sort_docs(docs, params), params, page_max)
    page["Resources"] = [project(d, params, by_request or []) for d in page["Resources"]]
    return page
