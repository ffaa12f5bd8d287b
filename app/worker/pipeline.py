"""The pipeline steps: resolve → plan → submit → track → verify, one per case state.

Each step reads a snapshot, talks to the IGA outside any transaction, then commits its result,
the case's next state and the job's next run time in one fenced transaction. A crash anywhere
resumes at the step the case is in. Submissions are write-ahead (see `_submit_batch`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.faults import crash_point
from app.iga.base import (
    AccessItem,
    IgaClient,
    IgaError,
    IgaPermanentError,
    IgaStatus,
    IgaUser,
    RemovalRequest,
    RequestRef,
    UserIdentifiers,
)
from app.intake.events import LeaverEvent
from app.metrics import CASES_FINISHED, ITEMS_FINISHED, TIME_TO_REVOKE
from app.policy.evaluate import evaluate
from app.runtime import Runtime
from app.store.models import Audit, Case, Event, IgaRequest, Job, PlanItem, utcnow
from app.store.queue import Claim, fence
from app.store.states import CASE_TERMINAL, ITEM_TERMINAL

log = structlog.get_logger(__name__)
ACTOR = "worker"


class Tx:
    """One fenced write transaction of a step, with the audit trail built in."""

    def __init__(self, rt: Runtime, session: AsyncSession, claim: Claim, case: Case) -> None:
        self.rt, self.session, self.claim, self.case = rt, session, claim, case
        self.now = utcnow()

    def audit(
        self,
        entity: str,
        entity_id: str,
        before: str | None,
        after: str | None,
        why: str,
        *,
        case_id: int | None = None,
        event_id: str | None = None,
    ) -> None:
        self.session.add(
            Audit(
                actor=ACTOR,
                entity=entity,
                entity_id=entity_id,
                event_id=event_id or self.case.event_id,
                case_id=case_id or self.case.id,
                before=before,
                after=after,
                why=why,
            )
        )

    def case_state(self, state: str, why: str) -> None:
        case = self.case
        if case.state == state:
            return
        self.audit("case", str(case.id), case.state, state, why)
        case.state = state
        case.updated_at = self.now
        case.attempts = case.polls = 0
        if state in CASE_TERMINAL:
            case.finished_at = self.now
            CASES_FINISHED.labels(state).inc()

    def item_state(self, item: PlanItem, state: str, why: str, *, event_id: str | None = None) -> None:
        """Move an item (of this case, or of another case of the same user with its `event_id`)."""
        if item.state == state:
            return
        self.audit("item", str(item.id), item.state, state, why, case_id=item.case_id, event_id=event_id)
        item.state = state
        item.updated_at = self.now
        if state in ITEM_TERMINAL:
            item.finished_at = self.now
            ITEMS_FINISHED.labels(state).inc()

    async def schedule(self, at: datetime | None) -> None:
        """Next run of this case's job; None ends the job (the case is terminal)."""
        if at is None:
            await self.session.execute(delete(Job).where(Job.id == self.claim.job_id))
            return
        job = await self.session.get(Job, self.claim.job_id)
        assert job is not None
        if job.nudged:  # an operator acted on the case meanwhile: look at it again now
            at, job.nudged = min(at, self.now), False
        job.run_at = at
        if at > self.now:
            # Nothing more to do now: free the job so whichever worker is idle then takes it.
            job.lease_owner = job.lease_until = None


@asynccontextmanager
async def write(rt: Runtime, claim: Claim) -> AsyncIterator[Tx]:
    """A fenced transaction with the case and its items loaded fresh."""
    async with rt.sessions() as session, session.begin():
        await fence(session, claim, rt.settings.lease_seconds)
        case = await session.scalar(
            select(Case).where(Case.id == claim.case_id).options(selectinload(Case.items), selectinload(Case.event))
        )
        assert case is not None
        yield Tx(rt, session, claim, case)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    case_id: int
    state: str
    target: str
    event: LeaverEvent
    event_id: str
    user: IgaUser | None
    items: list[PlanItem]
    requests: list[IgaRequest]
    attempts: int
    polls: int
    dry_run: bool


