"""What an operator can do to a case or an item, in one transaction each, through the state owner
(so audited and counted like any worker change), attributed to the signed-in operator. The JSON
routes (`/ops/...`), the console's buttons and the CLI all end here."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import (
    CASE_TERMINAL,
    FAILED_BEFORE_SUBMISSION,
    ITEM_TERMINAL,
    BatchState,
    CaseState,
    GuardState,
    ItemState,
)
from app.store import guard
from app.store.models import Case, GuardBatch, IgaRequest, Job, PlanItem
from app.store.queries import load_case
from app.store.transitions import Transitions
from app.store.wakeups import notify_work


class Refused(Exception):
    """The action does not apply to the case or item as it is now (`status`: 404 or 409)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


async def _case(session: AsyncSession, case_id: int) -> Case:
    try:
        return await load_case(session, case_id)
    except LookupError:
        raise Refused(404, f"no case {case_id}") from None


async def _item(session: AsyncSession, item_id: int) -> tuple[PlanItem, Case]:
    item = await session.get(PlanItem, item_id)
    if item is None:
        raise Refused(404, f"no plan item {item_id}")
    return item, await _case(session, item.case_id)


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


def never_sent(item: PlanItem) -> bool:
    """Failed only because its case failed before sending it: an operator retry plans it again."""
    return item.state == ItemState.FAILED and (item.note or "").startswith(FAILED_BEFORE_SUBMISSION)


async def retry_case(session: AsyncSession, case_id: int, actor: str, reason: str) -> dict[str, Any]:
    """Resume a dead letter where it stopped. Batches already sent are looked up, never resent
    blind, so a retry cannot submit a removal twice."""
    changes, case = Transitions(session, actor), await _case(session, case_id)
    if case.state != CaseState.FAILED:
        raise Refused(409, f"case {case_id} is {case.state}; only failed cases can be retried")
    if case.iga_user is None:
        resume = CaseState.RECEIVED
    else:
        resume = CaseState.INVENTORIED if not case.items else CaseState.SUBMITTING
    why = f"operator retry: {reason}"
    for item in case.items:
        if never_sent(item):
            changes.item(
                item, ItemState.HELD if item.action == "hold" else ItemState.PLANNED, why, event_id=case.event_id
            )
        elif item.state == ItemState.UNCERTAIN:  # its batch is looked up again before any resend
            changes.item(item, ItemState.PLANNED, why, event_id=case.event_id)
    changes.case(case, resume, why)
    await _wake(session, case, changes)
    return {"case_id": case_id, "state": resume}


async def cancel_case(session: AsyncSession, case_id: int, actor: str, reason: str) -> dict[str, Any]:
    """Cancel every removal of the case not yet sent to the IGA."""
    changes, case = Transitions(session, actor), await _case(session, case_id)
    if case.state in (CaseState.DONE, CaseState.CANCELLED):
        raise Refused(409, f"case {case_id} is already {case.state}")
    cancelled = 0
    for item in case.items:
        unsent = item.state in (ItemState.PLANNED, ItemState.SCHEDULED, ItemState.HELD)
        if (unsent and item.request_row_id is None) or never_sent(item):
            changes.item(item, ItemState.CANCELLED, f"operator cancel: {reason}", event_id=case.event_id)
            cancelled += 1
    in_flight = [i for i in case.items if i.state not in ITEM_TERMINAL]
    if not in_flight:
        changes.case(case, CaseState.CANCELLED, f"operator cancel: {reason}")
        await _end_job(session, case)
    return {
        "case_id": case_id,
        "state": case.state,
        "cancelled_items": cancelled,
        "still_with_iga": [i.id for i in in_flight],
    }


async def settle_case(
    session: AsyncSession, case_id: int, actor: str, reason: str, outcome: Literal["removed", "failed"]
) -> dict[str, Any]:
    """For a batch leaver cannot prove sent or unsent: the operator checked the IGA and says whether
    the access is gone (`removed`) or must be handled by hand (`failed`). Nothing is sent."""
    changes, case = Transitions(session, actor), await _case(session, case_id)
    if case.state != CaseState.FAILED:
        raise Refused(409, f"case {case_id} is {case.state}; only failed cases are settled")
    uncertain = [i for i in case.items if i.state == ItemState.UNCERTAIN]
    if not uncertain:
        raise Refused(409, f"case {case_id} has no uncertain removal to settle")
    why = f"operator settled ({outcome}): {reason}"
    batches = {i.request_row_id for i in uncertain}
    for row in await session.scalars(select(IgaRequest).where(IgaRequest.id.in_(batches))):
        if row.state == BatchState.SENDING:
            changes.batch(case, row, BatchState.FAILED, why, note=why)
    for item in uncertain:
        item.note = why
        changes.item(item, ItemState(outcome), why, event_id=case.event_id)
    # Done unless something still waits for the operator's retry (never sent at all).
    if not any(i.state not in ITEM_TERMINAL or never_sent(i) for i in case.items):
        changes.case(case, CaseState.DONE, why)
        await _end_job(session, case)
    return {"case_id": case_id, "state": case.state, "settled_items": [i.id for i in uncertain]}


