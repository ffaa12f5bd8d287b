"""Read models for the operator console and the metrics: aggregates computed by the database and
pages cut by keyset, so a page costs the same whatever the history holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.domain import CASE_TERMINAL, CaseState, ItemState
from app.store.models import Case, Event, IgaRequest, Job, PlanItem, utcnow

PAGE = 50


@dataclass(frozen=True)
class CaseFilter:
    state: str | None = None
    target: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None  # keyset: cases with a smaller ID (the next page)


async def open_cases_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Case.state, func.count()).where(Case.state.not_in(tuple(CASE_TERMINAL))).group_by(Case.state)
    )
    return {state: count for state, count in rows.all()}


async def oldest_open_case(session: AsyncSession) -> Case | None:
    return await session.scalar(
        select(Case).where(Case.state.not_in(tuple(CASE_TERMINAL))).order_by(Case.created_at, Case.id).limit(1)
    )


async def attention_counts(session: AsyncSession) -> dict[str, int]:
    """What waits for an operator: held and uncertain items, failed items of live cases, dead letters."""
    held = await session.scalar(select(func.count()).where(PlanItem.state == ItemState.HELD))
    uncertain = await session.scalar(select(func.count()).where(PlanItem.state == ItemState.UNCERTAIN))
    dead = await session.scalar(select(func.count()).where(Case.state == CaseState.FAILED))
    return {"held": held or 0, "uncertain": uncertain or 0, "dead_letters": dead or 0}


async def queue_depth(session: AsyncSession) -> tuple[int, float | None]:
    """Jobs due now, and the age in seconds of the oldest due one."""
    now = utcnow()
    count, oldest = (await session.execute(select(func.count(), func.min(Job.run_at)).where(Job.run_at <= now))).one()
    return int(count or 0), (now - oldest).total_seconds() if oldest else None


async def cases(session: AsyncSession, f: CaseFilter) -> list[Case]:
    stmt = (
        select(Case).join(Event, Case.event_id == Event.id).options(selectinload(Case.event), selectinload(Case.items))
    )
    if f.state:
        stmt = stmt.where(Case.state == f.state)
    if f.target:
        stmt = stmt.where(Case.target == f.target)
    if f.type:
        stmt = stmt.where(Event.type == f.type)
    if f.since:
        stmt = stmt.where(Case.created_at >= f.since)
    if f.until:
        stmt = stmt.where(Case.created_at < f.until)
    if f.before:
        stmt = stmt.where(Case.id < f.before)
    return list(await session.scalars(stmt.order_by(Case.id.desc()).limit(PAGE)))


async def attention_items(session: AsyncSession) -> list[PlanItem]:
    """Held and uncertain items, oldest first, with their case and event."""
    stmt = (
        select(PlanItem)
        .where(PlanItem.state.in_((ItemState.HELD, ItemState.UNCERTAIN)))
        .options(selectinload(PlanItem.case).selectinload(Case.event))
        .order_by(PlanItem.id)
        .limit(200)
    )
    return list(await session.scalars(stmt))


async def dead_letters(session: AsyncSession) -> list[Case]:
    stmt = (
        select(Case)
        .where(Case.state == CaseState.FAILED)
        .options(selectinload(Case.event), selectinload(Case.items))
        .order_by(Case.updated_at.desc())
        .limit(200)
    )
    return list(await session.scalars(stmt))


async def requests_of(session: AsyncSession, case_ids: list[int]) -> list[IgaRequest]:
    if not case_ids:
        return []
    return list(await session.scalars(select(IgaRequest).where(IgaRequest.case_id.in_(case_ids))))


def item_ttr(item: PlanItem, received: datetime) -> float | None:
    """Seconds from the event's arrival to the IGA completing this removal, for removed items."""
    if item.state != ItemState.REMOVED:
        return None
    done = item.iga_done_at or item.finished_at
    return max(0.0, (done - received).total_seconds()) if done else None


async def ttr_by_day(session: AsyncSession, days: int = 14) -> list[dict[str, Any]]:
    """Median and worst time-to-revoke per day of completion, over immediate removals (items an
    operator approved or policy scheduled for later are counted apart: that wait is not delay)."""
    since = utcnow() - timedelta(days=days)
    rows = await session.execute(
        select(PlanItem.iga_done_at, PlanItem.finished_at, PlanItem.due_at, PlanItem.approved_at, Event.received_at)
        .join(Case, PlanItem.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(PlanItem.state == ItemState.REMOVED, PlanItem.finished_at >= since)
        .limit(100_000)
    )
    per_day: dict[str, list[float]] = {}
    apart: dict[str, int] = {}
    for done_at, finished, due, approved, received in rows.all():
        done = done_at or finished
        if done is None:
            continue
        day = done.date().isoformat()
        if approved is not None or (due is not None and due > received):
            apart[day] = apart.get(day, 0) + 1
            continue
        per_day.setdefault(day, []).append(max(0.0, (done - received).total_seconds()))
    out = []
    for n in range(days, -1, -1):
        day = (utcnow() - timedelta(days=n)).date().isoformat()
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
