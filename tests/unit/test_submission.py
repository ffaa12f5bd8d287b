"""Adopting what the IGA holds after an interrupted send, on a real (temporary) database: a lookup
that finds part of a batch adopts that part and keeps looking for the rest; an answer to our own
send that leaves an item out fails that item."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from app.domain import AccessItem, CaseState, IgaUser, LeaverEvent, RequestRef
from app.runtime import Runtime, build_runtime
from app.settings import Settings
from app.store.intake import store_event
from app.store.models import IgaRequest, Job
from app.store.queries import load_case
from app.store.queue import Claim
from app.store.transitions import Transitions
from app.worker.submission import adopt
from app.worker.unit import Tx

EVENT = LeaverEvent.model_validate(
    {"id": "e1", "type": "user.terminated", "occurred_at": "2026-11-20T17:00:00Z", "user": {"username": "jdoe"}}
)
ITEMS = [AccessItem(id=f"r{n}", type="role", name=f"Role {n}") for n in range(3)]


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


async def sending_batch(rt: Runtime) -> tuple[int, int]:
    """A case with three items written ahead in one `sending` batch."""
    stored = await store_event(rt.sessions, EVENT, targets=["iga"], webhook_id=None)
    case_id = stored.case_ids[0]
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        case.record_resolved(IgaUser(id="u1"), ITEMS, listed_at=case.created_at)
        changes = Transitions(session, "worker")
        rows = [changes.new_item(case, i, action="remove", rule="d", reason="r", due_at=None) for i in ITEMS]
        changes.case(case, CaseState.SUBMITTING, "planned")
        await session.flush()
        batch = changes.new_batch(case, 1, f"leaver-{case_id}-1", rows)
        await session.flush()
        for row in rows:
            row.request_row_id = batch.id
        return case_id, batch.id


async def adopt_refs(rt: Runtime, case_id: int, batch_id: int, found: list[str], *, recovered: bool) -> None:
    async with rt.sessions() as session, session.begin():
        job = await session.scalar(select(Job).where(Job.case_id == case_id))
        assert job is not None
        tx = Tx(session, Claim(job.id, case_id, job.claims), await load_case(session, case_id))
        refs = [RequestRef(item, f"req-{item}", f"req-{item}") for item in found]
        await adopt(tx, batch_id, refs, "found", recovered=recovered)


async def states(rt: Runtime, case_id: int, batch_id: int) -> tuple[str, list[str]]:
    async with rt.sessions() as session:
        batch = await session.get(IgaRequest, batch_id)
        case = await load_case(session, case_id)
        assert batch is not None
        return batch.state, [i.state for i in case.items]


async def test_a_partial_find_adopts_what_it_found_and_keeps_looking_for_the_rest(rt: Runtime) -> None:
    case_id, batch_id = await sending_batch(rt)
    await adopt_refs(rt, case_id, batch_id, ["r0", "r2"], recovered=True)
    assert await states(rt, case_id, batch_id) == ("sending", ["submitted", "planned", "submitted"])
    await adopt_refs(rt, case_id, batch_id, ["r1"], recovered=True)
    assert await states(rt, case_id, batch_id) == ("submitted", ["submitted", "submitted", "submitted"])
    async with rt.sessions() as session:
        batch = await session.get(IgaRequest, batch_id)
    assert batch is not None and batch.request_ids == ["req-r0", "req-r1", "req-r2"]


async def test_an_answer_to_our_own_send_that_leaves_an_item_out_fails_it(rt: Runtime) -> None:
    case_id, batch_id = await sending_batch(rt)
    await adopt_refs(rt, case_id, batch_id, ["r0", "r2"], recovered=False)
    assert await states(rt, case_id, batch_id) == ("submitted", ["submitted", "failed", "submitted"])
