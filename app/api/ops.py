"""Operator actions: retry a dead letter, cancel a case, approve a held item. Each goes through
the state owner, so it is audited and counted like any other change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import operator
from app.api.deps import RuntimeDep
from app.domain import CASE_TERMINAL, FAILED_BEFORE_SUBMISSION, ITEM_TERMINAL, CaseState, ItemState
from app.problems import Problem
from app.store.models import Case, Job, PlanItem
from app.store.queries import load_case
from app.store.transitions import Transitions

router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(operator)])


class Why(BaseModel):
    reason: str = Field(default="operator action", max_length=1000)
    actor: str = Field(default="operator", max_length=100)


async def _case(session: AsyncSession, case_id: int) -> Case:
    try:
        return await load_case(session, case_id)
    except LookupError:
        raise Problem(404, f"no case {case_id}") from None


async def _wake(session: AsyncSession, case: Case, changes: Transitions) -> None:
    job = await session.scalar(select(Job).where(Job.case_id == case.id))
    if job is None:
        session.add(Job(case_id=case.id, run_at=changes.now))
    else:
        job.run_at, job.nudged = changes.now, True


@router.post("/cases/{case_id}/retry", summary="Send a failed case back through the pipeline")
async def retry_case(case_id: int, rt: RuntimeDep, why: Why | None = None) -> dict[str, Any]:
    """Resumes where the case stopped. Batches already sent are looked up, never resent blind,
    so a retry cannot submit a removal twice."""
    why = why or Why()
    async with rt.sessions() as session, session.begin():
        changes = Transitions(session, why.actor)
        case = await _case(session, case_id)
        if case.state != CaseState.FAILED:
            raise Problem(409, f"case {case_id} is {case.state}; only failed cases can be retried")
        if case.iga_user is None:
            resume = CaseState.RECEIVED
        else:
            resume = CaseState.INVENTORIED if not case.items else CaseState.SUBMITTING
        for item in case.items:
            if item.state == ItemState.FAILED and (item.note or "").startswith(FAILED_BEFORE_SUBMISSION):
                back = ItemState.HELD if item.action == "hold" else ItemState.PLANNED
                changes.item(item, back, f"operator retry: {why.reason}", event_id=case.event_id)
        changes.case(case, resume, f"operator retry: {why.reason}")
        case.error = None
        await _wake(session, case, changes)
    return {"case_id": case_id, "state": resume}


@router.post("/cases/{case_id}/cancel", summary="Cancel every removal of a case not yet sent to the IGA")
async def cancel_case(case_id: int, rt: RuntimeDep, why: Why | None = None) -> dict[str, Any]:
    why = why or Why()
    async with rt.sessions() as session, session.begin():
        changes = Transitions(session, why.actor)
        case = await _case(session, case_id)
        if case.state in CASE_TERMINAL:
            raise Problem(409, f"case {case_id} is already {case.state}")
        cancelled = 0
        for item in case.items:
            if item.state in (ItemState.PLANNED, ItemState.SCHEDULED, ItemState.HELD) and item.request_row_id is None:
                changes.item(item, ItemState.CANCELLED, f"operator cancel: {why.reason}", event_id=case.event_id)
                cancelled += 1
        in_flight = [i for i in case.items if i.state not in ITEM_TERMINAL]
        if not in_flight:
            changes.case(case, CaseState.CANCELLED, f"operator cancel: {why.reason}")
            job = await session.scalar(select(Job).where(Job.case_id == case.id))
            if job is not None:
                await session.delete(job)
    return {
        "case_id": case_id,
        "state": case.state,
        "cancelled_items": cancelled,
        "still_with_iga": [i.id for i in in_flight],
    }


@router.post("/items/{item_id}/approve", summary="Release a held item for removal now")
async def approve_item(item_id: int, rt: RuntimeDep, why: Why | None = None) -> dict[str, Any]:
    why = why or Why()
    async with rt.sessions() as session, session.begin():
        changes = Transitions(session, why.actor)
        item = await session.get(PlanItem, item_id)
        if item is None:
            raise Problem(404, f"no plan item {item_id}")
        case = await _case(session, item.case_id)
        if item.state != ItemState.HELD:
            raise Problem(409, f"item {item_id} is {item.state}; only held items can be approved")
        if case.state in CASE_TERMINAL:
            raise Problem(409, f"case {case.id} is {case.state}; retry it first")
        changes.item(item, ItemState.PLANNED, f"operator approved removal: {why.reason}", event_id=case.event_id)
        item.action, item.due_at = "remove", changes.now
        await _wake(session, case, changes)
    return {"item_id": item_id, "state": ItemState.PLANNED}
