"""The write-ahead submission, the heart of exactly-once:

1. commit a `sending` batch row with its key and items *before* the IGA call;
2. call the IGA; on an answer, commit its request IDs and `submitted` in one transaction;
3. a batch found still `sending` (crash, lost answer, timeout) is never just resent: the adapter
   looks for it by key first and the request found is adopted; only after a grace period with no
   trace is it sent again, with the same key, and the audit says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from app import faults
from app.domain import (
    CASE_TERMINAL,
    ITEM_TERMINAL,
    ITEM_UNSENT,
    BatchState,
    CaseState,
    IgaStatus,
    ItemState,
    RemovalRequest,
    RequestRef,
    is_due,
)
from app.iga.base import IgaClient, IgaPermanentError, IgaUncertainError
from app.iga.http import write_deadline
from app.runtime import Runtime
from app.store import guard
from app.store.models import IgaRequest, PlanItem, utcnow
from app.store.queries import lock_person, newer_rehire, sent_elsewhere, unsent_item_ids
from app.store.queue import Claim
from app.worker.unit import Resolved, Tx, lease_deadline, write


async def step_submit(rt: Runtime, claim: Claim, snap: Resolved) -> None:
    """Submit every removal that is due, batch by batch; first settle any batch a crash or lost
    answer left in `sending`."""
    if await _held_at_guard(rt, claim, snap):
        return
    client = rt.client(snap.target)
    now = utcnow()
    for row in [r for r in snap.requests if r.state == BatchState.SENDING]:
        # Items of the batch still without the IGA's request (a partial find adopted the others).
        batch = [i.removal() for i in snap.items if i.request_row_id == row.id and i.state in ITEM_UNSENT]
        waited = await _recover_batch(rt, claim, client, snap, row, batch, now)
        if waited is not None:
            async with write(rt, claim) as tx:
                await tx.schedule(waited)
            return
    due = [i.removal() for i in snap.items if is_due(i, now)]
    next_no = len(snap.requests) + 1
    for batch in client.batch_items(due):
        await _submit_batch(rt, claim, client, snap, batch, next_no)
        next_no += 1
    async with write(rt, claim) as tx:
        tx.changes.case(tx.case, CaseState.TRACKING, "every due removal submitted")
        await tx.schedule(tx.now + timedelta(seconds=rt.settings.track_initial_seconds))
    faults.crash_point("after_submit")


async def _held_at_guard(rt: Runtime, claim: Claim, snap: Resolved) -> bool:
    """The blast-radius guard (`app.store.guard`): a held case waits, planned and without a job,
    until an operator decides on its batch; a cancelled batch cancels it."""
    most, window = rt.guard(snap.target)
    if snap.guard_batch_id is None and (most <= 0 or snap.requests):
        return False  # no guard, or the case passed it before it sent anything (a verdict never turns)
    async with write(rt, claim) as tx:
        verdict = await guard.check(tx.session, tx.changes, tx.case, most, window)
        if verdict.batch is None:
            return False
        if verdict.cancelled:
            guard.cancel_with_batch(tx.changes, tx.case, verdict.batch)
        elif tx.case.state != CaseState.PLANNED:
            why = f"held at the blast-radius guard in batch {verdict.batch.id}: an operator confirms or cancels it"
            tx.changes.guard_hold(tx.case, verdict.batch, why)
        if tx.case.state in CASE_TERMINAL or verdict.held:
            await tx.schedule(None)
            return True
    return False


async def _submit_batch(
    rt: Runtime, claim: Claim, client: IgaClient, snap: Resolved, batch: list[RemovalRequest], batch_no: int
) -> None:
    key = f"leaver-{snap.case_id}-{batch_no}"
    async with write(rt, claim) as tx:
        await lock_person(tx.session, snap.person)
        # A rehire or a newer event may have cancelled some of these since the snapshot. Read
        # their state again now that we hold the lock (the loaded rows predate it).
        live = await unsent_item_ids(tx.session, snap.case_id)
        rehire = await newer_rehire(tx.session, snap.person)
        if rehire is not None:  # e.g. an operator retried this case after the person came back
            for item in tx.case.items:
                if item.id in live:
                    why = f"rehire event {rehire} is newer than this {snap.event.type}: not sent"
                    tx.changes.item(item, ItemState.CANCELLED, why, event_id=snap.event_id)
            return
        mine = {i.item_id: i.id for i in tx.case.items if i.id in live}
        taken = await sent_elsewhere(tx.session, snap.person, mine, since=tx.case.inventoried_at or tx.case.created_at)
        for item in tx.case.items:
            if item.id in taken:
                why = f"already with the IGA under case {taken[item.id]}; not sent twice"
                tx.changes.item(item, ItemState.CANCELLED, why, event_id=snap.event_id)
        batch = [r for r in batch if r.plan_item_id in live and r.plan_item_id not in taken]
        if not batch:
            return
        ids = {r.plan_item_id for r in batch}
        items = [i for i in tx.case.items if i.id in ids]
        row = tx.changes.new_batch(tx.case, batch_no, key, items)
        await tx.session.flush()
        for item in items:
            item.request_row_id = row.id
        row_id = row.id
    faults.crash_point("after_intent")
    refs = await _send(rt, claim, client, snap, batch, key, row_id)
    if refs is None:
        return
    faults.crash_point("after_send")
    async with write(rt, claim) as tx:
        await adopt(tx, row_id, refs, "submitted")
    faults.crash_point("after_submit_commit")


async def _send(
    rt: Runtime, claim: Claim, client: IgaClient, snap: Resolved, batch: list[RemovalRequest], key: str, row_id: int
) -> list[RequestRef] | None:
    """Send a written-ahead batch under the job's lease. None: the IGA refused it (the batch failed).
    An unanswered send is marked uncertain from now, then the step fails and is retried."""
    deadline = await lease_deadline(rt, claim)
    faults.crash_point("before_send")
    try:
        with write_deadline(deadline):
            return await client.submit_removals(snap.user, batch, key)
    except IgaPermanentError as exc:
        async with write(rt, claim) as tx:
            await fail_batch(tx, row_id, f"the IGA refused the request: {exc}")
        return None
    except IgaUncertainError as exc:
        async with write(rt, claim) as tx:
            tx.changes.batch_uncertain(tx.case, await _batch_row(tx, row_id), f"no answer from the IGA: {exc}")
        raise


async def _recover_batch(
    rt: Runtime,
    claim: Claim,
    client: IgaClient,
    snap: Resolved,
    row: IgaRequest,
    batch: list[RemovalRequest],
    now: datetime,
) -> datetime | None:
    """Exactly-once: look for the earlier send before anything is sent again. Returns the time
    to look again when the grace period for an asynchronous IGA has not yet passed."""
    refs = await client.find_existing(snap.user, batch, row.key) if batch else []
    if refs or not batch:
        async with write(rt, claim) as tx:
            await adopt(tx, row.id, refs, "found in the IGA after an interrupted submission; adopted", recovered=True)
        found = {r.item_id for r in refs}
        batch = [r for r in batch if r.item.id not in found]
        if not batch:
            return None
    # No trace (of these items) yet: wait out the grace period, then send them again.
    grace = timedelta(seconds=rt.settings.resend_grace_seconds)
    if row.uncertain_since is None:
        # Found `sending` after a crash or a lost lease: the earlier send, if any, was started
        # under a lease that has ended, so the IGA has had it at most from now on.
        async with write(rt, claim) as tx:
            why = "found sending after an interrupted worker; the IGA is given the grace period to list it"
            tx.changes.batch_uncertain(tx.case, await _batch_row(tx, row.id), why)
        return now + grace
    grace_end = row.uncertain_since + grace
    if now < grace_end:
        return grace_end
    async with write(rt, claim) as tx:
        await lock_person(tx.session, snap.person)
        fresh = await _batch_row(tx, row.id)
        rehire = await newer_rehire(tx.session, snap.person)
        if rehire is not None:
            # The first send left no trace and the person was rehired since: send nothing.
            why = f"rehire event {rehire}: the interrupted send left no trace in the IGA; not sent again"
            tx.changes.batch(tx.case, fresh, BatchState.FAILED, why, note=why)
            for item in tx.case.items:
                if item.request_row_id == row.id and item.state not in ITEM_TERMINAL:
                    tx.changes.item(item, ItemState.CANCELLED, why, event_id=snap.event_id)
            return None
        # Items cancelled meanwhile (a rehire) are never sent again.
        live = {i.id for i in tx.case.items if i.request_row_id == row.id and i.state in ITEM_UNSENT}
        batch = [r for r in batch if r.plan_item_id in live]
        if not batch:
            why = "no trace in the IGA and its items were cancelled: not sent"
            tx.changes.batch(tx.case, fresh, BatchState.FAILED, why, note="cancelled before it reached the IGA")
            return None
        tx.changes.batch_resent(
            tx.case, fresh, f"no trace of send {fresh.sends} after the grace period; sending again with the same key"
        )
    sent = await _send(rt, claim, client, snap, batch, row.key, row.id)
    if sent is None:
        return None
    faults.crash_point("after_send")
    async with write(rt, claim) as tx:
        await adopt(tx, row.id, sent, "submitted (resent)")
    return None


async def _batch_row(tx: Tx, row_id: int) -> IgaRequest:
    row = await tx.session.get(IgaRequest, row_id)
    if row is None:
        raise LookupError(f"no batch row {row_id}")
    return row


async def adopt(tx: Tx, row_id: int, refs: Sequence[RequestRef], why: str, *, recovered: bool = False) -> None:
    """Record the IGA's request IDs on a batch and its items: they are `submitted` now.

    An answer to our own send names every item it accepted: an item it leaves out failed. A
    lookup after an interruption may find only part of the batch (the IGA still indexing the
    rest): the batch then stays `sending` and the missing items are looked for again."""
    row = await _batch_row(tx, row_id)
    by_item = {r.item_id: r for r in refs}
    row.request_ids = sorted({*row.request_ids, *(r.request_id for r in refs)})
    mine = [i for i in tx.case.items if i.request_row_id == row_id]
    missing = [i for i in mine if i.state in ITEM_UNSENT and i.item_id not in by_item]
    ids = ", ".join(row.request_ids) or "none"
    if recovered and missing:
        why = f"{why}: IGA request(s) {ids}; {len(missing)} item(s) not found yet, looked for again"
        tx.changes.batch_remark(tx.case, row, why)
    else:
        tx.changes.batch(tx.case, row, BatchState.SUBMITTED, f"{why}: IGA request(s) {ids}")
    for item in mine:
        ref = by_item.get(item.item_id)
        if ref is None:
            # Only an item still unsent fails for want of a request; one adopted earlier keeps its own.
            if not recovered and item.state in ITEM_UNSENT:
                item.iga_message = "the IGA returned no request for this item"
                tx.changes.item(item, ItemState.FAILED, item.iga_message, event_id=tx.case.event_id)
            continue
        if item.state in ITEM_TERMINAL:
            if item.iga_request_id is None:  # cancelled while the send was under way
                item.iga_request_id, item.iga_tracking_id = ref.request_id, ref.tracking_id
                note = f"the removal reached the IGA (request {ref.request_id}) before it was {item.state}"
                tx.changes.item_note(item, note, event_id=tx.case.event_id)
            continue
        item.iga_request_id, item.iga_tracking_id = ref.request_id, ref.tracking_id
        item.submitted_at = tx.now
        tx.changes.item(item, ItemState.SUBMITTED, f"{why}: request {ref.request_id}", event_id=tx.case.event_id)
        apply_status(tx, item, ref.status, ref.raw_status, ref.message)


async def fail_batch(tx: Tx, row_id: int, message: str) -> None:
    row = await _batch_row(tx, row_id)
    tx.changes.batch(tx.case, row, BatchState.FAILED, message, note=message)
    for item in tx.case.items:
        if item.request_row_id == row_id and item.state not in ITEM_TERMINAL:
            item.iga_message = message
            tx.changes.item(item, ItemState.FAILED, message, event_id=tx.case.event_id)


def apply_status(tx: Tx, item: PlanItem, status: IgaStatus, raw: str | None, message: str | None) -> None:
    """Record the IGA's word on an item. Completed and cancelled wait for the verify step, which
    checks the item is really gone; rejected and failed are final."""
    item.iga_status, item.iga_raw_status = status.value, raw
    if message:
        item.iga_message = message
    detail = f"({raw}) {message or ''}".strip()
    if status is IgaStatus.REJECTED:
        tx.changes.item(item, ItemState.REJECTED, f"the IGA rejected the removal {detail}", event_id=tx.case.event_id)
    elif status is IgaStatus.FAILED:
        tx.changes.item(item, ItemState.FAILED, f"the IGA reported failure {detail}", event_id=tx.case.event_id)
    elif status in (IgaStatus.COMPLETED, IgaStatus.CANCELLED) and item.iga_done_at is None:
        item.iga_done_at = tx.now
