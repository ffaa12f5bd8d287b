"""The pipeline steps: resolve → plan → submit → track → verify, one per case state.

Each step reads a snapshot, talks to the IGA outside any transaction, then commits its result,
the case's next state and the job's next run time in one fenced transaction. A crash anywhere
resumes at the step the case is in. Submission is write-ahead (`app.worker.submission`); what
one case of a person may do to another is in `app.worker.overlap`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from app import faults
from app.domain import ITEM_TERMINAL, CaseState, IgaStatus, ItemState, UserIdentifiers, is_due
from app.iga.base import UserNotFound
from app.metrics import HOLDS_ESCALATED
from app.policy.evaluate import evaluate
from app.runtime import Runtime
from app.store.models import PlanItem, utcnow
from app.store.queries import OtherItem, lock_person, open_items, sends_in_flight
from app.store.queue import Claim
from app.worker.overlap import (
    cancel_for_rehire,
    settle_overlap,
    superseded_by_rehire,
    wake_touched_cases,
    withdraw_submitted,
)
from app.worker.submission import apply_status, step_submit
from app.worker.unit import Resolved, Snapshot, Tx, write

log = structlog.get_logger(__name__)


async def step_resolve(rt: Runtime, claim: Claim, snap: Snapshot) -> None:
    """Find the user and list what they hold (two reads; nothing changes in the IGA)."""
    client = rt.client(snap.target)
    u = snap.event.user
    ids = UserIdentifiers(
        dn=u.dn, username=u.username, email=u.email, employee_id=u.employee_id, iga_id=u.ids.get(snap.target)
    )
    try:
        user = await client.find_user(ids)
    except UserNotFound as exc:
        # Not a failure: this person has nothing in this IGA. Said apart from real errors.
        async with write(rt, claim) as tx:
            tx.case.outcome = f"not found in {snap.target}: nothing to remove ({exc})"
            tx.changes.case(tx.case, CaseState.DONE, tx.case.outcome)
            await tx.schedule(None)
        return
    listed_at = utcnow()
    items = await client.list_access(user)
    faults.crash_point("before_resolve_commit")
    async with write(rt, claim) as tx:
        tx.case.record_resolved(user, items, listed_at)
        why = f"user {user.id} found in {snap.target}; {len(items)} access items listed"
        tx.changes.case(tx.case, CaseState.INVENTORIED, why)
        await tx.schedule(tx.now)
    faults.crash_point("after_resolve")


async def step_plan(rt: Runtime, claim: Claim, snap: Resolved) -> None:
    """Apply policy to the inventory (pure), or, for a rehire, cancel what is still pending."""
    rehire = snap.event.type == "user.enabled"
    withdrawn = await withdraw_submitted(rt, claim, snap) if rehire else {}
    faults.crash_point("before_plan_commit")
    async with write(rt, claim) as tx:
        await lock_person(tx.session, snap.person)
        if await superseded_by_rehire(tx, snap):
            return
        if rehire and await sends_in_flight(tx.session, snap.person):
            # An older case has a batch written ahead whose send is not settled: it may reach the
            # IGA any moment. Let that case adopt it (or drop it) first, then this rehire
            # withdraws it like any other submitted removal.
            await tx.schedule(tx.now + timedelta(seconds=rt.settings.track_initial_seconds))
            return
        others = await open_items(tx.session, snap.person)
        if rehire:
            cancel_for_rehire(tx, snap, others, withdrawn)
            await wake_touched_cases(tx, others)
            tx.changes.case(tx.case, CaseState.DONE, "rehire: pending removals of earlier events cancelled")
            await tx.schedule(None)
            return
        planned = await _plan_items(rt, tx, snap, others)
        await wake_touched_cases(tx, others)
        if snap.dry_run or rt.settings.dry_run:
            tx.changes.case(tx.case, CaseState.DONE, "dry run: planned, nothing submitted")
            await tx.schedule(None)
            return
        tx.changes.case(tx.case, CaseState.SUBMITTING, f"planned {planned} items")
        await tx.schedule(tx.now)
    faults.crash_point("after_plan")


async def _plan_items(rt: Runtime, tx: Tx, snap: Resolved, others: dict[str, OtherItem]) -> int:
    """One plan item per inventoried access item, each with its rule; returns how many."""
    case = tx.case
    plan = evaluate(rt.policy, snap.event, snap.user, case.inventory_items(), target=snap.target, now=tx.now)
    for decision in plan.decisions:
        item = decision.item
        row = tx.changes.new_item(
            case, item, action=decision.action, rule=decision.rule, reason=decision.reason, due_at=decision.due_at
        )
        await tx.session.flush()
        tx.changes.item_planned(case, row)
        if settle_overlap(tx, snap, row, others.get(item.id)):
            continue
        if decision.action == "keep":
            tx.changes.item(row, ItemState.KEPT, decision.reason, event_id=snap.event_id)
        elif decision.action == "hold":
            tx.changes.item(row, ItemState.HELD, f"waits for an operator: {decision.reason}", event_id=snap.event_id)
        elif not item.removable and item.granted_by != "role":
            note = f"the IGA refuses removal requests for {item.granted_by} access; end it at the source"
            row.note = note
            tx.changes.item(row, ItemState.FAILED, note, event_id=snap.event_id)
        elif decision.due_at and decision.due_at > tx.now:
            tx.changes.item(row, ItemState.SCHEDULED, f"due {decision.due_at.isoformat()}", event_id=snap.event_id)
    return len(plan.decisions)


def _awaiting_iga(item: PlanItem) -> bool:
    return item.state == ItemState.SUBMITTED and item.iga_status == IgaStatus.PENDING


def _awaiting_verify(item: PlanItem) -> bool:
    if item.state == ItemState.SUBMITTED:
        return item.iga_status in (IgaStatus.COMPLETED, IgaStatus.CANCELLED)
    # Role-granted items are not requested themselves: they go when their role goes.
    return item.state == ItemState.PLANNED and item.action == "remove" and not item.removable


def _backoff(rt: Runtime, polls: int) -> timedelta:
    return timedelta(
        seconds=min(rt.settings.track_max_seconds, rt.settings.track_initial_seconds * 2 ** min(polls, 20))
    )


async def step_track(rt: Runtime, claim: Claim, snap: Resolved) -> None:
    """Poll the IGA for every open request of the case, backing off between polls."""
    pending = [i for i in snap.items if _awaiting_iga(i)]
    states = {}
    if pending:
        states = await rt.client(snap.target).get_requests(snap.user, [i.request_ref() for i in pending])
    faults.crash_point("after_track")
    async with write(rt, claim) as tx:
        for item in tx.case.items:
            state = states.get(item.iga_tracking_id or "") if _awaiting_iga(item) else None
            if state is not None and (state.status != item.iga_status or state.raw_status != item.iga_raw_status):
                why = f"IGA status {state.raw_status} ({state.status.value})"
                tx.changes.item_remark(item, why, event_id=snap.event_id)
                apply_status(tx, item, state.status, state.raw_status, state.message)
        await _route_after_tracking(rt, tx)
    faults.crash_point("after_track_commit")


async def _route_after_tracking(rt: Runtime, tx: Tx) -> None:
    case, now = tx.case, tx.now
    if any(is_due(i, now) for i in case.items):
        tx.changes.case(case, CaseState.SUBMITTING, "scheduled removals are due")
        await tx.schedule(now)
    elif any(_awaiting_iga(i) for i in case.items):
        case.polls += 1
        await tx.schedule(now + _backoff(rt, case.polls))
    else:
        tx.changes.case(case, CaseState.VERIFYING, "the IGA finished every submitted request")
        await tx.schedule(now)


async def step_verify(rt: Runtime, claim: Claim, snap: Resolved) -> None:
    """List access again: an item the IGA called done but still held is reported, not hidden."""
    held = {a.id for a in await rt.client(snap.target).list_access(snap.user)}
    faults.crash_point("before_verify_commit")
    grace = timedelta(seconds=rt.settings.verify_grace_seconds)
    async with write(rt, claim) as tx:
        now, waiting = tx.now, False
        for item in tx.case.items:
            if not _awaiting_verify(item):
                continue
            since = item.iga_done_at or item.updated_at
            if item.item_id not in held:
                what = (
                    "removed with its role"
                    if item.state == ItemState.PLANNED
                    else f"the IGA reports {item.iga_raw_status}"
                )
                item.note = None
                tx.changes.item(
                    item, ItemState.REMOVED, f"no longer held; {what}", event_id=snap.event_id, case=tx.case
                )
            elif now - since >= grace:
                if item.iga_status == IgaStatus.CANCELLED:
                    why = f"the IGA cancelled the request ({item.iga_raw_status}) and the item is still held"
                    tx.changes.item(item, ItemState.CANCELLED, why, event_id=snap.event_id)
                else:
                    waited = int(grace.total_seconds())
                    item.note = (
                        f"still held {waited}s after the IGA reported completion"
                        if item.state == ItemState.SUBMITTED
                        else f"still held {waited}s on: it goes only with the role or profile that grants it"
                    )
                    tx.changes.item(item, ItemState.FAILED, item.note, event_id=snap.event_id)
            else:
                waiting = True
                item.note = "awaiting IGA verification: the IGA reported completion, the item is still listed"
        items = tx.case.items
        if all(i.state in ITEM_TERMINAL for i in items):
            tx.changes.case(tx.case, CaseState.DONE, "every item is in a terminal state")
            await tx.schedule(None)
            return
        tx.changes.case(tx.case, CaseState.TRACKING, "open items remain (scheduled, held or awaiting verification)")
        next_due = min((i.due_at for i in items if i.state == ItemState.SCHEDULED and i.due_at), default=None)
        escalation = _escalate_holds(rt, tx)
        if escalation is not None:
            next_due = min(next_due, escalation) if next_due else escalation
        tx.case.polls += 1
        # Only held or scheduled items left: look again daily (or when one falls due).
        recheck = now + (_backoff(rt, tx.case.polls) if waiting else timedelta(days=1))
        await tx.schedule(min(recheck, next_due) if next_due else recheck)


ESCALATED = "escalated"


def _escalate_holds(rt: Runtime, tx: Tx) -> datetime | None:
    """Held items nobody decided on within LEAVER_HOLD_ESCALATE_AFTER_SECONDS are flagged once (on
    the item, in the audit, a metric and a warning); returns when the next one falls due."""
    after = rt.settings.hold_escalate_after_seconds
    if after is None:
        return None
    limit, upcoming = timedelta(seconds=after), []
    for item in tx.case.items:
        if item.state != ItemState.HELD or (item.note or "").startswith(ESCALATED):
            continue
        if tx.now - item.updated_at >= limit:
            hours = after / 3600
            note = f"{ESCALATED}: held {hours:g} h without an operator's decision ({item.reason})"
            tx.changes.item_note(item, note, event_id=tx.case.event_id)
            HOLDS_ESCALATED.labels(tx.case.target).inc()
            log.warning("item.hold_escalated", case=tx.case.id, item=item.id, target=tx.case.target, hours=hours)
        else:
            upcoming.append(item.updated_at + limit)
    return min(upcoming, default=None)


Step = Callable[[Runtime, Claim, Resolved], Awaitable[None]]
#: What runs in each state once the user is resolved.
STEPS: dict[CaseState, Step] = {
    CaseState.INVENTORIED: step_plan,
    CaseState.PLANNED: step_submit,
    CaseState.SUBMITTING: step_submit,
    CaseState.TRACKING: step_track,
    CaseState.VERIFYING: step_verify,
}