async def approve_item(session: AsyncSession, item_id: int, actor: str, reason: str) -> dict[str, Any]:
    """Release a held item for removal now."""
    changes = Transitions(session, actor)
    item, case = await _item(session, item_id)
    if item.state != ItemState.HELD:
        raise Refused(409, f"item {item_id} is {item.state}; only held items can be approved")
    if case.state in CASE_TERMINAL:
        raise Refused(409, f"case {case.id} is {case.state}; retry it first")
    changes.item(item, ItemState.PLANNED, f"operator approved removal: {reason}", event_id=case.event_id)
    item.action, item.due_at, item.approved_at = "remove", changes.now, changes.now
    await _wake(session, case, changes)
    return {"item_id": item_id, "state": ItemState.PLANNED}


async def keep_item(session: AsyncSession, item_id: int, actor: str, reason: str) -> dict[str, Any]:
    """Decide a held item is not to be removed: it is kept, with the operator's comment."""
    changes = Transitions(session, actor)
    item, case = await _item(session, item_id)
    if item.state != ItemState.HELD:
        raise Refused(409, f"item {item_id} is {item.state}; only held items can be kept")
    item.action, item.note = "keep", f"kept by {actor}: {reason}"
    changes.item(item, ItemState.KEPT, f"operator kept the access: {reason}", event_id=case.event_id)
    await _wake(session, case, changes)
    return {"item_id": item_id, "state": ItemState.KEPT}


async def reverify_case(session: AsyncSession, case_id: int, actor: str, reason: str) -> dict[str, Any]:
    """Look at the IGA again for removals reported done but still listed (`failed` by verify), with a
    fresh grace period: the IGA's catalogue may have caught up since."""
    changes, case = Transitions(session, actor), await _case(session, case_id)
    stale = [i for i in case.items if i.state == ItemState.FAILED and (i.note or "").startswith("still held")]
    if not stale:
        raise Refused(409, f"case {case_id} has no removal that verification found still held")
    why = f"operator re-verify: {reason}"
    for item in stale:
        item.iga_done_at, item.note = changes.now, None
        back = ItemState.SUBMITTED if item.iga_request_id else ItemState.PLANNED
        changes.item(item, back, why, event_id=case.event_id)
    changes.case(case, CaseState.VERIFYING, why)
    await _wake(session, case, changes)
    return {"case_id": case_id, "state": case.state, "items": [i.id for i in stale]}


async def _held_batch(session: AsyncSession, batch_id: int) -> tuple[GuardBatch, list[Case]]:
    batch = await session.get(GuardBatch, batch_id)
    if batch is None:
        raise Refused(404, f"no guard batch {batch_id}")
    if batch.state != GuardState.HELD:
        raise Refused(409, f"guard batch {batch_id} is already {batch.state} (by {batch.decided_by})")
    ids = await session.scalars(
        select(Case.id).where(Case.guard_batch_id == batch_id, Case.state.not_in(tuple(CASE_TERMINAL)))
    )
    return batch, [await load_case(session, case_id) for case_id in ids]


async def confirm_guard(session: AsyncSession, batch_id: int, actor: str, reason: str) -> dict[str, Any]:
    """The leavers are real: every case the guard held proceeds to submission."""
    changes = Transitions(session, actor)
    batch, cases = await _held_batch(session, batch_id)
    changes.guard_decided(batch, GuardState.CONFIRMED, reason)
    released = [c for c in cases if c.state == CaseState.PLANNED]
    for case in released:
        changes.case(case, CaseState.SUBMITTING, f"guard batch {batch_id} confirmed by {actor}: {reason}")
        await _wake(session, case, changes)
    await notify_work(session)
    return {"batch_id": batch_id, "state": batch.state, "cases": len(released)}


async def cancel_guard(session: AsyncSession, batch_id: int, actor: str, reason: str) -> dict[str, Any]:
    """A bad feed: every case the guard held is cancelled and nothing of it is submitted."""
    changes = Transitions(session, actor)
    batch, cases = await _held_batch(session, batch_id)
    changes.guard_decided(batch, GuardState.CANCELLED, reason)
    for case in cases:
        guard.cancel_with_batch(changes, case, batch)
        if case.state in CASE_TERMINAL:
            await _end_job(session, case)
    return {"batch_id": batch_id, "state": batch.state, "cases": len(cases)}