async def snapshot(rt: Runtime, case_id: int) -> Snapshot:
    async with rt.sessions() as session:
        case = await session.scalar(
            select(Case).where(Case.id == case_id).options(selectinload(Case.items), selectinload(Case.event))
        )
        assert case is not None
        requests = list(await session.scalars(select(IgaRequest).where(IgaRequest.case_id == case_id)))
        user = None
        if case.iga_user:
            user = IgaUser(
                id=case.iga_user["id"],
                display_name=case.iga_user.get("display_name"),
                attributes=case.iga_user.get("attributes", {}),
                extra=case.iga_user.get("extra", {}),
            )
        return Snapshot(
            case_id=case.id,
            state=case.state,
            target=case.target,
            event=LeaverEvent.model_validate(case.event.payload),
            event_id=case.event_id,
            user=user,
            items=list(case.items),
            requests=requests,
            attempts=case.attempts,
            polls=case.polls,
            dry_run=case.dry_run,
        )


def access_item(item: PlanItem) -> AccessItem:
    return AccessItem(
        id=item.item_id,
        type=item.item_type,  # type: ignore[arg-type]
        name=item.name,
        application=item.application,
        privileged=item.privileged,
        granted_by=item.granted_by,  # type: ignore[arg-type]
        removable=item.removable,
        extra=item.extra,
    )


def removal(item: PlanItem) -> RemovalRequest:
    return RemovalRequest(item=access_item(item), plan_item_id=item.id, reason=item.reason, remove_at=None)


def _iga_user_json(user: IgaUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "display_name": user.display_name,
        "attributes": dict(user.attributes),
        "extra": dict(user.extra),
    }


# ---------------------------------------------------------------- steps


async def step_resolve(rt: Runtime, claim: Claim, snap: Snapshot) -> None:
    """Find the user and list what they hold (two reads; nothing changes in the IGA)."""
    client = rt.client(snap.target)
    u = snap.event.user
    ids = UserIdentifiers(
        dn=u.dn, username=u.username, email=u.email, employee_id=u.employee_id, iga_id=u.ids.get(snap.target)
    )
    user = await client.find_user(ids)
    items = await client.list_access(user)
    crash_point("before_resolve_commit")
    async with write(rt, claim) as tx:
        tx.case.iga_user_id = user.id
        tx.case.iga_user = _iga_user_json(user)
        tx.case.inventory = [dataclasses.asdict(i) | {"extra": dict(i.extra)} for i in items]
        tx.case_state("inventoried", f"user {user.id} found in {snap.target}; {len(items)} access items listed")
        await tx.schedule(tx.now)
    crash_point("after_resolve")


