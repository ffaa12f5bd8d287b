"""The evidence report on a history written straight into the database: its rows, SLA breaches,
audit hashes, CSV safety, HTML self-containment, date errors, and that it streams page by page."""

from __future__ import annotations

import csv
import io
import re
import resource
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from app.api import report as api_report
from app.domain import CaseState, ItemState
from app.main import create_app
from app.runtime import Runtime, build_runtime
from app.store import report
from app.store.models import Audit, Case, Event, PlanItem
from tests.conftest import OPS_TOKEN, make_settings

AUTH = {"authorization": f"Bearer {OPS_TOKEN}"}
DAY = datetime(2026, 11, 20, tzinfo=UTC)
RECEIVED = DAY + timedelta(hours=9)


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = build_runtime(
        make_settings(database_url, tmp_path, sla_seconds=3600.0, sla_rules={"privileged-fast": 60.0})
    )
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def get(rt: Runtime, **params: Any) -> httpx.Response:
    app = create_app(rt, workers=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        return await api.get("/status/report", params=params, headers=AUTH)


def _item(case_id: int, n: int, **over: Any) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "item_id": f"g{n}",
        "item_type": "group",
        "name": f"Group {n}",
        "action": "remove",
        "rule": "default-remove",
        "reason": "leaver",
        "state": ItemState.REMOVED,
        "iga_request_id": f"req-{case_id}-{n}",
        "submitted_at": RECEIVED + timedelta(seconds=5),
        "iga_done_at": RECEIVED + timedelta(seconds=30),
        "finished_at": RECEIVED + timedelta(seconds=40),
        "updated_at": RECEIVED,
        **over,
    }


