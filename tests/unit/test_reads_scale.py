"""The summary, the console overview and the dead-letter list are computed by the database (ranks
and aggregates, keyset pages), and give the same numbers the old in-Python computation gave."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from app.domain import CaseState, ItemState
from app.main import create_app
from app.runtime import Runtime, build_runtime
from app.store import reads
from app.store.models import Case, Event, PlanItem
from tests.conftest import OPS_TOKEN, make_settings

AUTH = {"authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = build_runtime(make_settings(database_url, tmp_path))
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def api_get(rt: Runtime, path: str, **params: Any) -> httpx.Response:
    app = create_app(rt, workers=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
        return await api.get(path, params=params, headers=AUTH)


def _ms(rng: random.Random, low: int, high: int) -> timedelta:
    """Whole milliseconds, distinct enough that no two spans tie."""
    return timedelta(milliseconds=rng.randint(low, high))


async def fill(rt: Runtime, people: int, seed: int, state: str = CaseState.DONE) -> list[dict[str, Any]]:
    """Events, one case each, and 1-4 items each, removed (some approved or scheduled), failed or
    kept, spread over the last ten days. Returns the item rows with their event's times."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events, cases, items = [], [], []
    for n in range(people):
        received = now - timedelta(days=rng.uniform(0.2, 10)) - _ms(rng, 0, 10_000)
        effective = received - _ms(rng, -60_000, 60_000)
        events.append(
            {
                "id": f"ev_{seed}_{n:05d}",
                "source": "hr",
                "external_id": f"{seed}-{n}",
                "type": "user.terminated",
                "occurred_at": effective,
                "effective_at": effective,
                "received_at": received,
                "payload": {"user": {"username": f"u{n}"}},
            }
        )
        finished = received + _ms(rng, 1, 3_600_000)
        cases.append(
            {
                "id": n + 1,
                "event_id": events[-1]["id"],
                "target": "iga",
                "state": state,
                "created_at": received,
                "updated_at": finished,
                "finished_at": finished,
            }
        )
        for k in range(rng.randint(1, 4)):
            done = received + _ms(rng, 1, 3_600_000)
            kind = rng.random()
            items.append(
                {
                    "case_id": n + 1,
                    "item_id": f"g{k}",
                    "item_type": "group",
                    "name": f"Group {k}",
                    "action": "remove",
                    "rule": "r",
                    "reason": "r",
                    "state": ItemState.REMOVED if kind < 0.8 else ItemState.FAILED if kind < 0.9 else ItemState.KEPT,
                    "finished_at": done,
                    "updated_at": done,
                    "iga_done_at": done - _ms(rng, 0, 5_000) if rng.random() < 0.5 else None,
                    "approved_at": done if rng.random() < 0.1 else None,
                    "due_at": received + timedelta(hours=1) if rng.random() < 0.1 else None,
                    "_received": received,
                    "_effective": effective,
                }
            )
    if people:
        async with rt.sessions() as session, session.begin():
            await session.execute(insert(Event), events)
            await session.execute(insert(Case), cases)
            rows = [{k: v for k, v in i.items() if not k.startswith("_")} for i in items]
            await session.execute(insert(PlanItem), rows)
    return items


def expected_percentiles(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What `/status/summary` computed in Python before: per done case, effective time to the
    last removed item's `finished_at`; inclusive quantiles."""
    last: dict[int, tuple[datetime, datetime]] = {}
    for i in items:
        if i["state"] == ItemState.REMOVED:
            prev = last.get(i["case_id"])
            if prev is None or i["finished_at"] > prev[0]:
                last[i["case_id"]] = (i["finished_at"], i["_effective"])
    ttr = sorted(max(0.0, (done - eff).total_seconds()) for done, eff in last.values())
    if not ttr:
        return {"p50": None, "p90": None, "p99": None, "max": None, "cases": 0}
    cuts = quantiles(ttr, n=100, method="inclusive") if len(ttr) > 1 else [ttr[0]] * 99
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": ttr[-1], "cases": len(ttr)}


def expected_days(items: list[dict[str, Any]], days: int = 14) -> list[dict[str, Any]]:
    """What the overview chart computed in Python before."""
    per_day: dict[str, list[float]] = {}
    apart: dict[str, int] = {}
    for i in items:
        if i["state"] != ItemState.REMOVED:
            continue
        done = i["iga_done_at"] or i["finished_at"]
        day = done.date().isoformat()
        if i["approved_at"] is not None or (i["due_at"] is not None and i["due_at"] > i["_received"]):
            apart[day] = apart.get(day, 0) + 1
            continue
        per_day.setdefault(day, []).append(max(0.0, (done - i["_received"]).total_seconds()))
    out = []
    for n in range(days, -1, -1):
        day = (datetime.now(UTC) - timedelta(days=n)).date().isoformat()
        values = per_day.get(day, [])
        out.append(
            {
                "day": day,
                "median": median(values) if values else None,
                "worst": max(values) if values else None,
                "count": len(values),
                "apart": apart.get(day, 0),
            }
        )
    return out


@pytest.mark.parametrize("people", [0, 1, 2, 57])
async def test_summary_percentiles_match_the_in_memory_computation(rt: Runtime, people: int) -> None:
    items = await fill(rt, people, seed=people)
    summary = (await api_get(rt, "/status/summary")).json()
    assert summary["time_to_revoke_seconds"] == expected_percentiles(items)
    assert summary["events"] == people


async def test_summary_counts_only_the_most_recent_finished_cases(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    items = await fill(rt, 30, seed=7)
    monkeypatch.setattr(reads, "TTR_WINDOW", 10)
    async with rt.sessions() as session:
        got = await reads.revoke_percentiles(session)
        finished = dict(
            (await session.execute(Case.__table__.select().with_only_columns(Case.id, Case.finished_at))).all()
        )
    window = set(sorted(finished, key=lambda c: finished[c], reverse=True)[:10])
    assert len(window) == 10 and got["cases"] <= 10
    assert got == expected_percentiles([i for i in items if i["case_id"] in window])


async def test_overview_chart_matches_the_in_memory_computation(rt: Runtime) -> None:
    items = await fill(rt, 120, seed=3)
    async with rt.sessions() as session:
        got = await reads.ttr_by_day(session)
    assert got == expected_days(items)
    assert sum(d["count"] for d in got) > 50 and sum(d["apart"] for d in got) > 0
    page = await api_get(rt, "/")
    assert page.status_code == 200


async def test_dead_letters_come_in_keyset_pages_covering_each_once(rt: Runtime) -> None:
    await fill(rt, 7, seed=11, state=CaseState.FAILED)
    async with rt.sessions() as session, session.begin():  # two cases failing at the same instant
        same = datetime.now(UTC)
        await session.execute(Case.__table__.update().where(Case.id.in_((3, 5))).values(updated_at=same))
    first = (await api_get(rt, "/status/dead-letters")).json()
    assert first["next"] is None and len(first["dead_letters"]) == 7
    seen, after = [], None
    while True:
        params = {"limit": 3} | ({"after": after} if after else {})
        page = (await api_get(rt, "/status/dead-letters", **params)).json()
        assert len(page["dead_letters"]) <= 3
        seen += [d["case_id"] for d in page["dead_letters"]]
        after = page["next"]
        if after is None:
            break
    assert seen == [d["case_id"] for d in first["dead_letters"]]
    assert seen[:2] == [5, 3]  # newest first, ties by ID
    bad = await api_get(rt, "/status/dead-letters", after="not-a-cursor")
    assert bad.status_code == 422