async def step_plan(rt: Runtime, claim: Claim, snap: Snapshot) -> None:
    """Apply policy to the inventory (pure), or, for a rehire, cancel what is still pending."""
    assert snap.user is not None
    withdrawn = await _withdraw_submitted(rt, snap) if snap.event.type == "user.enabled" else {}
    crash_point("before_plan_commit")
    async with write(rt, claim) as tx:
        case = tx.case
        await lock_subject(tx, snap.target, snap.user.id)
        if await _superseded_by_rehire(tx, snap):
            return
        if snap.event.type == "user.enabled" and await _sends_in_flight(tx, snap):
            # An older case has a batch written ahead whose send is not settled: it may reach the
            # IGA any moment. Let that case adopt it (or drop it, see `_recover_batch`) first,
            # then this rehire withdraws it like any other submitted removal.
            await tx.schedule(tx.now + timedelta(seconds=rt.settings.track_initial_seconds))
            return
        if snap.event.type == "user.enabled":
            _cancel_for_rehire(tx, snap, await _open_items_of_user(tx, snap), withdrawn)
            tx.case_state("done", "rehire: pending removals of earlier events cancelled")
            await tx.schedule(None)
            return
        items = [AccessItem(**{**raw, "extra": raw.get("extra", {})}) for raw in case.inventory or []]
        plan = evaluate(rt.policy, snap.event, snap.user, items, target=snap.target, now=tx.now)
        others = await _open_items_of_user(tx, snap)
        for decision in plan.decisions:
            item = decision.item
            row = PlanItem(
                case_id=case.id,
                item_id=item.id,
                item_type=item.type,
                name=item.name,
                application=item.application,
                privileged=item.privileged,
                granted_by=item.granted_by,
                removable=item.removable,
                extra=dict(item.extra),
                action=decision.action,
                rule=decision.rule,
                reason=decision.reason,
                due_at=decision.due_at,
                state="planned",
            )
            tx.session.add(row)
            await tx.session.flush()
            tx.audit(
                "item",
                str(row.id),
                None,
                "planned",
                f"rule {decision.rule}: {decision.action} {item.type} {item.name!r}",
            )
            if _resolve_overlap(tx, snap, row, others.get(item.id)):
                continue
            if decision.action == "keep":
                tx.item_state(row, "kept", decision.reason)
            elif decision.action == "hold":
                tx.item_state(row, "held", f"waits for an operator: {decision.reason}")
            elif not item.removable and item.granted_by != "role":
                row.note = f"the IGA refuses removal requests for {item.granted_by} access; end it at the source"
                tx.item_state(row, "failed", row.note)
            elif decision.due_at and decision.due_at > tx.now:
                tx.item_state(row, "scheduled", f"due {decision.due_at.isoformat()}")
        if snap.dry_run or rt.settings.dry_run:
            tx.case_state("done", "dry run: planned, nothing submitted")
            await tx.schedule(None)
            return
        tx.case_state("submitting", f"planned {len(plan.decisions)} items")
        await tx.schedule(tx.now)
    crash_point("after_plan")


