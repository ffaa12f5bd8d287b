"""The same-person rules: events of one person on one target apply in `occurred_at` order, an item
already with the IGA is never sent again, and a rehire cancels what older events have not sent and
asks the IGA to withdraw what they have.

Every function here runs under the person's lock (`lock_person`) inside a step's transaction,
except `withdraw_submitted`, which calls the IGA and so runs before it.
"""

from __future__ import annotations

from app.domain import CaseState, ItemState
from app.iga.base import IgaError, IgaNotSent
from app.iga.http import write_deadline
from app.runtime import Runtime
from app.store.models import PlanItem
from app.store.queries import OtherItem, newer_rehire, submitted_by_older_cases, wake_case
from app.store.queue import Claim
from app.worker.unit import Resolved, Tx, lease_deadline

#: Plan item ID -> None when the IGA withdrew its request, else why it did not.
Withdrawals = dict[int, str | None]


def settle_overlap(tx: Tx, snap: Resolved, row: PlanItem, other: OtherItem | None) -> bool:
    """A freshly planned `row` meets the same access item open in another case of the person.
    The newest event decides an item not yet sent; one already with the IGA is never sent again.
    True: `row` is settled here."""
    if other is None:
        return False
    item = other.item
    if item.state == ItemState.SUBMITTED or item.request_row_id is not None:  # sent, or being sent now
        why = f"already with the IGA under case {item.case_id} (request {item.iga_request_id}); not sent twice"
        tx.changes.item(row, ItemState.CANCELLED, why, event_id=snap.event_id)
        return True
    if other.occurred_at > snap.event.occurred_at:
        why = f"superseded by newer event {other.event_id} (case {item.case_id})"
        tx.changes.item(row, ItemState.CANCELLED, why, event_id=snap.event_id)
        return True
    why = f"superseded by newer event {snap.event_id} (case {snap.case_id})"
    tx.changes.item(item, ItemState.CANCELLED, why, event_id=other.event_id)
    return False


async def wake_touched_cases(tx: Tx, others: dict[str, OtherItem]) -> None:
    """Other cases of the person whose items this case cancelled look at themselves again now, so a
    case left with nothing to wait for finishes at once instead of at its next daily check."""
    for case_id in sorted({o.item.case_id for o in others.values() if o.item.state == ItemState.CANCELLED}):
        await wake_case(tx.session, case_id, tx.now)


async def superseded_by_rehire(tx: Tx, snap: Resolved) -> bool:
    """A terminate older than a rehire already stored for this person changes nothing: the case
    is cancelled. True when it was."""
    if snap.event.type == "user.enabled":
        return False
    newer = await newer_rehire(tx.session, snap.person)
    if newer is None:
        return False
    why = f"superseded: rehire event {newer} is newer than this {snap.event.type}"
    tx.changes.case(tx.case, CaseState.CANCELLED, why)
    await tx.schedule(None)
    return True


async def withdraw_submitted(rt: Runtime, claim: Claim, snap: Resolved) -> Withdrawals:
    """Rehire: ask the IGA to withdraw removals older cases already sent (outside any transaction,
    each under the job's lease)."""
    async with rt.sessions() as session:
        submitted = await submitted_by_older_cases(session, snap.person)
    client, outcome = rt.client(snap.target), {}
    for item in submitted:
        try:
            with write_deadline(await lease_deadline(rt, claim)):
                ok = await client.cancel_request(snap.user, item.request_ref(), f"rehire event {snap.event_id}")
            outcome[item.id] = None if ok else "the IGA no longer allows cancelling it"
        except IgaNotSent:
            raise
        except IgaError as exc:
            outcome[item.id] = f"the IGA did not answer the cancellation ({exc})"
    return outcome


def cancel_for_rehire(tx: Tx, snap: Resolved, others: dict[str, OtherItem], withdrawn: Withdrawals) -> None:
    """Cancel what older cases of the person have not sent; record what the IGA withdrew, and say
    so where it refused."""
    for other in others.values():
        item, event_id = other.item, other.event_id
        if other.occurred_at >= snap.event.occurred_at:
            continue
        if item.state != ItemState.SUBMITTED and item.request_row_id is not None:
            # Written ahead by a case that failed since (a live one is waited for, see
            # `sends_in_flight`): its retry adopts what reached the IGA and sends nothing more.
            note = f"rehire event {snap.event_id}: a send of this removal may have reached the IGA"
            tx.changes.item_note(item, note, event_id=event_id)
        elif item.state != ItemState.SUBMITTED:
            why = f"rehire event {snap.event_id}: removal not yet submitted, cancelled"
            tx.changes.item(item, ItemState.CANCELLED, why, event_id=event_id)
        elif item.id in withdrawn and withdrawn[item.id] is None:
            why = f"rehire event {snap.event_id}: IGA request {item.iga_request_id} withdrawn"
            tx.changes.item(item, ItemState.CANCELLED, why, event_id=event_id)
        else:
            reason = withdrawn.get(item.id) or "sent after the rehire was read"
            note = f"rehire event {snap.event_id}: request {item.iga_request_id} not withdrawn: {reason}"
            tx.changes.item_note(item, note, event_id=event_id)
