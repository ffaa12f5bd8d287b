"""Pacing IGA calls: any rate works, including below one call per second, and on PostgreSQL one
budget per target is shared by every worker process (each call takes the next free slot)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from app.iga.http import HttpPolicy, IgaHttp, LocalPacer
from app.runtime import Runtime, build_runtime
from app.settings import Settings
from app.store.budget import SharedPacer


@pytest.mark.parametrize("rate", [0.2, 0.5, 1.0, 2.5, 100.0])
async def test_the_first_call_goes_at_any_rate(rate: float) -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, json={})

    http = IgaHttp(
        "t", "http://iga.test", policy=HttpPolicy(requests_per_second=rate), transport=httpx.MockTransport(answer)
    )
    try:
        resp = await asyncio.wait_for(http.request("GET", "/ping"), timeout=5)
    finally:
        await http.aclose()
    assert resp.status_code == 200 and calls == ["/ping"]


async def test_a_slow_local_pacer_holds_the_second_call_back() -> None:
    pacer = LocalPacer(0.5)
    await asyncio.wait_for(pacer.wait(), timeout=1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pacer.wait(), timeout=0.3)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


@pytest.mark.postgres  # the shared budget is PostgreSQL's: one SQLite process paces itself
async def test_two_processes_share_one_budget_per_target(rt: Runtime) -> None:
    first = SharedPacer(rt.sessions, "iga", rate=10.0)
    second = SharedPacer(rt.sessions, "iga", rate=10.0)  # another worker process
    other = SharedPacer(rt.sessions, "other-iga", rate=10.0)
    slots = [await p._take_slot() for p in (first, second, first, second, other)]
    starts = [slot for slot, _ in slots]
    gaps = [b - a for a, b in itertools.pairwise(starts[:4])]
    assert all(gap >= timedelta(milliseconds=99) for gap in gaps), gaps
    _, now = slots[4]
    assert starts[4] <= now  # another target's budget is its own: its first call goes at once
