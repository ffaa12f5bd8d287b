"""The webhook: 2xx only after commit, exactly once, and bad input changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.runtime import Runtime, build_runtime
from app.settings import Settings, TargetSettings
from app.simulator import simulator_spec
from tests.conftest import OPS_TOKEN, make_settings
from tests.support import FIRST_SYSTEM, event_body, row_counts, signed

#: Changes a signed delivery (body, headers) before it is sent.
Mutation = Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]

TARGETS: list[TargetSettings] = [
    simulator_spec(FIRST_SYSTEM).demo_target("http://127.0.0.1:9/none", name) for name in ("iga-prod", "iga-test")
]


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(database_url, tmp_path, TARGETS, workers=0))
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(rt, workers=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leaver") as c:
        yield c


async def post(client: httpx.AsyncClient, body: dict[str, object] | bytes, **kw: object) -> httpx.Response:
    raw, headers = signed(body, **kw)  # type: ignore[arg-type]
    return await client.post("/webhooks/events", content=raw, headers=headers)


async def test_accepted_event_is_committed_with_a_case_and_job_per_target(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    resp = await post(client, event_body(target="iga-prod"))
    assert resp.status_code == 202
    assert resp.json()["duplicate"] is False
    assert resp.json()["event_id"].startswith("ev_")
    counts = await row_counts(rt)
    assert (counts["events"], counts["cases"], counts["jobs"]) == (1, 1, 1)

    resp = await post(client, event_body())  # no target: every configured target
    assert resp.status_code == 202
    counts = await row_counts(rt)
    assert (counts["events"], counts["cases"], counts["jobs"]) == (2, 3, 3)


async def test_redelivery_by_webhook_id_or_event_id_is_stored_once(client: httpx.AsyncClient, rt: Runtime) -> None:
    body = event_body(event_id="evt-123")
    first = await post(client, body, msg_id="msg_one")
    again_same_msg = await post(client, body, msg_id="msg_one")
    again_new_msg = await post(client, body, msg_id="msg_two")
    assert first.status_code == 202
    for resp in (again_same_msg, again_new_msg):
        assert resp.status_code == 200
        assert resp.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    assert (await row_counts(rt))["events"] == 1


async def test_concurrent_duplicates_store_one_event(client: httpx.AsyncClient, rt: Runtime) -> None:
    body = event_body(event_id="evt-race")
    raw, headers = signed(body, msg_id="msg_race")
    answers = await asyncio.gather(*[client.post("/webhooks/events", content=raw, headers=headers) for _ in range(8)])
    codes = sorted(a.status_code for a in answers)
    assert codes.count(202) == 1 and codes.count(200) == 7
    assert len({a.json()["event_id"] for a in answers}) == 1
    assert (await row_counts(rt))["events"] == 1


@pytest.mark.parametrize(
    ("mutate", "status", "detail"),
    [
        (
            lambda raw, h: (raw, {**h, "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
            401,
            "signature",
        ),
        (lambda raw, h: (raw, {k: v for k, v in h.items() if k != "webhook-signature"}), 401, "missing"),
        (lambda raw, h: (raw + b" ", h), 401, "signature"),
        (lambda raw, h: (raw, {**h, "content-type": "text/plain"}), 415, "application/json"),
    ],
)
async def test_refused_requests_leave_no_row(
    client: httpx.AsyncClient, rt: Runtime, mutate: Mutation, status: int, detail: str
) -> None:
    raw, headers = signed(event_body())
    raw, headers = mutate(raw, headers)
    resp = await client.post("/webhooks/events", content=raw, headers=headers)
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert detail in resp.json()["detail"]
    assert (await row_counts(rt))["events"] == 0


async def test_stale_signature_is_refused(client: httpx.AsyncClient, rt: Runtime) -> None:
    import time

    resp = await post(client, event_body(), timestamp=int(time.time()) - 600)
    assert resp.status_code == 401
    assert "too old" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 422, "not valid JSON"),
        (json.dumps({"id": "x", "type": "user.terminated"}).encode(), 422, "not valid"),
        (json.dumps(event_body(type_="user.promoted")).encode(), 422, "not valid"),
        (json.dumps({**event_body(), "user": {}}).encode(), 422, "not valid"),
        (json.dumps({**event_body(), "occurred_at": "2026-11-20T17:00:00"}).encode(), 422, "not valid"),
        (json.dumps(event_body(target="nope")).encode(), 422, "unknown target 'nope'"),
    ],
)
async def test_bad_events_get_a_clear_4xx_and_change_nothing(
    client: httpx.AsyncClient, rt: Runtime, body: bytes, status: int, fragment: str
) -> None:
    resp = await post(client, body)
    assert resp.status_code == status, resp.text
    problem = resp.json()
    assert problem["status"] == status and fragment in problem["detail"]
    assert await row_counts(rt) == {"events": 0, "cases": 0, "jobs": 0, "plan_items": 0, "iga_requests": 0, "audit": 0}


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    resp = await post(client, {**event_body(), "type": "user.promoted"})
    assert any(e["loc"] == ["type"] for e in resp.json()["errors"])


async def test_oversized_body_is_refused(client: httpx.AsyncClient, rt: Runtime) -> None:
    body = event_body(attributes={"blob": "x" * (300 * 1024)})
    resp = await post(client, body)
    assert resp.status_code == 413
    assert (await row_counts(rt))["events"] == 0


async def test_envelope_with_data_is_accepted(client: httpx.AsyncClient) -> None:
    resp = await post(client, {"type": "user.terminated", "timestamp": "2026-11-20T17:00:00Z", "data": event_body()})
    assert resp.status_code == 202


async def test_database_down_answers_503_with_retry_after(tmp_path: Path) -> None:
    settings: Settings = make_settings("postgresql+asyncpg://leaver@127.0.0.1:1/leaver", tmp_path, TARGETS, workers=0)
    runtime = build_runtime(settings)
    app = create_app(runtime, workers=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leaver") as c:
        resp = await post(c, event_body())
        ready = await c.get("/readyz")
    await runtime.aclose()
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "5"
    assert ready.status_code == 503


async def test_status_and_ops_need_the_ops_token(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/status/summary"),
        ("GET", "/status/dead-letters"),
        ("GET", "/"),
        ("POST", "/ops/cases/1/retry"),
        ("GET", "/status/events/ev_x"),
    ]:
        resp = await client.request(method, path)
        assert resp.status_code == 401, path
        assert resp.headers["content-type"].startswith("application/problem+json")
        wrong = await client.request(method, path, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
    ok = await client.get("/status/summary", headers={"authorization": f"Bearer {OPS_TOKEN}"})
    assert ok.status_code == 200
    missing = await client.get("/status/events/ev_x", headers={"authorization": f"Bearer {OPS_TOKEN}"})
    assert missing.status_code == 404
    assert (await client.get("/healthz")).status_code == 200
