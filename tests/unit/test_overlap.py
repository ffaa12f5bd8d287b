"""The same-person rules on a real (temporary) database, without HTTP or an IGA: the newest event
decides an unsent item, an item with the IGA is never sent again, a rehire cancels what older events
have not sent and says what it could not withdraw, and an older terminate after a rehire changes
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.domain import AccessItem, CaseState, IgaUser, ItemState, LeaverEvent
from app.runtime import Runtime, build_runtime
from app.settings import Settings
from app.store.intake import store_event
from app.store.models import Job, PlanItem, utcnow
from app.store.queries import load_case, open_items, sent_elsewhere
from app.store.queue import Claim
from app.store.transitions import Transitions
from app.worker.overlap import cancel_for_rehire, settle_overlap, superseded_by_rehire, wake_touched_cases
from app.worker.unit import Resolved, Tx, snapshot

USER = IgaUser(id="u-1")
ITEM = AccessItem(id="g1", type="entitlement", name="Finance RW", application="AD")


def event(k: int, type_: str, minute: int) -> LeaverEvent:
    return LeaverEvent.model_validate(
        {
            "id": f"evt-{k}",
            "type": type_,
            "occurred_at": f"2026-11-20T17:{minute:02d}:00Z",
            "source": "unit",
            "user": {"username": "jdoe"},
        }
    )


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


async def resolved_case(rt: Runtime, ev: LeaverEvent, item_state: ItemState | None = None) -> int:
    """A stored event whose case found USER; with `item_state`, one plan item for ITEM in it."""
    stored = await store_event(rt.sessions, ev, targets=["iga"], webhook_id=None)
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, stored.case_ids[0])
        case.record_resolved(USER, [ITEM], listed_at=case.created_at)
        changes = Transitions(session, "worker")
        changes.case(case, CaseState.INVENTORIED, "resolved")
        if item_state is not None:
            row = changes.new_item(case, ITEM, action="remove", rule="default", reason="leaver", due_at=None)
            await session.flush()
            changes.item(row, item_state, "set up", event_id=case.event_id)
    return stored.case_ids[0]


async def resolved(rt: Runtime, case_id: int) -> Resolved:
    snap = (await snapshot(rt, case_id)).resolved()
    assert snap is not None
    return snap


async def claim_of(rt: Runtime, case_id: int) -> Claim:
    async with rt.sessions() as session:
        job = await session.scalar(select(Job).where(Job.case_id == case_id))
    assert job is not None
    return Claim(job.id, case_id, job.claims)


async def item_states(rt: Runtime) -> dict[int, str]:
    async with rt.sessions() as session:
        return {i.case_id: i.state for i in await session.scalars(select(PlanItem))}


async def plan_against_older(rt: Runtime, newer_state: ItemState, *, older_minute: int) -> tuple[int, int, bool]:
    """Case A (at `older_minute`) holds ITEM in `newer_state`; case B (minute 30) plans ITEM now."""
    a = await resolved_case(rt, event(1, "user.disabled", older_minute), newer_state)
    b = await resolved_case(rt, event(2, "user.terminated", 30))
    snap = await resolved(rt, b)
    async with rt.sessions() as session, session.begin():
        tx = Tx(session, await claim_of(rt, b), await load_case(session, b))
        others = await open_items(session, snap.person)
        row = tx.changes.new_item(tx.case, ITEM, action="remove", rule="default", reason="x", due_at=None)
        await session.flush()
        settled = settle_overlap(tx, snap, row, others.get(ITEM.id))
    return a, b, settled


async def test_the_newer_event_takes_over_an_unsent_item(rt: Runtime) -> None:
    a, b, settled = await plan_against_older(rt, ItemState.PLANNED, older_minute=10)
    assert not settled
    assert await item_states(rt) == {a: "cancelled", b: "planned"}


async def test_an_older_event_planned_late_leaves_the_item_to_the_newer_one(rt: Runtime) -> None:
    a, b, settled = await plan_against_older(rt, ItemState.PLANNED, older_minute=45)
    assert settled
    assert await item_states(rt) == {a: "planned", b: "cancelled"}


async def test_an_item_already_with_the_iga_is_never_planned_again(rt: Runtime) -> None:
    a, b, settled = await plan_against_older(rt, ItemState.SUBMITTED, older_minute=10)
    assert settled
    assert await item_states(rt) == {a: "submitted", b: "cancelled"}


async def test_a_send_after_this_case_was_created_counts_as_sent_elsewhere(rt: Runtime) -> None:
    b = await resolved_case(rt, event(2, "user.terminated", 30), ItemState.PLANNED)
    a = await resolved_case(rt, event(1, "user.disabled", 10), ItemState.PLANNED)
    async with rt.sessions() as session, session.begin():
        case_a = await load_case(session, a)
        row = Transitions(session, "worker").new_batch(case_a, 1, f"leaver-{a}-1", case_a.items)
        await session.flush()
        case_a.items[0].request_row_id = row.id
    snap = await resolved(rt, b)
    async with rt.sessions() as session:
        mine = {i.item_id: i.id for i in snap.items}
        taken = await sent_elsewhere(session, snap.person, mine, since=snap.created_at)
    assert taken == {snap.items[0].id: a}


async def test_a_rehire_cancels_unsent_removals_and_names_what_it_could_not_withdraw(rt: Runtime) -> None:
    unsent = await resolved_case(rt, event(1, "user.disabled", 10), ItemState.PLANNED)
    rehire = await resolved_case(rt, event(3, "user.enabled", 40))
    snap = await resolved(rt, rehire)
    async with rt.sessions() as session, session.begin():
        tx = Tx(session, await claim_of(rt, rehire), await load_case(session, rehire))
        others = await open_items(session, snap.person)
        cancel_for_rehire(tx, snap, others, {})
    assert (await item_states(rt))[unsent] == "cancelled"

    sent = await resolved_case(rt, event(4, "user.terminated", 20), ItemState.SUBMITTED)
    async with rt.sessions() as session, session.begin():
        tx = Tx(session, await claim_of(rt, rehire), await load_case(session, rehire))
        others = await open_items(session, snap.person)
        item_id = others[ITEM.id].item.id
        cancel_for_rehire(tx, snap, others, {item_id: "the IGA no longer allows cancelling it"})
    async with rt.sessions() as session:
        item = await session.get(PlanItem, item_id)
    assert item is not None and item.case_id == sent and item.state == "submitted"
    assert item.note is not None and "not withdrawn: the IGA no longer allows cancelling it" in item.note


async def test_a_terminate_older_than_a_stored_rehire_changes_nothing(rt: Runtime) -> None:
    await store_event(rt.sessions, event(9, "user.enabled", 50), targets=["iga"], webhook_id=None)
    old = await resolved_case(rt, event(1, "user.terminated", 10))
    snap = await resolved(rt, old)
    async with rt.sessions() as session, session.begin():
        tx = Tx(session, await claim_of(rt, old), await load_case(session, old))
        assert await superseded_by_rehire(tx, snap)
    case = await snapshot(rt, old)
    assert case.state == CaseState.CANCELLED
    async with rt.sessions() as session:
        assert await session.scalar(select(Job).where(Job.case_id == old)) is None


async def test_a_case_whose_items_a_rehire_cancelled_is_looked_at_again_now(rt: Runtime) -> None:
    older = await resolved_case(rt, event(1, "user.disabled", 10), ItemState.PLANNED)
    async with rt.sessions() as session, session.begin():
        job = await session.scalar(select(Job).where(Job.case_id == older))
        assert job is not None
        job.run_at = job.run_at + timedelta(days=1)  # it waits for its daily check
    rehire = await resolved_case(rt, event(3, "user.enabled", 40))
    snap = await resolved(rt, rehire)
    async with rt.sessions() as session, session.begin():
        tx = Tx(session, await claim_of(rt, rehire), await load_case(session, rehire))
        others = await open_items(session, snap.person)
        cancel_for_rehire(tx, snap, others, {})
        await wake_touched_cases(tx, others)
    async with rt.sessions() as session:
        job = await session.scalar(select(Job).where(Job.case_id == older))
    assert job is not None and job.nudged and job.run_at <= utcnow()
