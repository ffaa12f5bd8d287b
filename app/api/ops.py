"""Operator actions: retry a dead letter, cancel a case, approve a held item. Each is audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.api.auth import operator
from app.api.problems import Problem
from app.runtime import Runtime
from app.store.models import Audit, Case, Job, PlanItem, utcnow
from app.store.states import CASE_TERMINAL, FAILED_BEFORE_SUBMISSION, ITEM_TERMINAL

router = APIRouter(prefix="/ops", tags=["ops"], dependencies=[Depends(operator)])


class Why(BaseModel):
    reason: str = Field(default="operator action", max_length=1000)
    actor: str = Field(default="operator", max_length=100)


async def _case(session: AsyncSession, case_id: int) -> Case:
    case = await session.scalar(
        select(Case).where(Case.id == case_id).options(selectinload(Case.items), selectinload(Case.event))
    )
    if case is None:
        raise Problem(404, f"no case {case_id}")
    return case


async def _wake(session: AsyncSession, case: Case) -> None:
    job = await session.scalar(select(Job).where(Job.case_id == case.id))
    if job is None:
        session.add(Job(case_id=case.id, run_at=utcnow()))
    else:
        job.run_at, job.nudged = utcnow(), True


def _audit(
    session: AsyncSession,
    why: Why,
    case: Case,
    entity: str,
    entity_id: str,
    before: str,
    after: str,
    text: str,
) -> None:
    session.add(
        Audit(
            actor=why.actor,
            entity=entity,
            entity_id=entity_id,
            event_id=case.event_id,
            case_id=case.id,
            before=before,
            after=after,
            why=f"{text}: {why.reason}",
        )
    )


@router.post("/cases/{case_id}/retry", summary="Send a failed case back through the pipeline")
async def retry_case(case_id: int, request: Request, why: Why | None = None) -> dict[str, Any]:
    """Resumes where the case stopped. Batches already sent are looked up, never resent blind,
    so a retry cannot submit a removal twice."""
    why = why or Why()
    rt: Runtime = request.app.state.runtime
    async with rt.sessions() as session, session.begin():
        case = await _case(session, case_id)
        if case.state != "failed":
            raise Problem(409, f"case {case_id} is {case.state}; only failed cases can be retried")
        resume = "received" if case.iga_user is None else "inventoried" if not case.items else "submitting"
        for item in case.items:
            if item.state == "failed" and (item.note or "").startswith(FAILED_BEFORE_SUBMISSION):
                _audit(session, why, case, "item", str(item.id), item.state, "planned", "operator retry")
                item.state, item.finished_at = ("held" if item.action == "hold" else "planned"), None
        _audit(session, why, case, "case", str(case.id), case.state, resume, "operator retry")
        case.state, case.error, case.attempts, case.finished_at = resume, None, 0, None
        await _wake(session, case)
    return {"case_id": case_id, "state": resume}


@router.post("/cases/{case_id}/cancel", summary="Cancel every removal of a case not yet sent to the IGA")
async def cancel_case(case_id: int, request: Request, why: Why | None = None) -> dict[str, Any]:
    why = why or Why()
    rt: Runtime = request.app.state.runtime
    async with rt.sessions() as session, session.begin():
        case = await _case(session, case_id)
        if case.state in CASE_TERMINAL:
            raise Problem(409, f"case {case_id} is already {case.state}")
        cancelled = 0
        for item in case.items:
            if item.state in ("planned", "scheduled", "held") and item.request_row_id is None:
                _audit(session, why, case, "item", str(item.id), item.state, "cancelled", "operator cancel")
                item.state, item.finished_at = "cancelled", utcnow()
                cancelled += 1
        in_flight = [i for i in case.items if i.state not in ITEM_TERMINAL]
        if not in_flight:
            _audit(session, why, case, "case", str(case.id), case.state, "cancelled", "operator cancel")
            case.state, case.finished_at = "cancelled", utcnow()
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
async def approve_item(item_id: int, request: Request, why: Why | None = None) -> dict[str, Any]:
    why = why or Why()
    rt: Runtime = request.app.state.runtime
    async with rt.sessions() as session, session.begin():
        item = await session.get(PlanItem, item_id)
        if item is None:
            raise Problem(404, f"no plan item {item_id}")
        case = await _case(session, item.case_id)
        if item.state != "held":
            raise Problem(409, f"item {item_id} is {item.state}; only held items can be approved")
        _audit(session, why, case, "item", str(item.id), "held", "planned", "operator approved removal")
        item.state, item.action, item.due_at = "planned", "remove", utcnow()
        if case.state in CASE_TERMINAL:
            raise Problem(409, f"case {case.id} is {case.state}; retry it first")
        await _wake(session, case)
    return {"item_id": item_id, "state": "planned"}