async def lock_subject(tx: Tx, target: str, user_id: str) -> None:
    """Serialise plan and submit decisions for one user on one target across workers, so two
    events of the same person never both send the same removal. (SQLite: BEGIN IMMEDIATE already
    serialises every write.)"""
    if tx.rt.postgres:
        digest = hashlib.sha256(f"{target}\0{user_id}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await tx.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _other_cases_of_user(snap: Snapshot) -> tuple[ColumnElement[bool], ...]:
    """Conditions selecting the same user's other cases on this target."""
    assert snap.user is not None
    return (Case.target == snap.target, Case.iga_user_id == snap.user.id, Case.id != snap.case_id)


OtherItem = tuple[PlanItem, datetime, str]


async def _open_items_of_user(tx: Tx, snap: Snapshot) -> dict[str, OtherItem]:
    """Items of the same user's other cases on this target that are not yet finished."""
    assert snap.user is not None
    rows = await tx.session.execute(
        select(PlanItem, Event.occurred_at, Event.id)
        .join(Case, PlanItem.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(
            *_other_cases_of_user(snap),
            PlanItem.state.in_(("planned", "scheduled", "held", "submitted")),
        )
    )
    return {item.item_id: (item, when, event_id) for item, when, event_id in rows.all()}


def _resolve_overlap(tx: Tx, snap: Snapshot, row: PlanItem, other: OtherItem | None) -> bool:
    """Events of one user apply in `occurred_at` order: the newest event decides an item not yet
    sent; an item already with the IGA is never sent again. True: `row` is settled here."""
    if other is None:
        return False
    item, occurred_at, event_id = other
    if item.state == "submitted" or item.request_row_id is not None:  # sent, or being sent right now
        tx.item_state(
            row,
            "cancelled",
            f"already with the IGA under case {item.case_id} (request {item.iga_request_id}); not sent twice",
        )
        return True
    if occurred_at > snap.event.occurred_at:
        tx.item_state(row, "cancelled", f"superseded by newer event {event_id} (case {item.case_id})")
        return True
    tx.item_state(
        item, "cancelled", f"superseded by newer event {snap.event_id} (case {snap.case_id})", event_id=event_id
    )
    return False


async def _superseded_by_rehire(tx: Tx, snap: Snapshot) -> bool:
    """A terminate older than a rehire already seen for this user changes nothing."""
    if snap.event.type == "user.enabled" or snap.user is None:
        return False
    newer = await _newer_rehire(tx, snap)
    if newer is None:
        return False
    tx.case_state("cancelled", f"superseded: rehire event {newer} is newer than this {snap.event.type}")
    await tx.schedule(None)
    return True


async def _newer_rehire(tx: Tx, snap: Snapshot) -> str | None:
    """A stored rehire of this user newer than this event."""
    assert snap.user is not None
    # The rehire's own case may not have resolved the user yet: its identifiers count too.
    u = snap.event.user
    same_person = [Case.iga_user_id == snap.user.id]
    for column, value in (
        (Event.user_username, u.username),
        (Event.user_employee_id, u.employee_id),
        (Event.user_dn, u.dn),
        (Event.user_email, u.email.lower() if u.email else None),
    ):
        if value:
            same_person.append(column == value)
    newer: str | None = await tx.session.scalar(
        select(Event.id)
        .join(Case, Case.event_id == Event.id)
        .where(
            Case.target == snap.target,
            or_(*same_person),
            Event.type == "user.enabled",
            Event.occurred_at > snap.event.occurred_at,
        )
        .limit(1)
    )
    return newer


async def _withdraw_submitted(rt: Runtime, snap: Snapshot) -> dict[int, str | None]:
    """Rehire: ask the IGA to withdraw removals older cases already sent (outside any
    transaction). Maps plan item ID to None when withdrawn, else the reason it was not."""
    assert snap.user is not None
    async with rt.sessions() as session:
        rows = await session.execute(
            select(PlanItem)
            .join(Case, PlanItem.case_id == Case.id)
            .join(Event, Case.event_id == Event.id)
            .where(
                Case.target == snap.target,
                Case.iga_user_id == snap.user.id,
                Event.occurred_at < snap.event.occurred_at,
                PlanItem.state == "submitted",
            )
        )
        submitted = list(rows.scalars())
    client, outcome = rt.client(snap.target), {}
    for item in submitted:
        ref = RequestRef(item.item_id, item.iga_request_id or "", item.iga_tracking_id or "")
        try:
            ok = await client.cancel_request(snap.user, ref, f"rehire event {snap.event_id}")
            outcome[item.id] = None if ok else "the IGA no longer allows cancelling it"
        except IgaError as exc:
            outcome[item.id] = f"the IGA did not answer the cancellation ({exc})"
    return outcome


async def _sends_in_flight(tx: Tx, snap: Snapshot) -> bool:
    """An older, still running case of this user has a batch in `sending` (written ahead, the
    IGA's answer not recorded). A failed case's batch waits for an operator's retry instead."""
    assert snap.user is not None
    found = await tx.session.scalar(
        select(IgaRequest.id)
        .join(Case, IgaRequest.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(
            *_other_cases_of_user(snap),
            Case.state.not_in(tuple(CASE_TERMINAL)),
            Event.occurred_at < snap.event.occurred_at,
            IgaRequest.state == "sending",
        )
        .limit(1)
    )
    return found is not None


def _cancel_for_rehire(tx: Tx, snap: Snapshot, others: dict[str, OtherItem], withdrawn: dict[int, str | None]) -> None:
    """Cancel what older cases of the same user on this target have not sent; record what the
    IGA withdrew, and say so where it refused."""
    for item, occurred_at, event_id in others.values():
        if occurred_at >= snap.event.occurred_at:
            continue
        if item.state != "submitted" and item.request_row_id is not None:
            # Written ahead by a case that failed since (a live one is waited for, see
            # `_sends_in_flight`): its retry adopts what reached the IGA and sends nothing more.
            item.note = f"rehire event {snap.event_id}: a send of this removal may have reached the IGA"
            tx.audit("item", str(item.id), item.state, item.state, item.note, case_id=item.case_id, event_id=event_id)
        elif item.state != "submitted":
            why = f"rehire event {snap.event_id}: removal not yet submitted, cancelled"
            tx.item_state(item, "cancelled", why, event_id=event_id)
        elif item.id in withdrawn and withdrawn[item.id] is None:
            why = f"rehire event {snap.event_id}: IGA request {item.iga_request_id} withdrawn"
            tx.item_state(item, "cancelled", why, event_id=event_id)
        else:
            reason = withdrawn.get(item.id) or "sent after the rehire was read"
            item.note = f"rehire event {snap.event_id}: request {item.iga_request_id} not withdrawn: {reason}"
            tx.audit("item", str(item.id), item.state, item.state, item.note, case_id=item.case_id, event_id=event_id)


async def step_submit(rt: Runtime, claim: Claim, snap: Snapshot) -> None:
    """Submit every removal that is due, batch by batch, write-ahead; first resolve any batch a
    crash or lost answer left in `sending`."""
    assert snap.user is not None
    client = rt.client(snap.target)
    now = utcnow()
    for row in [r for r in snap.requests if r.state == "sending"]:
        batch = [removal(i) for i in snap.items if i.request_row_id == row.id]
        waited = await _recover_batch(rt, claim, client, snap, row, batch, now)
        if waited is not None:
            async with write(rt, claim) as tx:
                await tx.schedule(waited)
            return
    due = [
        i
        for i in snap.items
        if i.action == "remove"
        and i.removable
        and i.request_row_id is None
        and i.state in ("planned", "scheduled")
        and (i.due_at is None or i.due_at <= now)
    ]
    next_no = len(snap.requests) + 1
    for batch in client.batch_items([removal(i) for i in due]):
        await _submit_batch(rt, claim, client, snap, batch, next_no)
        next_no += 1
    async with write(rt, claim) as tx:
        tx.case_state("tracking", "every due removal submitted")
        await tx.schedule(tx.now + timedelta(seconds=rt.settings.track_initial_seconds))
    crash_point("after_submit")


async def _submit_batch(
    rt: Runtime, claim: Claim, client: IgaClient, snap: Snapshot, batch: list[RemovalRequest], batch_no: int
) -> None:
    assert snap.user is not None
    key = f"leaver-{snap.case_id}-{batch_no}"
    async with write(rt, claim) as tx:
        await lock_subject(tx, snap.target, snap.user.id)
        # A rehire or a newer event may have cancelled some of these since the snapshot. Read
        # their state again now that we hold the lock (the loaded rows predate it).
        live = set(
            await tx.session.scalars(
                select(PlanItem.id).where(
                    PlanItem.case_id == snap.case_id,
                    PlanItem.state.in_(("planned", "scheduled")),
                    PlanItem.request_row_id.is_(None),
                )
            )
        )
        taken = await _sent_elsewhere(tx, snap, live)
        for item in tx.case.items:
            if item.id in taken:
                tx.item_state(item, "cancelled", f"already with the IGA under case {taken[item.id]}; not sent twice")
        batch = [r for r in batch if r.plan_item_id in live and r.plan_item_id not in taken]
        if not batch:
            return
        row = IgaRequest(
            case_id=snap.case_id, batch_no=batch_no, key=key, state="sending", sends=1, last_sent_at=tx.now
        )
        tx.session.add(row)
        await tx.session.flush()
        ids = {r.plan_item_id for r in batch}
        for item in tx.case.items:
            if item.id in ids:
                item.request_row_id = row.id
        tx.audit("request", key, None, "sending", f"submitting {len(batch)} removals")
        row_id = row.id
    crash_point("after_intent")
    try:
        refs = await client.submit_removals(snap.user, batch, key)
    except IgaPermanentError as exc:
        async with write(rt, claim) as tx:
            await _fail_batch(tx, row_id, f"the IGA refused the request: {exc}")
        return
    crash_point("after_send")
    async with write(rt, claim) as tx:
        await _adopt(tx, row_id, refs, "submitted")
    crash_point("after_submit_commit")


async def _sent_elsewhere(tx: Tx, snap: Snapshot, live: set[int]) -> dict[int, int]:
    """Items of this case another case of the same person has sent: one still in flight, or one
    sent after this case was created (this case's inventory predates that send: an operator
    retried this case after a later event took its items over). Plan item ID -> the other case."""
    assert snap.user is not None
    mine = {i.item_id: i.id for i in tx.case.items if i.id in live}
    if not mine:
        return {}
    rows = await tx.session.execute(
        select(PlanItem.item_id, PlanItem.case_id)
        .join(Case, PlanItem.case_id == Case.id)
        .join(IgaRequest, PlanItem.request_row_id == IgaRequest.id)
        .where(
            *_other_cases_of_user(snap),
            PlanItem.item_id.in_(sorted(mine)),
            or_(PlanItem.state.not_in(tuple(ITEM_TERMINAL)), IgaRequest.created_at > tx.case.created_at),
        )
    )
    return {mine[item_id]: case_id for item_id, case_id in rows.all()}


async def _recover_batch(
    rt: Runtime,
    claim: Claim,
    client: IgaClient,
    snap: Snapshot,
    row: IgaRequest,
    batch: list[RemovalRequest],
    now: datetime,
) -> datetime | None:
    """Exactly-once: look for the earlier send before anything is sent again. Returns the time
    to look again when the grace period for an asynchronous IGA has not yet passed."""
    user = snap.user
    assert user is not None
    refs = await client.find_existing(user, batch, row.key)
    if refs:
        async with write(rt, claim) as tx:
            await _adopt(tx, row.id, refs, "found in the IGA after an interrupted submission; adopted")
        return None
    grace_end = (row.last_sent_at or now) + timedelta(seconds=rt.settings.resend_grace_seconds)
    if now < grace_end:
        return grace_end
    async with write(rt, claim) as tx:
        await lock_subject(tx, snap.target, user.id)
        fresh = await tx.session.get(IgaRequest, row.id)
        assert fresh is not None
        rehire = await _newer_rehire(tx, snap)
        if rehire is not None:
            # The first send left no trace and the person was rehired since: send nothing.
            why = f"rehire event {rehire}: the interrupted send left no trace in the IGA; not sent again"
            tx.audit("request", row.key, fresh.state, "failed", why)
            fresh.state, fresh.note = "failed", why
            for item in tx.case.items:
                if item.request_row_id == row.id and item.state not in ITEM_TERMINAL:
                    tx.item_state(item, "cancelled", why)
            return None
        # Items cancelled meanwhile (a rehire) are never sent again.
        live = {i.id for i in tx.case.items if i.request_row_id == row.id and i.state in ("planned", "scheduled")}
        batch = [r for r in batch if r.plan_item_id in live]
        if not batch:
            tx.audit(
                "request", row.key, fresh.state, "failed", "no trace in the IGA and its items were cancelled: not sent"
            )
            fresh.state, fresh.note = "failed", "cancelled before it reached the IGA"
            return None
        fresh.sends += 1
        fresh.last_sent_at = tx.now
        tx.audit(
            "request",
            row.key,
            "sending",
            "sending",
            f"no trace of send {fresh.sends - 1} after the grace period; sending again with the same key",
        )
    try:
        refs = await client.submit_removals(user, batch, row.key)
    except IgaPermanentError as exc:
        async with write(rt, claim) as tx:
            await _fail_batch(tx, row.id, f"the IGA refused the request: {exc}")
        return None
    crash_point("after_send")
    async with write(rt, claim) as tx:
        await _adopt(tx, row.id, refs, "submitted (resent)")
    return None


async def _adopt(tx: Tx, row_id: int, refs: Sequence[RequestRef], why: str) -> None:
    row = await tx.session.get(IgaRequest, row_id)
    assert row is not None
    by_item = {r.item_id: r for r in refs}
    row.request_ids = sorted({r.request_id for r in refs})
    tx.audit("request", row.key, row.state, "submitted", f"{why}: IGA request(s) {', '.join(row.request_ids)}")
    row.state = "submitted"
    for item in tx.case.items:
        if item.request_row_id != row_id:
            continue
        ref = by_item.get(item.item_id)
        if item.state in ITEM_TERMINAL:
            if ref is not None and item.iga_request_id is None:  # cancelled while the send was under way
                item.iga_request_id, item.iga_tracking_id = ref.request_id, ref.tracking_id
                item.note = f"the removal reached the IGA (request {ref.request_id}) before it was {item.state}"
                tx.audit("item", str(item.id), item.state, item.state, item.note)
            continue
        if ref is None:
            item.iga_message = "the IGA returned no request for this item"
            tx.item_state(item, "failed", item.iga_message)
            continue
        item.iga_request_id, item.iga_tracking_id = ref.request_id, ref.tracking_id
        item.iga_status, item.iga_raw_status, item.iga_message = ref.status.value, ref.raw_status, ref.message
        item.submitted_at = tx.now
        tx.item_state(item, "submitted", f"{why}: request {ref.request_id}")
        _apply_status(tx, item, ref.status, ref.raw_status, ref.message)


async def _fail_batch(tx: Tx, row_id: int, message: str) -> None:
    row = await tx.session.get(IgaRequest, row_id)
    assert row is not None
    tx.audit("request", row.key, row.state, "failed", message)
    row.state, row.note = "failed", message
    for item in tx.case.items:
        if item.request_row_id == row_id and item.state not in ITEM_TERMINAL:
            item.iga_message = message
            tx.item_state(item, "failed", message)


def _apply_status(tx: Tx, item: PlanItem, status: IgaStatus, raw: str | None, message: str | None) -> None:
    """Record the IGA's word on an item. Completed and cancelled wait for the verify step,
    which checks the item is really gone; rejected and failed are final."""
    item.iga_status, item.iga_raw_status = status.value, raw
    if message:
        item.iga_message = message
    if status is IgaStatus.REJECTED:
        tx.item_state(item, "rejected", f"the IGA rejected the removal ({raw}) {message or ''}".strip())
    elif status is IgaStatus.FAILED:
        tx.item_state(item, "failed", f"the IGA reported failure ({raw}) {message or ''}".strip())
    elif status in (IgaStatus.COMPLETED, IgaStatus.CANCELLED) and item.iga_done_at is None:
        item.iga_done_at = tx.now


def _awaiting_iga(item: PlanItem) -> bool:
    return item.state == "submitted" and item.iga_status == IgaStatus.PENDING.value


def _awaiting_verify(item: PlanItem) -> bool:
    if item.state == "submitted":
        return item.iga_status in (IgaStatus.COMPLETED.value, IgaStatus.CANCELLED.value)
    # Role-granted items are not requested themselves: they go when their role goes.
    return item.state == "planned" and item.action == "remove" and not item.removable


async def step_track(rt: Runtime, claim: Claim, snap: Snapshot) -> None:
    """Poll the IGA for every open request of the case, backing off between polls."""
    assert snap.user is not None
    pending = [i for i in snap.items if _awaiting_iga(i)]
    states = {}
    if pending:
        refs = [
            RequestRef(item_id=i.item_id, request_id=i.iga_request_id or "", tracking_id=i.iga_tracking_id or "")
            for i in pending
        ]
        states = await rt.client(snap.target).get_requests(snap.user, refs)
    crash_point("after_track")
    async with write(rt, claim) as tx:
        for item in tx.case.items:
            state = states.get(item.iga_tracking_id or "") if _awaiting_iga(item) else None
            if state is not None and (state.status.value != item.iga_status or state.raw_status != item.iga_raw_status):
                tx.audit(
                    "item",
                    str(item.id),
                    item.state,
                    item.state,
                    f"IGA status {state.raw_status} ({state.status.value})",
                )
                _apply_status(tx, item, state.status, state.raw_status, state.message)
        await _route_after_tracking(rt, tx)
    crash_point("after_track_commit")


async def _route_after_tracking(rt: Runtime, tx: Tx) -> None:
    case, now = tx.case, tx.now
    items = case.items
    if any(
        i.state in ("planned", "scheduled")
        and i.action == "remove"
        and i.removable
        and i.request_row_id is None
        and (i.due_at is None or i.due_at <= now)
        for i in items
    ):
        tx.case_state("submitting", "scheduled removals are due")
        await tx.schedule(now)
    elif any(_awaiting_iga(i) for i in items):
        case.polls += 1
        delay = min(rt.settings.track_max_seconds, rt.settings.track_initial_seconds * 2 ** min(case.polls, 20))
        await tx.schedule(now + timedelta(seconds=delay))
    else:
        tx.case_state("verifying", "the IGA finished every submitted request")
        await tx.schedule(now)


async def step_verify(rt: Runtime, claim: Claim, snap: Snapshot) -> None:
    """List access again: an item the IGA called done but still held is reported, not hidden."""
    assert snap.user is not None
    held = {a.id for a in await rt.client(snap.target).list_access(snap.user)}
    crash_point("before_verify_commit")
    grace = timedelta(seconds=rt.settings.verify_grace_seconds)
    async with write(rt, claim) as tx:
        now = tx.now
        waiting = False
        for item in tx.case.items:
            if not _awaiting_verify(item):
                continue
            since = item.iga_done_at or item.updated_at
            if item.item_id not in held:
                what = "removed with its role" if item.state == "planned" else f"the IGA reports {item.iga_raw_status}"
                item.note = None
                tx.item_state(item, "removed", f"no longer held; {what}")
            elif now - since >= grace:
                if item.iga_status == IgaStatus.CANCELLED.value:
                    tx.item_state(
                        item,
                        "cancelled",
                        f"the IGA cancelled the request ({item.iga_raw_status}) and the item is still held",
                    )
                else:
                    waited = int(grace.total_seconds())
                    item.note = (
                        f"still held {waited}s after the IGA reported completion"
                        if item.state == "submitted"
                        else f"still held {waited}s on: it goes only with the role or profile that grants it"
                    )
                    tx.item_state(item, "failed", item.note)
            else:
                waiting = True
                item.note = "awaiting IGA verification: the IGA reported completion, the item is still listed"
        items = tx.case.items
        if all(i.state in ITEM_TERMINAL for i in items):
            _finish(tx)
            await tx.schedule(None)
            return
        tx.case_state("tracking", "open items remain (scheduled, held or awaiting verification)")
        next_due = min((i.due_at for i in items if i.state == "scheduled" and i.due_at), default=None)
        tx.case.polls += 1
        recheck = now + timedelta(
            seconds=min(rt.settings.track_max_seconds, rt.settings.track_initial_seconds * 2 ** min(tx.case.polls, 20))
        )
        if not waiting:
            recheck = now + timedelta(days=1)  # only held/scheduled items: look again daily
        await tx.schedule(min(recheck, next_due) if next_due else recheck)


def _finish(tx: Tx) -> None:
    case = tx.case
    tx.case_state("done", "every item is in a terminal state")
    removed = [i.finished_at for i in case.items if i.state == "removed" and i.finished_at]
    if removed:
        TIME_TO_REVOKE.observe(max(0.0, (max(removed) - case.event.effective_at).total_seconds()))


STEPS = {
    "received": step_resolve,
    "resolving": step_resolve,
    "inventoried": step_plan,
    "planned": step_submit,
    "submitting": step_submit,
    "tracking": step_track,
    "verifying": step_verify,
}
