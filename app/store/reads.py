"""Read models for the operator console and the metrics: aggregates computed by the database and
pages cut by keyset, so a page costs the same whatever the history holds."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select
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


def _seconds(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[Any]:
    """A sort key: seconds between two timestamps (exact on PostgreSQL, to ~50 µs on SQLite). The
    numbers answered are computed from the rows picked, in Python, so they match to the microsecond."""
    if _dialect(session) == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _day(session: AsyncSession, moment: Any) -> ColumnElement[str]:
    """The UTC calendar day of a timestamp as `YYYY-MM-DD` (SQLite stores UTC text)."""
    if _dialect(session) == "postgresql":
        # Literals, not parameters: PostgreSQL must see the GROUP BY expression as the selected one.
        return func.to_char(func.timezone(literal_column("'UTC'"), moment), literal_column("'YYYY-MM-DD'"))
    return func.substr(moment, literal_column("1"), literal_column("10"))


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _span(done: datetime, start: datetime) -> float:
    return max(0.0, (done - start).total_seconds())


async def ttr_by_day(session: AsyncSession, days: int = 14) -> list[dict[str, Any]]:
    """Median and worst time-to-revoke per day of completion, over immediate removals (items an
    operator approved or policy scheduled for later are counted apart: that wait is not delay).
    The database ranks each day's removals and hands back only the middle and the worst ones, so
    the cost does not follow the number of removals into Python."""
    since = utcnow() - timedelta(days=days)
    done = func.coalesce(PlanItem.iga_done_at, PlanItem.finished_at)
    day = _day(session, done)
    apart = or_(
        PlanItem.approved_at.is_not(None), and_(PlanItem.due_at.is_not(None), PlanItem.due_at > Event.received_at)
    )
    removed = (
        select()
        .select_from(PlanItem)
        .join(Case, PlanItem.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(PlanItem.state == ItemState.REMOVED, PlanItem.finished_at >= since)
    )
    aside: dict[str, int] = dict(
        (await session.execute(removed.add_columns(day, func.count()).where(apart).group_by(day))).all()
    )
    order = _seconds(session, done, Event.received_at)
    ranked = (
        removed.add_columns(
            day.label("day"),
            done.label("done"),
            Event.received_at.label("received"),
            func.row_number().over(partition_by=day, order_by=order).label("rn"),
            func.count().over(partition_by=day).label("n"),
        )
        .where(~apart)
        .subquery()
    )
    picked = await session.execute(
        select(ranked.c.day, ranked.c.rn, ranked.c.n, ranked.c.done, ranked.c.received).where(
            or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2, ranked.c.rn == ranked.c.n)
        )
    )
    per_day: dict[str, dict[int, float]] = {}
    counts: dict[str, int] = {}
    for d, rn, n, done_at, received in picked.all():
        per_day.setdefault(d, {})[rn] = _span(done_at, received)
        counts[d] = n
    out = []
    for back in range(days, -1, -1):
        key = (utcnow() - timedelta(days=back)).date().isoformat()
        n = counts.get(key, 0)
        ranks = per_day.get(key, {})
        mid = None if not n else (ranks[(n + 1) // 2] + ranks[(n + 2) // 2]) / 2 if n % 2 == 0 else ranks[(n + 1) // 2]
        out.append({"day": key, "median": mid, "worst": ranks.get(n), "count": n, "apart": aside.get(key, 0)})
    return out


#: Time-to-revoke percentiles cover the most recently finished cases, at most this many: a bounded
#: sample (it was 10,000 loaded into Python) so the summary costs the same at any history.
TTR_WINDOW = 1_000


async def revoke_percentiles(session: AsyncSession) -> dict[str, Any]:
    """p50/p90/p99/max seconds from effective time to a finished case's last confirmed removal,
    over the last `TTR_WINDOW` done cases: `statistics.quantiles(method="inclusive")` (linear
    interpolation, as PostgreSQL's `percentile_cont`), with the ranks picked by the database
    (`row_number()`, which SQLite has too) and only those rows read."""
    recent = (
        select(Case.id, Event.effective_at)
        .join(Event, Case.event_id == Event.id)
        .where(Case.state == CaseState.DONE)
        .order_by(Case.finished_at.desc())
        .limit(TTR_WINDOW)
        .subquery()
    )
    # The state test sits inside the aggregate so that the items are reached by case, not by state.
    last = func.max(case((PlanItem.state == ItemState.REMOVED, PlanItem.finished_at)))
    per_case = (
        select(recent.c.effective_at.label("start"), last.label("done"))
        .join(PlanItem, PlanItem.case_id == recent.c.id)
        .group_by(recent.c.id, recent.c.effective_at)
        .having(last.is_not(None))
        .subquery()
    )
    key = _seconds(session, per_case.c.done, per_case.c.start)
    ranked = select(
        per_case.c.start,
        per_case.c.done,
        func.row_number().over(order_by=key).label("rn"),
        func.count().over().label("n"),
    ).subquery()
    m = ranked.c.n - 1
    wanted = [ranked.c.rn == ranked.c.n]
    for i in (50, 90, 99):
        wanted += [ranked.c.rn == i * m // 100 + 1, ranked.c.rn == i * m // 100 + 2]
    rows = (
        await session.execute(select(ranked.c.rn, ranked.c.n, ranked.c.done, ranked.c.start).where(or_(*wanted)))
    ).all()
    if not rows:
        return {"p50": None, "p90": None, "p99": None, "max": None, "cases": 0}
    n = rows[0].n
    value = {rn - 1: _span(done, start) for rn, _, done, start in rows}
    cuts: dict[str, float] = {}
    for i in (50, 90, 99):
        if n == 1:
            cuts[f"p{i}"] = value[0]
            continue
        j, delta = divmod(i * (n - 1), 100)
        cuts[f"p{i}"] = (value[j] * (100 - delta) + value[j + 1] * delta) / 100
    return {**cuts, "max": value[n - 1], "cases": n}


@dataclass(frozen=True)
class DeadLetterPage:
    cases: list[Case]
    next: str | None


def _cursor(case: Case) -> str:
    raw = f"{case.updated_at.isoformat()}|{case.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_cursor(value: str) -> tuple[datetime, int]:
    """The (updated_at, id) a `next` cursor stands for; ValueError when it is not one of ours."""
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    moment, _, case_id = raw.partition("|")
    parsed = datetime.fromisoformat(moment)
    if parsed.tzinfo is None:
        raise ValueError("cursor without a timezone")
    return parsed, int(case_id)


async def dead_letter_page(session: AsyncSession, limit: int, after: tuple[datetime, int] | None) -> DeadLetterPage:
    """Failed cases, most recently updated first, one keyset page at a time."""
    stmt = select(Case).where(Case.state == CaseState.FAILED).options(selectinload(Case.event))
    if after is not None:
        moment, case_id = after
        stmt = stmt.where(or_(Case.updated_at < moment, and_(Case.updated_at == moment, Case.id < case_id)))
    found = list(await session.scalars(stmt.order_by(Case.updated_at.desc(), Case.id.desc()).limit(limit + 1)))
    more = len(found) > limit
    found = found[:limit]
    return DeadLetterPage(found, _cursor(found[-1]) if more else None)
