"""The evidence report for auditors: every leaver of a period, each access item's fate, its
time-to-revoke against the SLA, and a hash tying the row to its audit trail.

Rows are read a keyset page of cases at a time (with those cases' items and audit rows), so a
period of any size streams in constant memory. Time-to-revoke is `reads.item_ttr`, the one
definition the console and the metrics use."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import ItemState
from app.store import reads
from app.store.models import Audit, Case, Event, PlanItem, utcnow

#: Cases read per keyset page (with all their items and audit rows).
PAGE = 200

COLUMNS = (
    "event_id",
    "external_id",
    "source",
    "user",
    "event_type",
    "occurred_at",
    "received_at",
    "case_id",
    "target",
    "case_state",
    "dry_run",
    "item_id",
    "item_name",
    "application",
    "privileged",
    "action",
    "rule",
    "reason",
    "item_state",
    "due_at",
    "iga_request_id",
    "submitted_at",
    "iga_done_at",
    "time_to_revoke_seconds",
    "sla_seconds",
    "breach",
    "still_held_after_verify",
    "note",
    "audit_sha256",
)


@dataclass(frozen=True)
class Sla:
    """Seconds a removal may take: by policy rule first, then by target, then the global value."""

    seconds: float = 86400.0
    targets: dict[str, float] = field(default_factory=dict)
    rules: dict[str, float] = field(default_factory=dict)

    def of(self, target: str, rule: str | None) -> float:
        if rule and rule in self.rules:
            return self.rules[rule]
        return self.targets.get(target, self.seconds)


@dataclass(frozen=True)
class Period:
    """Leavers whose event leaver received in [since, until), optionally on one target."""

    since: datetime
    until: datetime
    target: str | None = None


@dataclass
class Totals:
    leavers: int = 0
    cases: int = 0
    dry_run_cases: int = 0
    items: int = 0
    removed: int = 0
    kept: int = 0
    scheduled: int = 0
    open: int = 0
    still_held_after_verify: int = 0
    breaches: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    breaches_by: dict[str, int] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        self.items += row["item_id"] is not None
        state = row["item_state"]
        if state:
            self.by_state[state] = self.by_state.get(state, 0) + 1
        self.removed += state == ItemState.REMOVED
        self.kept += state == ItemState.KEPT
        self.scheduled += state == ItemState.SCHEDULED
        self.open += state in (ItemState.PLANNED, ItemState.HELD, ItemState.SUBMITTED, ItemState.UNCERTAIN)
        self.still_held_after_verify += bool(row["still_held_after_verify"])
        if row["breach"]:
            self.breaches += 1
            key = f"{row['target']} / {row['rule']}"
            self.breaches_by[key] = self.breaches_by.get(key, 0) + 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def audit_hash(rows: list[Audit]) -> str:
    """SHA-256 of the rows (in id order) as canonical JSON: sorted keys, no spaces, UTF-8."""
    doc = [
        {
            "id": a.id,
            "at": _iso(a.at),
            "actor": a.actor,
            "entity": a.entity,
            "entity_id": a.entity_id,
            "event_id": a.event_id,
            "case_id": a.case_id,
            "before": a.before,
            "after": a.after,
            "why": a.why,
        }
        for a in sorted(rows, key=lambda a: a.id)
    ]
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def _breach(item: PlanItem, case: Case, received: datetime, ttr: float | None, sla: float, now: datetime) -> bool:
    """Slower than the SLA, counted from receipt, or from the due time of a removal policy
    scheduled for later; a removal still not done is judged at `now`. Dry runs never breach."""
    if case.dry_run or item.action != "remove":
        return False
    start = max(received, item.due_at) if item.due_at else received
    allowed = sla + (start - received).total_seconds()
    if ttr is not None:
        return ttr > allowed
    if item.state in (ItemState.KEPT, ItemState.CANCELLED, ItemState.REMOVED):
        return False
    return (now - received).total_seconds() > allowed


def _row(
    event: Event, case: Case, item: PlanItem | None, audit: list[Audit], sla: Sla, now: datetime
) -> dict[str, Any]:
    user = event.user_username or event.user_email or event.user_employee_id or event.user_dn
    row: dict[str, Any] = {
        "event_id": event.id,
        "external_id": event.external_id,
        "source": event.source,
        "user": user,
        "event_type": event.type,
        "occurred_at": _iso(event.occurred_at),
        "received_at": _iso(event.received_at),
        "case_id": case.id,
        "target": case.target,
        "case_state": case.state,
        "dry_run": case.dry_run,
    }
    if item is None:
        return (
            row
            | dict.fromkeys(COLUMNS[11:-1])
            | {"note": case.error or case.outcome, "audit_sha256": audit_hash(audit)}
        )
    ttr = reads.item_ttr(item, event.received_at)
    seconds = sla.of(case.target, item.rule)
    return row | {
        "item_id": item.item_id,
        "item_name": item.name,
        "application": item.application,
        "privileged": item.privileged,
        "action": item.action,
        "rule": item.rule,
        "reason": item.reason,
        "item_state": item.state,
        "due_at": _iso(item.due_at),
        "iga_request_id": item.iga_request_id,
        "submitted_at": _iso(item.submitted_at),
        "iga_done_at": _iso(item.iga_done_at),
        "time_to_revoke_seconds": None if ttr is None else round(ttr, 3),
        "sla_seconds": seconds,
        "breach": _breach(item, case, event.received_at, ttr, seconds, now),
        "still_held_after_verify": item.state == ItemState.FAILED and item.iga_done_at is not None,
        "note": item.note,
        "audit_sha256": audit_hash(audit),
    }


def _in(period: Period) -> list[Any]:
    where = [Event.received_at >= period.since, Event.received_at < period.until]
    return [*where, Case.target == period.target] if period.target else where


def _cases(period: Period) -> Any:
    return select(Case, Event).join(Event, Case.event_id == Event.id).where(*_in(period))


async def rows(
    session: AsyncSession, period: Period, sla: Sla, totals: Totals | None = None, *, breaches_only: bool = False
) -> AsyncIterator[dict[str, Any]]:
    """Every item row of the period in case order, one keyset page of cases at a time; a case
    with no items (the person is unknown, or it failed before planning) is one row."""
    now, after = utcnow(), 0
    while True:
        page = (await session.execute(_cases(period).where(Case.id > after).order_by(Case.id).limit(PAGE))).all()
        if not page:
            return
        ids = [case.id for case, _ in page]
        after = ids[-1]
        items: dict[int, list[PlanItem]] = {}
        for item in await session.scalars(select(PlanItem).where(PlanItem.case_id.in_(ids)).order_by(PlanItem.id)):
            items.setdefault(item.case_id, []).append(item)
        trail: dict[tuple[int, str], list[Audit]] = {}
        for a in await session.scalars(select(Audit).where(Audit.case_id.in_(ids)).order_by(Audit.id)):
            key = (a.case_id or 0, a.entity_id if a.entity == "item" else "")
            trail.setdefault(key, []).append(a)
        for case, event in page:
            if totals is not None:
                totals.cases += 1
                totals.dry_run_cases += case.dry_run
            found: list[PlanItem | None] = [*items.get(case.id, [])] or [None]
            for entry in found:
                audit = trail.get((case.id, str(entry.id) if entry else ""), [])
                row = _row(event, case, entry, audit, sla, now)
                if totals is not None:
                    totals.add(row)
                if row["breach"] or not breaches_only:
                    yield row
        session.expunge_all()


async def leaver_count(session: AsyncSession, period: Period) -> int:
    stmt = select(func.count(func.distinct(Case.event_id))).join(Event, Case.event_id == Event.id).where(*_in(period))
    return int(await session.scalar(stmt) or 0)


async def ttr_by_day(session: AsyncSession, period: Period) -> list[dict[str, Any]]:
    """Median and worst time-to-revoke per UTC day of completion over the period's removed items,
    dry runs excluded: the database ranks each day's removals and hands back only the middle and
    worst rows, whose spans are then `reads.item_ttr` of them (the one definition)."""
    done = func.coalesce(PlanItem.iga_done_at, PlanItem.finished_at)
    day = reads._day(session, done)
    base = (
        select(
            day.label("day"),
            PlanItem.id.label("item"),
            func.row_number()
            .over(partition_by=day, order_by=(reads._seconds(session, done, Event.received_at), PlanItem.id))
            .label("rn"),
            func.count().over(partition_by=day).label("n"),
        )
        .join(Case, PlanItem.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(
            PlanItem.state == ItemState.REMOVED,
            done.is_not(None),
            Case.dry_run.is_(False),
            *_in(period),
        )
    )
    ranked = base.subquery()
    wanted = or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2, ranked.c.rn == ranked.c.n)
    picked = (
        await session.execute(
            select(ranked.c.day, ranked.c.rn, ranked.c.n, PlanItem, Event.received_at)
            .join(PlanItem, PlanItem.id == ranked.c.item)
            .join(Case, PlanItem.case_id == Case.id)
            .join(Event, Case.event_id == Event.id)
            .where(wanted)
        )
    ).all()
    per_day: dict[str, dict[int, float]] = {}
    counts: dict[str, int] = {}
    for d, rn, n, item, received in picked:
        per_day.setdefault(d, {})[rn] = reads.item_ttr(item, received) or 0.0
        counts[d] = n
    out = []
    for d in sorted(counts):
        n, ranks = counts[d], per_day[d]
        mid = (ranks[(n + 1) // 2] + ranks[(n + 2) // 2]) / 2
        out.append({"day": d, "median": mid, "worst": ranks[n], "count": n})
    return out
