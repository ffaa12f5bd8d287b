"""The state owner on a real (temporary) database, without HTTP: every change writes its audit
row and counts its metric, whoever asks, and operator actions are counted like the worker's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain import AccessItem, BatchState, CaseState, IgaUser, ItemState, LeaverEvent
from app.runtime import Runtime, build_runtime
from app.settings import Settings
from app.store import actions
from app.store.intake import store_event
from app.store.models import Audit, Case, IgaRequest, Job, PlanItem
from app.store.queries import load_case
from app.store.transitions import Transitions

EVENT = LeaverEvent.model_validate(
    {
        "id": "evt-1",
        "type": "user.terminated",
        "occurred_at": "2026-11-20T17:00:00Z",
        "source": "unit",
        "user": {"username": "jdoe"},
    }
)
ITEMS = [
    AccessItem(id="g1", type="entitlement", name="Finance RW", application="AD"),
    AccessItem(id="g2", type="entitlement", name="VPN", application="AD"),
]


async def act(rt: Runtime, action: Any, *args: Any) -> dict[str, Any]:
    """An operator action in its own transaction, as the routes run it."""
    async with rt.sessions() as session, session.begin():
        result: dict[str, Any] = await action(session, *args)
        return result


def finished(metric: str, state: str) -> float:
    return REGISTRY.get_sample_value(f"leaver_{metric}_finished_total", {"state": state}) or 0.0


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


async def planned_case(sessions: async_sessionmaker[AsyncSession], event: LeaverEvent = EVENT) -> int:
    """A stored event whose case is resolved and planned: two items to remove."""
    stored = await store_event(sessions, event, targets=["iga"], webhook_id=None)
    async with sessions() as session, session.begin():
        case = await load_case(session, stored.case_ids[0])
        case.record_resolved(IgaUser(id="u-1"), ITEMS, listed_at=case.created_at)
        changes = Transitions(session, "worker")
        for item in ITEMS:
            row = changes.new_item(case, item, action="remove", rule="default", reason="leaver", due_at=None)
            await session.flush()
            changes.item_planned(case, row)
        changes.case(case, CaseState.SUBMITTING, "planned")
    return stored.case_ids[0]


async def audit_rows(sessions: async_sessionmaker[AsyncSession], entity: str) -> list[tuple[str | None, str | None]]:
    async with sessions() as session:
        rows = await session.scalars(select(Audit).where(Audit.entity == entity).order_by(Audit.id))
        return [(a.before, a.after) for a in rows]


async def test_intake_creates_the_case_through_the_owner_with_its_audit(rt: Runtime) -> None:
    stored = await store_event(rt.sessions, EVENT, targets=["a", "b"], webhook_id="w1")
    async with rt.sessions() as session:
        cases = list(await session.scalars(select(Case).order_by(Case.id)))
        jobs = list(await session.scalars(select(Job)))
    assert [c.state for c in cases] == [CaseState.RECEIVED, CaseState.RECEIVED]
    assert {j.case_id for j in jobs} == set(stored.case_ids)
    assert await audit_rows(rt.sessions, "event") == [(None, "received")]


async def test_a_case_change_is_audited_once_and_a_terminal_one_is_counted(rt: Runtime) -> None:
    case_id = await planned_case(rt.sessions)
    before = finished("cases", "done")
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        case.attempts = case.polls = 3
        changes = Transitions(session, "worker", now=datetime(2026, 11, 21, tzinfo=UTC))
        changes.case(case, CaseState.DONE, "every item is in a terminal state")
        changes.case(case, CaseState.DONE, "again: no change, no row")
        assert (case.attempts, case.polls) == (0, 0)
        assert case.finished_at == datetime(2026, 11, 21, tzinfo=UTC)
    assert finished("cases", "done") == before + 1
    assert (await audit_rows(rt.sessions, "case"))[-1] == ("submitting", "done")
    assert len([r for r in await audit_rows(rt.sessions, "case") if r[1] == "done"]) == 1


async def test_an_item_leaving_a_terminal_state_loses_its_finish_time(rt: Runtime) -> None:
    case_id = await planned_case(rt.sessions)
    before = finished("items", "failed")
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        changes = Transitions(session, "worker")
        item = case.items[0]
        changes.item(item, ItemState.FAILED, "boom", event_id=case.event_id)
        assert item.finished_at is not None
        changes.item(item, ItemState.PLANNED, "operator retry", event_id=case.event_id)
        assert item.finished_at is None
    assert finished("items", "failed") == before + 1
    assert (await audit_rows(rt.sessions, "item"))[-2:] == [("planned", "failed"), ("failed", "planned")]


async def test_a_batch_is_written_ahead_and_its_changes_audited(rt: Runtime) -> None:
    case_id = await planned_case(rt.sessions)
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        changes = Transitions(session, "worker")
        row = changes.new_batch(case, 1, f"leaver-{case_id}-1", case.items)
        await session.flush()
        changes.batch_resent(case, row, "no trace")
        changes.batch(case, row, BatchState.SUBMITTED, "adopted")
    async with rt.sessions() as session:
        stored = await session.scalar(select(IgaRequest))
    assert stored is not None and (stored.state, stored.sends) == ("submitted", 2)
    assert await audit_rows(rt.sessions, "request") == [
        (None, "sending"),
        ("sending", "sending"),
        ("sending", "submitted"),
    ]


async def test_operator_cancel_counts_the_finish_metrics_like_the_worker(rt: Runtime) -> None:
    case_id = await planned_case(rt.sessions)
    items_before, cases_before = finished("items", "cancelled"), finished("cases", "cancelled")
    answer = await act(rt, actions.cancel_case, case_id, "alice", "wrong person")
    assert answer["state"] == "cancelled" and answer["cancelled_items"] == 2
    assert finished("items", "cancelled") == items_before + 2
    assert finished("cases", "cancelled") == cases_before + 1
    async with rt.sessions() as session:
        actors = set(await session.scalars(select(Audit.actor).where(Audit.why.like("operator cancel%"))))
        assert actors == {"alice"}
        assert await session.scalar(select(Job).where(Job.case_id == case_id)) is None


async def test_operator_retry_reopens_what_failed_before_submission(rt: Runtime) -> None:
    case_id = await planned_case(rt.sessions)
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        changes = Transitions(session, "worker")
        for item in case.items:
            changes.item(item, ItemState.FAILED, "x", event_id=case.event_id)
            item.note = "case failed before submission: IGA down"
        changes.case(case, CaseState.FAILED, "dead letter")
    answer = await act(rt, actions.retry_case, case_id, "bob", "try again")
    assert answer["state"] == "submitting"
    async with rt.sessions() as session:
        items = list(await session.scalars(select(PlanItem).where(PlanItem.case_id == case_id)))
        case_row = await session.get(Case, case_id)
    assert {i.state for i in items} == {"planned"} and all(i.finished_at is None for i in items)
    assert case_row is not None and case_row.finished_at is None and case_row.error is None


async def fail_with_uncertain_batch(rt: Runtime) -> int:
    """A case that failed after writing its first item ahead: that item is uncertain."""
    case_id = await planned_case(rt.sessions)
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        changes = Transitions(session, "worker")
        row = changes.new_batch(case, 1, f"leaver-{case_id}-1", case.items[:1])
        await session.flush()
        case.items[0].request_row_id = row.id
        changes.item(case.items[0], ItemState.UNCERTAIN, "a send may have reached the IGA", event_id=case.event_id)
        case.items[1].note = "case failed before submission: IGA down"
        changes.item(case.items[1], ItemState.FAILED, case.items[1].note, event_id=case.event_id)
        changes.case(case, CaseState.FAILED, "dead letter")
    return case_id


async def test_an_operator_settles_an_unprovable_batch_with_a_reason(rt: Runtime) -> None:
    case_id = await fail_with_uncertain_batch(rt)
    answer = await act(rt, actions.settle_case, case_id, "bob", "checked in IG: gone", "removed")
    assert answer["state"] == "failed"  # the other item still failed before submission
    async with rt.sessions() as session:
        items = list(await session.scalars(select(PlanItem).where(PlanItem.case_id == case_id).order_by(PlanItem.id)))
        batch = await session.scalar(select(IgaRequest))
        whys = list(await session.scalars(select(Audit.why).where(Audit.actor == "bob")))
    assert [i.state for i in items] == ["removed", "failed"]
    assert batch is not None and batch.state == "failed"
    assert whys and all("checked in IG: gone" in w for w in whys)
    with pytest.raises(actions.Refused) as refused:
        await act(rt, actions.settle_case, case_id, "bob", "again", "failed")
    assert refused.value.status == 409


async def test_an_operator_can_cancel_a_failed_case(rt: Runtime) -> None:
    case_id = await planned_case(rt.sessions)
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        changes = Transitions(session, "worker")
        for item in case.items:
            item.note = "case failed before submission: IGA down"
            changes.item(item, ItemState.FAILED, item.note, event_id=case.event_id)
        changes.case(case, CaseState.FAILED, "dead letter")
    answer = await act(rt, actions.cancel_case, case_id, "carol", "person left before start")
    assert answer["state"] == "cancelled" and answer["cancelled_items"] == 2


async def test_an_operator_retry_looks_up_uncertain_removals_again(rt: Runtime) -> None:
    case_id = await fail_with_uncertain_batch(rt)
    await act(rt, actions.retry_case, case_id, "dave", "try again")
    async with rt.sessions() as session:
        items = list(await session.scalars(select(PlanItem).where(PlanItem.case_id == case_id).order_by(PlanItem.id)))
    assert [(i.state, i.request_row_id is not None) for i in items] == [("planned", True), ("planned", False)]


async def test_a_case_that_moves_on_after_a_failed_attempt_keeps_no_stale_error(rt: Runtime) -> None:
    case_id = await planned_case(rt.sessions)
    async with rt.sessions() as session, session.begin():
        case = await load_case(session, case_id)
        case.error = "IgaTransientError: 503 from the IGA"  # an attempt failed, the step is retried
        Transitions(session, "worker").case(case, CaseState.TRACKING, "every due removal submitted")
    async with rt.sessions() as session:
        assert (await load_case(session, case_id)).error is None
