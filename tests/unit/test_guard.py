"""The guard's verdict on a real (temporary) database, without HTTP: it depends on arrivals only,
so the order workers look at cases changes nothing; a case of a wave an operator already decided
on follows that decision; what arrives after a decision counts afresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from app.domain import GuardState, LeaverEvent
from app.runtime import Runtime, build_runtime
from app.settings import Settings
from app.store import actions, guard
from app.store.intake import store_event
from app.store.queries import load_case
from app.store.transitions import Transitions

WINDOW = timedelta(hours=1)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


async def arrive(rt: Runtime, n: int, *, first: int = 0, type_: str = "user.terminated") -> list[int]:
    """`n` leavers arrive on target `iga`, in order; their case IDs."""
    ids = []
    for k in range(first, first + n):
        body = {"id": f"e{k}", "type": type_, "occurred_at": "2026-11-20T17:00:00Z", "user": {"username": f"u{k}"}}
        stored = await store_event(rt.sessions, LeaverEvent.model_validate(body), targets=["iga"], webhook_id=None)
        ids.append(stored.case_ids[0])
    return ids


async def verdict(rt: Runtime, case_id: int, most: int = 3) -> str:
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        found = await guard.check(session, Transitions(session, "worker"), case, most, WINDOW)
        if found.held:
            assert found.batch is not None
            case.guard_batch_id = found.batch.id
        return "cancelled" if found.cancelled else "held" if found.held else "pass"


async def test_the_verdict_depends_on_arrival_not_on_the_order_cases_are_looked_at(rt: Runtime) -> None:
    cases = await arrive(rt, 5)
    seen = {c: await verdict(rt, c) for c in reversed(cases)}  # the last arrivals first
    assert [seen[c] for c in cases] == ["pass", "pass", "pass", "held", "held"]


async def test_rehires_are_not_counted_and_never_held(rt: Runtime) -> None:
    rehires = await arrive(rt, 4, type_="user.enabled")
    leavers = await arrive(rt, 3, first=10)
    assert [await verdict(rt, c) for c in rehires + leavers] == ["pass"] * 7


async def test_a_case_of_a_cancelled_wave_looked_at_late_is_cancelled_and_later_arrivals_count_afresh(
    rt: Runtime,
) -> None:
    cases = await arrive(rt, 6)
    assert await verdict(rt, cases[3]) == "held"  # trips; cases[4] and [5] not looked at yet
    async with rt.sessions() as session, session.begin():
        (batch,) = [b for b in await guard.batches(session) if b["state"] == GuardState.HELD]
        await actions.cancel_guard(session, batch["id"], "alice", "HR feed bug")
    assert [await verdict(rt, c) for c in cases[4:]] == ["cancelled", "cancelled"]
    later = await arrive(rt, 3, first=20)
    assert [await verdict(rt, c) for c in later] == ["pass", "pass", "pass"]
