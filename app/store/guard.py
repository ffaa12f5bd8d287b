"""The blast-radius guard: the day an HR feed marks the whole company terminated, the leavers past
a per-target limit within a window wait in one batch, before any submission, for an operator to
confirm (all proceed) or cancel (nothing is sent).

Whether a case is held depends only on arrivals, so it is the same whichever worker looks, in
whatever order: a case is past the limit when more leavers than allowed arrived on its target in
the window ending at its own arrival (counted from the target's last decision, for cases that came
after it). A batch waiting for an operator also holds whatever arrives while it waits. Rehires and
dry-run cases are never held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import CASE_TERMINAL, ITEM_TERMINAL, ITEM_UNSENT, CaseState, GuardState, ItemState
from app.store.models import Case, Event, GuardBatch
from app.store.transitions import Transitions


@dataclass(frozen=True)
class Verdict:
    """What the guard says of one case: go on, wait in `batch`, or be cancelled with it."""

    batch: GuardBatch | None = None
    cancelled: bool = False

    @property
    def held(self) -> bool:
        return self.batch is not None and not self.cancelled


PASS = Verdict()


async def check(session: AsyncSession, changes: Transitions, case: Case, most: int, window: timedelta) -> Verdict:
    """The guard's verdict on `case`, attaching it to a batch when it must wait (in the caller's transaction)."""
    if case.guard_batch_id is not None:
        return _decided(await session.get(GuardBatch, case.guard_batch_id))
    if most <= 0 or case.dry_run or case.event.type == "user.enabled":
        return PASS
    open_batch = await _held(session, case.target)
    last = await session.scalar(
        select(GuardBatch)
        .where(GuardBatch.target == case.target, GuardBatch.decided_at.is_not(None))
        .order_by(GuardBatch.decided_at.desc())
        .limit(1)
    )
    since = case.created_at - window
    if last is not None and last.decided_at is not None and case.created_at > last.decided_at:
        since = max(since, last.decided_at)
    arrived = await _arrivals(session, case, since)
    if arrived <= most:
        if open_batch is not None and case.created_at >= open_batch.tripped_at:
            return Verdict(open_batch)  # a wave is under way: what comes while it waits waits too
        return PASS
    if open_batch is not None:
        return Verdict(open_batch)
    if last is not None and last.decided_at is not None and case.created_at <= last.decided_at:
        case.guard_batch_id = last.id  # part of the wave an operator already decided on
        return _decided(last)
    return Verdict(await _trip(session, changes, case.target, most, window, arrived))


def cancel_with_batch(changes: Transitions, case: Case, batch: GuardBatch) -> None:
    """A case of a cancelled batch: nothing of it is sent; what is already with the IGA (nothing,
    as a held case submits nothing) is left alone."""
    why = f"blast-radius guard batch {batch.id} cancelled by {batch.decided_by}: {batch.reason}"
    for item in case.items:
        if item.state in ITEM_UNSENT or item.state == ItemState.HELD:
            changes.item(item, ItemState.CANCELLED, why, event_id=case.event_id)
    if all(i.state in ITEM_TERMINAL for i in case.items):
        changes.case(case, CaseState.CANCELLED, why)


def _decided(batch: GuardBatch | None) -> Verdict:
    if batch is None or batch.state == GuardState.CONFIRMED:
        return PASS
    return Verdict(batch, cancelled=batch.state == GuardState.CANCELLED)


async def _held(session: AsyncSession, target: str) -> GuardBatch | None:
    return await session.scalar(
        select(GuardBatch).where(GuardBatch.target == target, GuardBatch.state == GuardState.HELD)
    )


async def _arrivals(session: AsyncSession, case: Case, since: datetime) -> int:
    """Leavers (not rehires, not dry runs) on the case's target from `since` up to the case itself."""
    n = await session.scalar(
        select(func.count(Case.id))
        .join(Event, Event.id == Case.event_id)
        .where(
            Case.target == case.target,
            Case.dry_run.is_(False),
            Event.type != "user.enabled",
            Case.created_at >= since,
            Case.created_at <= case.created_at,
            Case.id <= case.id,
        )
    )
    return int(n or 0)


async def _trip(
    session: AsyncSession, changes: Transitions, target: str, most: int, window: timedelta, arrived: int
) -> GuardBatch:
    """A new held batch, or the one another worker created at the same moment (one per target)."""
    try:
        async with session.begin_nested():
            batch = changes.guard_tripped(target, most, window.total_seconds(), arrived)
            await session.flush()
    except IntegrityError:
        found = await _held(session, target)
        if found is None:
            raise
        return found
    why = f"{arrived} leavers on {target} within {_span(window)} (at most {most}): further cases wait for an operator"
    changes.audit("guard", str(batch.id), None, GuardState.HELD, why, event_id=None)
    return batch


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


async def batches(session: AsyncSession, *, limit: int = 20, first: int = 5) -> list[dict[str, Any]]:
    """Guard batches, waiting ones first, each with its size and first events (for every view)."""
    rows = list(
        await session.scalars(
            select(GuardBatch).order_by((GuardBatch.state == GuardState.HELD).desc(), GuardBatch.id.desc()).limit(limit)
        )
    )
    out = []
    for b in rows:
        size = await session.scalar(select(func.count(Case.id)).where(Case.guard_batch_id == b.id))
        waiting = await session.scalar(
            select(func.count(Case.id)).where(Case.guard_batch_id == b.id, Case.state.not_in(tuple(CASE_TERMINAL)))
        )
        firsts = await session.execute(
            select(Case.id, Case.event_id, Event.user_username, Event.user_email, Event.type)
            .join(Event, Event.id == Case.event_id)
            .where(Case.guard_batch_id == b.id)
            .order_by(Case.created_at, Case.id)
            .limit(first)
        )
        out.append(
            {
                "id": b.id,
                "target": b.target,
                "state": b.state,
                "tripped_at": b.tripped_at.isoformat(),
                "max_leavers": b.max_leavers,
                "window_seconds": b.window_seconds,
                "cases": int(size or 0),
                "waiting": int(waiting or 0),
                "first_events": [
                    {"case_id": c, "event_id": e, "user": u or m, "type": t} for c, e, u, m, t in firsts.all()
                ],
                "decided_by": b.decided_by,
                "decided_at": b.decided_at.isoformat() if b.decided_at else None,
                "reason": b.reason,
            }
        )
    return out
