"""Operator actions: retry a dead letter, cancel a case, settle what cannot be proven, approve a
held item. Each goes through
the state owner, so it is audited and counted like any other change."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import operator
from app.api.deps import RuntimeDep
from app.domain import CASE_TERMINAL, FAILED_BEFORE_SUBMISSION, ITEM_TERMINAL, BatchState, CaseState, ItemState
from app.problems import Problem, problem_responses
from app.store.models import Case, IgaRequest, Job, PlanItem
from app.store.queries import load_case
from app.store.transitions import Transitions

router = APIRouter(
    prefix="/ops",
    tags=["ops"],
    dependencies=[Depends(operator)],
    responses=problem_responses(401, 404, 409, 422, 503),
)


#: Row IDs as the database stores them: anything larger names no row (a 422, never a 500).
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a case ID from /status")]
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a plan item ID from /status")]


class Why(BaseModel):
    reason: str = Field(default="operator action", max_length=1000)
    actor: str = Field(default="operator", max_length=100)


async def _case(session: AsyncSession, case_id: int) -> Case:
    try:
        return await load_case(session, case_id)
    except LookupError:
        raise Problem(404, f"no case {case_id}") from None


async def _end_job(session: AsyncSession, case: Case) -> None:
    job = await session.scalar(select(Job).where(Job.case_id == case.id))
    if job is not None:
        await session.delete(job)


async def _wake(session: AsyncSession, case: Case, changes: Transitions) -> None:
    job = await session.scalar(select(Job).where(Job.case_id == case.id))
    if job is None:
        session.add(Job(case_id=case.id, run_at=changes.now))
    else:
        job.run_at, job.nudged = changes.now, True


@router.post("/cases/{case_id}/retry", summary="Send a failed case back through the pipeline")
async def retry_case(case_id: CaseId, rt: RuntimeDep, why: Why | None = None) -> dict[str, Any]:
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
            if _never_sent(item):
                back = ItemState.HELD if item.action == "hold" else ItemState.PLANNED
                changes.item(item, back, f"operator retry: {why.reason}", event_id=case.event_id)
            elif item.state == ItemState.UNCERTAIN:  # its batch is looked up again before any resend
                changes.item(item, ItemState.PLANNED, f"operator retry: {why.reason}", event_id=case.event_id)
        changes.case(case, resume, f"operator retry: {why.reason}")
        await _wake(session, case, changes)
    return {"case_id": case_id, "state": resume}


@router.post("/cases/{case_id}/cancel", summary="Cancel every removal of a case not yet sent to the IGA")
async def cancel_case(case_id: CaseId, rt: RuntimeDep, why: Why | None = None) -> dict[str, Any]:
    why = why or Why()
    async with rt.sessions() as session, session.begin():
        changes = Transitions(session, why.actor)
        case = await _case(session, case_id)
        if case.state in (CaseState.DONE, CaseState.CANCELLED):
            raise Problem(409, f"case {case_id} is already {case.state}")
        cancelled = 0
        for item in case.items:
            unsent = item.state in (ItemState.PLANNED, ItemState.SCHEDULED, ItemState.HELD)
            if (unsent and item.request_row_id is None) or _never_sent(item):
                changes.item(item, ItemState.CANCELLED, f"operator cancel: {why.reason}", event_id=case.event_id)
                cancelled += 1
        in_flight = [i for i in case.items if i.state not in ITEM_TERMINAL]
        if not in_flight:
            changes.case(case, CaseState.CANCELLED, f"operator cancel: {why.reason}")
            await _end_job(session, case)
    return {
        "case_id": case_id,
        "state": case.state,
        "cancelled_items": cancelled,
        "still_with_iga": [i.id for i in in_flight],
    }


@router.post("/items/{item_id}/approve", summary="Release a held item for removal now")
async def approve_item(item_id: ItemId, rt: RuntimeDep, why: Why | None = None) -> dict[str, Any]:
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


class Settlement(Why):
    """What the operator found in the IGA for removals leaver could not prove sent or unsent."""

    outcome: Literal["removed", "failed"]


@router.post("/cases/{case_id}/settle", summary="Settle the uncertain removals of a failed case")
async def settle_case(case_id: CaseId, rt: RuntimeDep, settlement: Settlement) -> dict[str, Any]:
    """For a batch leaver cannot prove sent or unsent (the IGA's lookup cannot reach it): the
    operator checked the IGA and says whether the access is gone (`removed`) or must be handled
    by hand (`failed`). Nothing is sent; the reason is kept in the audit."""
    async with rt.sessions() as session, session.begin():
        changes = Transitions(session, settlement.actor)
        case = await _case(session, case_id)
        if case.state != CaseState.FAILED:
            raise Problem(409, f"case {case_id} is {case.state}; only failed cases are settled")
        uncertain = [i for i in case.items if i.state == ItemState.UNCERTAIN]
        if not uncertain:
            raise Problem(409, f"case {case_id} has no uncertain removal to settle")
        why = f"operator settled ({settlement.outcome}): {settlement.reason}"
        batches = {i.request_row_id for i in uncertain}
        for row in await session.scalars(select(IgaRequest).where(IgaRequest.id.in_(batches))):
            if row.state == BatchState.SENDING:
                changes.batch(case, row, BatchState.FAILED, why, note=why)
        for item in uncertain:
            item.note = why
            changes.item(item, ItemState(settlement.outcome), why, event_id=case.event_id)
        # Done unless something still waits for the operator's retry (never sent at all).
        if not any(i.state not in ITEM_TERMINAL or _never_sent(i) for i in case.items):
            changes.case(case, CaseState.DONE, why)
            await _end_job(session, case)
    return {"case_id": case_id, "state": case.state, "settled_items": [i.id for i in uncertain]}


def _never_sent(item: PlanItem) -> bool:
    """Failed only because its case failed before sending it: an operator retry plans it again."""
    return item.state == ItemState.FAILED and (item.note or "").startswith(FAILED_BEFORE_SUBMISSION)
