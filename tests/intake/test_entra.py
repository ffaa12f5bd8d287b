"""Entra ID Lifecycle Workflows: the custom task extension's call (through its Logic App) with a
static secret or an Entra token, and the callback that resumes the workflow once the case is
done, against a local stand-in for the Microsoft identity platform and Graph."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app.intake.entra_resume import _outcome
from app.main import create_app
from app.runtime import build_runtime
from app.settings import IntakeSource
from tests.conftest import make_settings
from tests.intake.conftest import DOWN, ENTRA_SECRET, SOURCES, TARGETS, Intake, KeyServer, stored
from tests.servers import serve_in_thread
from tests.support import FIRST_SYSTEM, serve_simulator

AUTH = {"authorization": f"Bearer {ENTRA_SECRET}"}
TENANT = "8f1c2d3e-0000-4000-8000-00000000abcd"
LEAVER_APP = "api://leaver"
LOGIC_APP = "5b2f0a3c-1111-4000-8000-000000000001"


def task_call(user: str = "jdoe", *, result_id: str | None = None, **data: Any) -> dict[str, Any]:
    """The body a custom task extension sends (intake-formats.md §5a), as its Logic App forwards it."""
    wf, task, result = "1f0c8b6a-aaaa-4000-8000-000000000001", "2e1d9c7b-bbbb-4000-8000-000000000002", result_id
    result = result or str(uuid.uuid4())
    body: dict[str, Any] = {
        "type": "lifecycleEvent",
        "source": f"/tenants/{TENANT}/applications/00000003-0000-0000-c000-000000000000",
        "data": {
            "callbackUriPath": f"/identityGovernance/lifecycleWorkflows/workflows/{wf}/tasks/{task}"
            f"/taskProcessingResults/{result}/resume",
            "subject": {
                "id": "ea09ac2e-77e3-4134-85f2-25ccf3c33387",
                "displayName": "J Doe",
                "email": f"{user}@example.com",
                "userPrincipalName": user,
                "manager": None,
            },
            "task": {"id": task, "displayName": "Run leaver"},
            "taskProcessingResult": {"id": result, "createdDateTime": "2026-11-20T17:00:00Z"},
            "workflow": {"id": wf, "displayName": "Real-time employee termination", "workflowVersion": 1},
        },
    }
    body["data"].update(data)
    return body


async def test_the_task_call_is_stored_once_as_a_termination(intake: Intake) -> None:
    client, rt = await intake(SOURCES["entra"])
    body = task_call()
    first = await client.post("/webhooks/entra", json=body, headers=AUTH)
    assert first.status_code == 202 and first.json()["duplicate"] is False
    again = await client.post("/webhooks/entra", json=body, headers=AUTH)  # the Logic App retries
    assert again.status_code == 200 and again.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    (event,) = await stored(rt)
    assert (event["type"], event["format"], event["cases"]) == ("user.terminated", "entra", 1)
    assert event["external_id"] == body["data"]["taskProcessingResult"]["id"]
    assert event["user"] == {"username": "jdoe", "email": "jdoe@example.com"}
    assert event["attributes"]["entra"]["callbackUriPath"] == body["data"]["callbackUriPath"]


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("no subject id", task_call(subject={"displayName": "x"}), 422),
        ("no task processing result", task_call(taskProcessingResult=None), 422),
        ("a callback outside Lifecycle Workflows", task_call(callbackUriPath="/users/ea09/revokeSignInSessions"), 422),
        ("a callback to another host", task_call(callbackUriPath="https://evil.example/resume"), 422),
        ("not an object", [1], 422),
    ],
)
async def test_bad_task_calls_are_refused_and_store_nothing(intake: Intake, name: str, body: Any, status: int) -> None:
    client, rt = await intake(SOURCES["entra"])
    resp = await client.post("/webhooks/entra", json=body, headers=AUTH)
    assert resp.status_code == status and resp.headers["content-type"] == "application/problem+json", name
    assert await stored(rt) == []


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer nope-0123456789abcdef"}])
async def test_a_caller_without_the_secret_is_refused(intake: Intake, headers: dict[str, str]) -> None:
    client, rt = await intake(SOURCES["entra"])
    resp = await client.post("/webhooks/entra", json=task_call(), headers=headers)
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert await stored(rt) == []


def entra_token(keys: KeyServer, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://sts.windows.net/{TENANT}/",
        "aud": LEAVER_APP,
        "appid": LOGIC_APP,
        "oid": LOGIC_APP,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": TENANT,
    }
    claims.update(changes)
    return keys.sign(claims, typ="JWT")


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-6]}AAAAAA"


async def test_a_managed_identity_token_of_the_logic_app_is_accepted(intake: Intake, key_server: KeyServer) -> None:
    jwt = {
        "issuer": f"https://sts.windows.net/{TENANT}/",
        "audience": LEAVER_APP,
        "jwks_uri": key_server.jwks_uri,
        "allowed_apps": [LOGIC_APP],
    }
    source = {"name": "entra-lcw", "format": "entra", "options": {"resume": "never", "jwt": jwt}}
    client, rt = await intake(source)
    ok = await client.post(
        "/webhooks/entra", json=task_call(), headers={"authorization": f"Bearer {entra_token(key_server)}"}
    )
    assert ok.status_code == 202, ok.text
    for bad in [
        entra_token(key_server, aud="api://someone-else"),
        entra_token(key_server, exp=int(time.time()) - 600),
        entra_token(key_server, appid="another-app", oid="another-app"),
        entra_token(key_server, iss="https://sts.windows.net/other-tenant/"),
        tampered(entra_token(key_server)),
    ]:
        resp = await client.post("/webhooks/entra", json=task_call(), headers={"authorization": f"Bearer {bad}"})
        assert resp.status_code == 401
    assert len(await stored(rt)) == 1


async def test_a_database_that_is_down_answers_503(intake: Intake) -> None:
    client, _ = await intake(SOURCES["entra"], db=DOWN)
    resp = await client.post("/webhooks/entra", json=task_call(), headers=AUTH)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"


def test_the_outcome_told_to_the_workflow() -> None:
    assert _outcome(["done", "cancelled"], "done") == "Completed"
    assert _outcome(["done", "failed"], "done") == "Failed"
    assert _outcome(["done", "tracking"], "done") is None
    assert _outcome([], "done") is None
    assert _outcome(["received"], "accepted") == "Completed"


@dataclass
class Graph:
    """The token endpoint and the Graph resume action, recording what leaver sent."""

    url: str = ""
    tokens: list[dict[str, str]] = field(default_factory=list)
    resumed: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def graph() -> Iterator[Graph]:
    seen = Graph()
    app = FastAPI()

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        seen.tokens.append(dict(await request.form()))  # type: ignore[arg-type]
        return JSONResponse({"access_token": "graph-access-token", "token_type": "Bearer", "expires_in": 3599})

    @app.post(
        "/v1.0/identityGovernance/lifecycleWorkflows/workflows/{wf}/tasks/{task}/taskProcessingResults/{r}/resume"
    )
    async def resume(wf: str, task: str, r: str, request: Request) -> Response:
        seen.resumed.append({"result": r, "auth": request.headers.get("authorization"), "body": await request.json()})
        return Response(status_code=204)

    with serve_in_thread(app) as url:
        seen.url = url
        yield seen


def _resuming_source(graph: Graph, resume: str) -> IntakeSource:
    return IntakeSource.model_validate(
        {
            **SOURCES["entra"],
            "options": {
                "resume": resume,
                "tenant_id": TENANT,
                "client_id": "leaver-graph-app",
                "client_secret": "graph-app-secret-0123456789",
                "graph_url": f"{graph.url}/v1.0",
                "token_url": f"{graph.url}/{TENANT}/oauth2/v2.0/token",
                "resume_poll_seconds": 0.2,
            },
        }
    )


def _wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_workflow_is_resumed_once_the_case_is_done(graph: Graph, database_url: str, tmp_path: Path) -> None:
    with serve_simulator(FIRST_SYSTEM) as sim:
        settings = make_settings(
            database_url, tmp_path, [sim.target(attempts=3)], sources=[_resuming_source(graph, "done")]
        )
        with serve_in_thread(create_app(build_runtime(settings))) as url, httpx.Client(timeout=30) as http:
            body = task_call("jdoe")
            accepted = http.post(f"{url}/webhooks/entra", json=body, headers=AUTH)
            assert accepted.status_code == 202
            _wait(lambda: graph.resumed)
            status = http.get(
                f"{url}/status/events/{accepted.json()['event_id']}",
                headers={"authorization": "Bearer test-ops-token-0123456789"},
            ).json()
            assert [c["state"] for c in status["cases"]] == ["done"]
            assert sim.submissions(), "the access was removed before the workflow went on"
            time.sleep(0.6)  # a few more rounds: still resumed once
    (call,) = graph.resumed
    assert call["result"] == body["data"]["taskProcessingResult"]["id"]
    assert call["auth"] == "Bearer graph-access-token"
    assert call["body"] == {"data": {"operationStatus": "Completed"}, "source": "leaver", "type": "lifecycleEvent"}
    assert graph.tokens[0]["grant_type"] == "client_credentials" and graph.tokens[0]["client_id"] == "leaver-graph-app"


def test_resume_accepted_goes_on_as_soon_as_the_event_is_stored(
    graph: Graph, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, TARGETS, sources=[_resuming_source(graph, "accepted")], workers=0)
    with serve_in_thread(create_app(build_runtime(settings), workers=0)) as url, httpx.Client(timeout=30) as http:
        assert http.post(f"{url}/webhooks/entra", json=task_call(), headers=AUTH).status_code == 202
        _wait(lambda: graph.resumed, timeout=10)
    assert graph.resumed[0]["body"]["data"] == {"operationStatus": "Completed"}