async def seed(rt: Runtime) -> None:
    """Three leavers on 2026-11-20 (one a dry run, one unknown to the IGA) and one the day after."""
    events = [
        {
            "id": f"ev{n}",
            "source": "hr",
            "external_id": f"x{n}",
            "type": "user.terminated",
            "occurred_at": RECEIVED - timedelta(minutes=1),
            "effective_at": RECEIVED - timedelta(minutes=1),
            "received_at": RECEIVED + timedelta(days=n // 4),
            "user_username": f"=u{n}" if n == 1 else f"u{n}",
            "payload": {},
        }
        for n in (1, 2, 3, 4)
    ]
    cases = [
        {"id": n, "event_id": f"ev{n}", "target": "iga", "state": CaseState.DONE, "dry_run": n == 2}
        for n in (1, 2, 3, 4)
    ]
    items = [
        _item(1, 1),  # 30 s: within the hour
        _item(1, 2, rule="privileged-fast", privileged=True),  # 30 s > 60 s? no: within
        _item(1, 3, rule="privileged-fast", iga_done_at=RECEIVED + timedelta(seconds=90)),  # breach of the rule SLA
        _item(1, 4, action="keep", rule="birthright-stays", state=ItemState.KEPT, iga_request_id=None),
        _item(1, 5, state=ItemState.FAILED, iga_done_at=RECEIVED + timedelta(seconds=20), note="still held 30s"),
        _item(1, 6, state=ItemState.SCHEDULED, due_at=RECEIVED + timedelta(days=30), iga_done_at=None),
        _item(1, 7, reason="-cmd|' /C calc'!A0", iga_done_at=RECEIVED + timedelta(hours=2)),  # breach, hostile text
        _item(2, 1, iga_done_at=RECEIVED + timedelta(hours=3)),  # slow, but a dry run never breaches
        _item(4, 1),
    ]
    async with rt.sessions() as session, session.begin():
        await session.execute(insert(Event), events)
        await session.execute(insert(Case), cases)
        await session.execute(insert(PlanItem), items)
        ids = list(await session.scalars(select(PlanItem.id).order_by(PlanItem.id)))
        audit = [
            {"at": RECEIVED, "actor": "worker", "entity": "item", "entity_id": str(i), "event_id": "ev1"}
            | {"case_id": 1, "before": b, "after": a, "why": f"step {b}->{a}"}
            for i in ids
            for b, a in ((None, "planned"), ("planned", "submitted"))
        ]
        audit.append(
            {"at": RECEIVED, "actor": "worker", "entity": "case", "entity_id": "3", "event_id": "ev3", "case_id": 3}
            | {"before": "resolving", "after": "done", "why": "the person is not in this IGA"}
        )
        await session.execute(insert(Audit), audit)
        await session.execute(
            Case.__table__.update().where(Case.id == 3).values(outcome="the person is not in this IGA")
        )


async def test_csv_has_every_item_with_times_rules_and_breaches(rt: Runtime) -> None:
    await seed(rt)
    resp = await get(rt, **{"from": "2026-11-20", "to": "2026-11-20", "format": "csv"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["content-disposition"].startswith("attachment;")
    assert "\r\n" in resp.text  # RFC 4180 line ends
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8"))))
    assert list(rows[0]) == list(report.COLUMNS)
    # Leavers of the 20th only: 7 + 1 item rows, and one row for the case with no items.
    assert sorted({r["event_id"] for r in rows}) == ["ev1", "ev2", "ev3"]
    assert len(rows) == 9
    by = {(r["case_id"], r["item_id"]): r for r in rows}
    first = by[("1", "g1")]
    assert first["received_at"] == "2026-11-20T09:00:00Z" and first["occurred_at"] == "2026-11-20T08:59:00Z"
    assert first["iga_request_id"] == "req-1-1" and first["submitted_at"] == "2026-11-20T09:00:05Z"
    assert float(first["time_to_revoke_seconds"]) == 30.0 and first["breach"] == "false"
    assert by[("1", "g2")]["breach"] == "false" and by[("1", "g2")]["sla_seconds"] == "60.0"
    assert by[("1", "g3")]["breach"] == "true"
    assert by[("1", "g7")]["breach"] == "true"
    assert by[("1", "g4")]["action"] == "keep" and by[("1", "g4")]["rule"] == "birthright-stays"
    assert by[("1", "g5")]["still_held_after_verify"] == "true" and by[("1", "g5")]["breach"] == "true"
    assert by[("1", "g6")]["due_at"] == "2026-12-20T09:00:00Z" and by[("1", "g6")]["breach"] == "false"
    assert by[("2", "g1")]["dry_run"] == "true" and by[("2", "g1")]["breach"] == "false"
    assert by[("3", "")]["note"] == "the person is not in this IGA"
    # Formula injection: a cell a spreadsheet would evaluate starts with a quote.
    assert first["user"] == "'=u1"
    assert by[("1", "g7")]["reason"] == "'-cmd|' /C calc'!A0"


async def test_audit_hash_is_sha256_of_the_items_audit_rows(rt: Runtime) -> None:
    await seed(rt)
    doc = (await get(rt, **{"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"})).json()
    async with rt.sessions() as session:
        item_id = await session.scalar(select(PlanItem.id).where(PlanItem.item_id == "g3", PlanItem.case_id == 1))
        trail = list(
            await session.scalars(
                select(Audit).where(Audit.entity == "item", Audit.entity_id == str(item_id)).order_by(Audit.id)
            )
        )
    row = next(r for r in doc["rows"] if r["case_id"] == 1 and r["item_id"] == "g3")
    assert len(trail) == 2 and row["audit_sha256"] == report.audit_hash(trail)
    other = next(r for r in doc["rows"] if r["case_id"] == 1 and r["item_id"] == "g1")
    assert other["audit_sha256"] != row["audit_sha256"]
    totals = doc["totals"]
    assert totals["leavers"] == 3 and totals["cases"] == 3 and totals["dry_run_cases"] == 1
    # g3 and g7 were slow; g5 is still held long after the SLA ran out.
    assert totals["breaches"] == 3 and totals["breaches_by"] == {"iga / privileged-fast": 1, "iga / default-remove": 2}
    assert totals["still_held_after_verify"] == 1 and totals["scheduled"] == 1 and totals["kept"] == 1


async def test_html_is_one_self_contained_file_with_chart_and_breaches(rt: Runtime) -> None:
    await seed(rt)
    resp = await get(rt, **{"from": "2026-11-20", "to": "2026-11-21", "format": "html", "target": "iga"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    assert "<svg" in page and "<script" not in page.lower()
    assert not re.search(r"(https?:)?//|src=|<link|@import|url\(", page, re.IGNORECASE)
    assert "DRY RUN" in page and "still held after verify" in page
    assert page.count('class="breach"') == 6  # three in the breaches table, the same three among the rows
    assert "Leavers</dt><dd>4" in page  # the 21st is inside this period


async def test_bad_dates_are_problems(rt: Runtime) -> None:
    for params in ({"from": "yesterday", "to": "2026-11-20"}, {"from": "2026-11-21", "to": "2026-11-20"}):
        resp = await get(rt, **params)
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
    resp = await get(rt, **{"from": "2026-11-20", "to": "2026-11-20", "format": "pdf"})
    assert resp.status_code == 422
    app = create_app(rt, workers=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        assert (await api.get("/status/report", params={"from": "2026-11-20", "to": "2026-11-20"})).status_code == 401


async def bulk(rt: Runtime, people: int, items_each: int) -> None:
    events = [
        {
            "id": f"b{n}",
            "source": "hr",
            "external_id": f"b{n}",
            "type": "user.terminated",
            "occurred_at": RECEIVED,
            "effective_at": RECEIVED,
            "received_at": RECEIVED + timedelta(seconds=n),
            "payload": {},
        }
        for n in range(people)
    ]
    cases = [{"id": n + 1, "event_id": f"b{n}", "target": "iga", "state": CaseState.DONE} for n in range(people)]
    async with rt.sessions() as session, session.begin():
        await session.execute(insert(Event), events)
        await session.execute(insert(Case), cases)
        for start in range(0, people, 1000):
            rows = [_item(c + 1, k) for c in range(start, min(people, start + 1000)) for k in range(items_each)]
            await session.execute(insert(PlanItem), rows)


async def test_csv_streams_in_chunks_a_page_at_a_time(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    await bulk(rt, 300, 4)
    monkeypatch.setattr(report, "PAGE", 50)
    period = api_report.period_of("2026-11-20", "2026-11-20", None)
    chunks = [c async for c in api_report.csv_body(rt, period, report.Sla())]
    assert len(chunks) == 1200 // api_report.CHUNK + 1
    assert sum(c.count("\r\n") for c in chunks) == 1201


@pytest.mark.slow
async def test_100k_items_stream_in_bounded_memory(rt: Runtime) -> None:
    """Run with `-m slow` (about 30 s): writing 100,000 rows does not grow the process's peak
    memory by anything like what holding them would take (well over 100 MB)."""
    await bulk(rt, 25_000, 4)
    period = api_report.period_of("2026-11-20", "2026-11-21", None)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lines = 0
    async for chunk in api_report.csv_body(rt, period, report.Sla()):
        lines += chunk.count("\r\n")
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert lines == 100_001
    assert grown_kb < 30 * 1024, grown_kb
