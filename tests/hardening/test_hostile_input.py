"""Signed but hostile bodies and out-of-range IDs: each gets a clear 4xx problem document and
changes nothing; a database that cannot be reached is a 503 with Retry-After on every route, never
a plain 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.runtime import Runtime, build_runtime
from app.settings import Settings, TargetSettings
from tests.conftest import OPS_TOKEN, make_settings
from tests.support import row_counts, signed

TARGETS = [TargetSettings(name="iga", system="netiq-ig", base_url="http://127.0.0.1:9/unused")]
AUTH = {"authorization": f"Bearer {OPS_TOKEN}"}


def event(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "evt-hostile",
        "type": "user.terminated",
        "occurred_at": "2026-11-20T17:00:00Z",
        "source": "idm",
        "user": {"username": "jdoe"},
    }
    body.update(changes)
    return body


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


HOSTILE: dict[str, bytes] = {
    "nested 300 levels": json.dumps(event()).replace('"source"', f'"attributes": {nested(300)}, "source"').encode(),
    "nested 33 levels": json.dumps(event()).replace('"source"', f'"attributes": {nested(33)}, "source"').encode(),
    "date that overflows in UTC": json.dumps(event(occurred_at="9999-12-31T23:00:00-14:00")).encode(),
    "date before 2000": json.dumps(event(occurred_at="0001-01-01T00:00:00Z")).encode(),
    "NUL in a string": json.dumps(event(source="idm\u0000x")).encode(),
    "control character in a key": json.dumps(event(attributes={"a\u0007": 1})).encode(),
    "duplicate keys": b'{"id":"e","type":"user.terminated","type":"user.enabled","occurred_at":"2026-11-20T17:00:00Z",'
    b'"user":{"username":"jdoe"}}',
    "NaN": json.dumps(event(attributes={"x": float("nan")})).encode(),
    "Infinity": json.dumps(event(attributes={"x": float("inf")})).encode(),
    "only empty user ids": json.dumps(event(user={"ids": {"iga": ""}})).encode(),
    "only ids of an unknown target": json.dumps(event(user={"ids": {"elsewhere": "u-1"}})).encode(),
}


@pytest.fixture
async def rt(settings: Settings, database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(database_url, tmp_path, TARGETS))
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def api(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(rt, workers=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leaver.test") as client:
        yield client


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_a_hostile_body_is_refused_and_stores_nothing(name: str, api: httpx.AsyncClient, rt: Runtime) -> None:
    before = await row_counts(rt)
    raw, headers = signed(HOSTILE[name])
    resp = await api.post("/webhooks/events", content=raw, headers=headers)
    assert resp.status_code == 422, (name, resp.status_code, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == 422 and resp.json()["detail"]
    assert await row_counts(rt) == before


@pytest.mark.parametrize(
    "path", ["/ops/cases/99999999999999999999/retry", "/ops/cases/0/cancel", "/ops/items/2147483648/approve"]
)
async def test_an_id_beyond_the_database_range_is_a_422(path: str, api: httpx.AsyncClient) -> None:
    resp = await api.post(path, headers=AUTH)
    assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"


async def test_an_unreachable_database_is_a_503_on_every_route(tmp_path: Path) -> None:
    settings = make_settings("postgresql+asyncpg://leaver@127.0.0.1:9/none", tmp_path, TARGETS)
    rt = build_runtime(settings)
    app = create_app(rt, workers=0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leaver.test") as api:
            raw, headers = signed(json.dumps(event()).encode())
            answers = [
                await api.get("/status/summary", headers=AUTH),
                await api.get("/status/events/ev_x", headers=AUTH),
                await api.get("/status/users/jdoe", headers=AUTH),
                await api.get("/status/dead-letters", headers=AUTH),
                await api.get("/", headers=AUTH),
                await api.post("/ops/cases/1/retry", headers=AUTH),
                await api.post("/webhooks/events", content=raw, headers=headers),
                await api.get("/readyz"),
            ]
    finally:
        await rt.aclose()
    for resp in answers:
        assert resp.status_code == 503, (resp.request.url.path, resp.status_code, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert "retry-after" in resp.headers
