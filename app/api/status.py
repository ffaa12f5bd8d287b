"""Read endpoints: what happened to whom, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.api.auth import reader
from app.api.deps import ReadSession
from app.domain import CASE_TERMINAL
from app.problems import Problem, problem_responses
from app.store import reads
from app.store.models import Audit, Case, Event, IgaRequest, PlanItem

router = APIRouter(
    prefix="/status",
    tags=["status"],
    dependencies=[Depends(reader)],
    responses=problem_responses(401, 404, 422, 503),
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def item_view(item: PlanItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "item_id": item.item_id,
        "type": item.item_type,
        "name": item.name,
        "application": item.application,
        "privileged": item.privileged,
        "granted_by": item.granted_by,
        "action": item.action,
        "rule": item.rule,
        "reason": item.reason,
        "due_at": _iso(item.due_at),
        "state": item.state,
        "iga_request_id": item.iga_request_id,
        "iga_tracking_id": item.iga_tracking_id,
        "iga_status": item.iga_raw_status or item.iga_status,
        "iga_state": item.iga_status,
        "iga_message": item.iga_message,
        "note": item.note,
        "submitted_at": _iso(item.submitted_at),
        "finished_at": _iso(item.finished_at),
    }


def case_view(case: Case, requests: list[IgaRequest]) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "target": case.target,
        "state": case.state,
        "iga_user_id": case.iga_user_id,
        "error": case.error,
        "outcome": case.outcome,
        "dry_run": case.dry_run,
        "created_at": _iso(case.created_at),
        "updated_at": _iso(case.updated_at),
        "finished_at": _iso(case.finished_at),
        "items": [item_view(i) for i in case.items],
        "requests": [
            {"key": r.key, "state": r.state, "request_ids": r.request_ids, "sends": r.sends, "note": r.note}
            for r in requests
            if r.case_id == case.id
        ],
    }


def event_view(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "external_id": event.external_id,
        "source": event.source,
        "type": event.type,
        "format": event.format,
        "occurred_at": _iso(event.occurred_at),
        "effective_at": _iso(event.effective_at),
        "received_at": _iso(event.received_at),
        "target": event.target,
        "user": event.payload.get("user"),
    }


async def load_events(session: AsyncSession, *where: Any) -> list[Event]:
    stmt = (
        select(Event)
        .where(*where)
        .order_by(Event.occurred_at, Event.received_at)
        .options(selectinload(Event.cases).selectinload(Case.items))
    )
    return list((await session.scalars(stmt)).all())


async def _requests(session: AsyncSession, case_ids: list[int]) -> list[IgaRequest]:
    if not case_ids:
        return []
    return list(await session.scalars(select(IgaRequest).where(IgaRequest.case_id.in_(case_ids))))


@router.get("/events/{event_id}", summary="An event, its cases, every plan item and the timeline")
async def event_status(event_id: str, session: ReadSession) -> dict[str, Any]:
    events = await load_events(session, Event.id == event_id)
    if not events:
        raise Problem(404, f"no event {event_id!r}")
    event = events[0]
    requests = await _requests(session, [c.id for c in event.cases])
    timeline = (await session.scalars(select(Audit).where(Audit.event_id == event_id).order_by(Audit.id))).all()
    return {
        **event_view(event),
        "cases": [case_view(c, requests) for c in event.cases],
        "timeline": [
            {
                "at": _iso(a.at),
                "actor": a.actor,
                "entity": a.entity,
                "entity_id": a.entity_id,
                "before": a.before,
                "after": a.after,
                "why": a.why,
            }
            for a in timeline
        ],
    }


def user_condition(key: str) -> ColumnElement[bool]:
    """Events of a user known by any key: username, email, employee ID, DN or IGA ID."""
    by_iga_id = select(Case.event_id).where(Case.iga_user_id == key)
    return or_(
        Event.user_username == key,
        Event.user_email == key.lower(),
        Event.user_employee_id == key,
        Event.user_dn == key,
        Event.id.in_(by_iga_id),
    )


@router.get("/users/{key}", summary="Every case of a user (username, email, employee ID, DN or IGA ID)")
async def user_status(key: str, session: ReadSession) -> dict[str, Any]:
    events = await load_events(session, user_condition(key))
    requests = await _requests(session, [c.id for e in events for c in e.cases])
    if not events:
        raise Problem(404, f"no events for user {key!r}")
    return {
        "key": key,
        "events": [{**event_view(e), "cases": [case_view(c, requests) for c in e.cases]} for e in events],
    }


@router.get("/summary", summary="Counts by state, the oldest open case, time-to-revoke percentiles")
async def summary(session: ReadSession) -> dict[str, Any]:
    cases = dict((await session.execute(select(Case.state, func.count()).group_by(Case.state))).all())
    items = dict((await session.execute(select(PlanItem.state, func.count()).group_by(PlanItem.state))).all())
    oldest = await session.scalar(
        select(Case).where(Case.state.not_in(CASE_TERMINAL)).order_by(Case.created_at).limit(1)
    )
    events = await session.scalar(select(func.count()).select_from(Event))
    ttr = await reads.revoke_percentiles(session)
    return {
        "events": events,
        "cases": cases,
        "items": items,
        "oldest_open_case": None
        if oldest is None
        else {
            "case_id": oldest.id,
            "event_id": oldest.event_id,
            "target": oldest.target,
            "state": oldest.state,
            "created_at": _iso(oldest.created_at),
        },
        "time_to_revoke_seconds": ttr,
    }


@router.get("/dead-letters", summary="Failed cases waiting for an operator, newest first, a page at a time")
async def dead_letters(
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(max_length=200, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    try:
        position = reads.parse_cursor(after) if after else None
    except ValueError:
        raise Problem(422, "after is not a cursor this service handed out") from None
    page = await reads.dead_letter_page(session, limit, position)
    return {
        "dead_letters": [
            {
                "case_id": c.id,
                "event_id": c.event_id,
                "target": c.target,
                "error": c.error,
                "user": c.event.payload.get("user"),
                "type": c.event.type,
                "failed_at": _iso(c.finished_at),
            }
            for c in page.cases
        ],
        "next": page.next,
    }


@router.get("/attention", summary="What waits for an operator: held and uncertain items, dead letters")
async def attention(session: ReadSession) -> dict[str, Any]:
    items = await reads.attention_items(session)
    dead = await reads.dead_letters(session)
    return {
        "items": [
            {
                "id": i.id,
                "case_id": i.case_id,
                "event_id": i.case.event_id,
                "target": i.case.target,
                "user": i.case.event.user_username or i.case.event.user_email or "?",
                "name": i.name,
                "state": i.state,
                "why": i.note or i.reason,
            }
            for i in items
        ],
        "dead_letters": [
            {
                "case_id": c.id,
                "event_id": c.event_id,
                "target": c.target,
                "user": c.event.user_username or c.event.user_email or "?",
                "error": c.error,
            }
            for c in dead
        ],
    }
