"""The one owner of state changes. Cases, plan items and removal batches change state only here,
and every change writes its `audit` row and counts its metric in the same transaction, whoever
asks: intake, a worker or an operator. So the audit trail, the metrics and the rows never disagree.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import CASE_TERMINAL, ITEM_TERMINAL, AccessItem, BatchState, CaseState, GuardState, ItemState
from app.metrics import CASES_FINISHED, GUARD_TRIPS, ITEMS_FINISHED, TIME_TO_REVOKE
from app.store.models import Audit, Case, Event, GuardBatch, IgaRequest, PlanItem, access_columns, utcnow

log = structlog.get_logger(__name__)
AUDIT: Table = Audit.__table__  # type: ignore[assignment]
CASES: Table = Case.__table__  # type: ignore[assignment]


class Transitions:
    """State changes within one open transaction, all attributed to `actor`."""

    def __init__(self, session: AsyncSession, actor: str, now: datetime | None = None) -> None:
        self.session, self.actor = session, actor
        self.now = now or utcnow()

    def audit(
        self,
        entity: str,
        entity_id: str,
        before: str | None,
        after: str | None,
        why: str,
        *,
        event_id: str | None,
        case_id: int | None = None,
    ) -> None:
        self.session.add(
            Audit(
                at=self.now,
                actor=self.actor,
                entity=entity,
                entity_id=entity_id,
                event_id=event_id,
                case_id=case_id,
                before=before,
                after=after,
                why=why,
            )
        )

    # ------------------------------------------------------------ events and cases

    def event_received(self, event: Event, why: str) -> None:
        self.audit("event", event.id, None, "received", why, event_id=event.id)

    def new_case(self, event_id: str, target: str, *, dry_run: bool) -> Case:
        case = Case(event_id=event_id, target=target, state=CaseState.RECEIVED, dry_run=dry_run, created_at=self.now)
        self.session.add(case)
        return case

    def case(self, case: Case, state: CaseState, why: str) -> None:
        """Move a case; its step counters restart with each state. Entering `done` counts the
        case's time to revoke."""
        if case.state == state:
            return
        self.audit("case", str(case.id), case.state, state, why, event_id=case.event_id, case_id=case.id)
        case.state = state
        case.updated_at = self.now
        case.attempts = case.polls = 0
        if state is not CaseState.FAILED:
            case.error = None  # a step that failed before and then went through leaves no stale error
        if state in CASE_TERMINAL:
            case.finished_at = self.now
            CASES_FINISHED.labels(state).inc()
            log.info("case.finished", case=case.id, event_id=case.event_id, target=case.target, state=state, why=why)
        else:
            case.finished_at = None

    def case_note(self, case: Case, why: str) -> None:
        """An audit row without a state change (a retry scheduled, an operator's remark)."""
        self.audit("case", str(case.id), case.state, case.state, why, event_id=case.event_id, case_id=case.id)

    # ------------------------------------------------------------ plan items

    def new_item(
        self,
        case: Case,
        item: AccessItem,
        *,
        action: str,
        rule: str,
        reason: str,
        due_at: datetime | None,
    ) -> PlanItem:
        row = PlanItem(
            case_id=case.id,
            **access_columns(item),
            action=action,
            rule=rule,
            reason=reason,
            due_at=due_at,
            state=ItemState.PLANNED,
            updated_at=self.now,
        )
        case.items.append(row)
        return row

    def item_planned(self, case: Case, row: PlanItem) -> None:
        """The audit row of a freshly planned item (it needs its ID, so after a flush)."""
        why = f"rule {row.rule}: {row.action} {row.item_type} {row.name!r}"
        self.audit("item", str(row.id), None, ItemState.PLANNED, why, event_id=case.event_id, case_id=case.id)

    def item(self, item: PlanItem, state: ItemState, why: str, *, event_id: str, case: Case | None = None) -> None:
        """Move an item; `event_id` is its case's event (the item may belong to another case of
        the same person than the one being worked). With its `case`, a removal counts its time to
        revoke (arrival to IGA completion), a scheduled or approved one apart."""
        if item.state == state:
            return
        if state is ItemState.REMOVED and case is not None:
            done = item.iga_done_at or self.now
            wait = "scheduled" if item.due_at and item.due_at > case.event.received_at else "none"
            if item.approved_at is not None:
                wait = "approved"
            seconds = max(0.0, (done - case.event.received_at).total_seconds())
            TIME_TO_REVOKE.labels(case.target, wait).observe(seconds)
        self.audit("item", str(item.id), item.state, state, why, event_id=event_id, case_id=item.case_id)
        item.state = state
        item.updated_at = self.now
        if state in ITEM_TERMINAL:
            item.finished_at = self.now
            ITEMS_FINISHED.labels(state).inc()
        else:
            item.finished_at = None

    def item_remark(self, item: PlanItem, why: str, *, event_id: str) -> None:
        """An audit row about an item that does not move it (the IGA's status changed)."""
        self.audit("item", str(item.id), item.state, item.state, why, event_id=event_id, case_id=item.case_id)

    def item_note(self, item: PlanItem, note: str, *, event_id: str) -> None:
        """Say something about an item without moving it, on the item and in the audit."""
        item.note = note
        self.item_remark(item, note, event_id=event_id)

    # ------------------------------------------------------------ removal batches

    def new_batch(self, case: Case, batch_no: int, key: str, items: list[PlanItem]) -> IgaRequest:
        """The write-ahead row of a batch about to be sent: committed before the IGA call."""
        row = IgaRequest(
            case_id=case.id,
            batch_no=batch_no,
            key=key,
            state=BatchState.SENDING,
            sends=1,
            last_sent_at=self.now,
            created_at=self.now,
        )
        self.session.add(row)
        self.audit(
            "request",
            key,
            None,
            BatchState.SENDING,
            f"submitting {len(items)} removals",
            event_id=case.event_id,
            case_id=case.id,
        )
        return row

    def batch(self, case: Case, row: IgaRequest, state: BatchState, why: str, *, note: str | None = None) -> None:
        self.audit("request", row.key, row.state, state, why, event_id=case.event_id, case_id=case.id)
        row.state = state
        if note is not None:
            row.note = note

    def batch_remark(self, case: Case, row: IgaRequest, why: str) -> None:
        """An audit row about a batch that does not move it."""
        self.audit("request", row.key, row.state, row.state, why, event_id=case.event_id, case_id=case.id)

    def batch_uncertain(self, case: Case, row: IgaRequest, why: str) -> None:
        """The batch's send may or may not have reached the IGA: the resend grace counts from now."""
        if row.uncertain_since is None:
            row.uncertain_since = self.now
            self.batch_remark(case, row, why)

    def batch_resent(self, case: Case, row: IgaRequest, why: str) -> None:
        """A batch left no trace in the IGA after the grace period: it goes out again, same key."""
        row.sends += 1
        row.last_sent_at = self.now
        row.uncertain_since = None
        self.batch_remark(case, row, why)

    # ------------------------------------------------------------ blast-radius guard

    def guard_tripped(self, target: str, most: int, window_seconds: float, arrived: int) -> GuardBatch:
        """Too many leavers on `target`: a batch that holds the further cases until an operator decides."""
        batch = GuardBatch(
            target=target,
            state=GuardState.HELD,
            tripped_at=self.now,
            max_leavers=most,
            window_seconds=window_seconds,
        )
        self.session.add(batch)
        GUARD_TRIPS.labels(target).inc()
        log.warning("guard.tripped", target=target, leavers=arrived, most=most, window_seconds=window_seconds)
        return batch

    def guard_hold(self, case: Case, batch: GuardBatch, why: str) -> None:
        """A case waits in a guard batch: planned, nothing submitted."""
        case.guard_batch_id = batch.id
        self.case(case, CaseState.PLANNED, why)

    def guard_decided(self, batch: GuardBatch, state: GuardState, reason: str) -> None:
        """An operator confirmed or cancelled a guard batch."""
        self.audit("guard", str(batch.id), batch.state, state, f"{state} by {self.actor}: {reason}", event_id=None)
        batch.state = state
        batch.decided_by, batch.decided_at, batch.reason = self.actor, self.now, reason


async def receive(
    session: AsyncSession, actor: str, now: datetime, event_id: str, why: str, cases: list[tuple[str, bool]]
) -> list[int]:
    """Intake's changes as Core statements (the request path runs no unit-of-work flush): the
    event's `received` audit row and one `received` case per (target, dry run); the case IDs, in order."""
    audit = {"at": now, "actor": actor, "entity": "event", "entity_id": event_id, "event_id": event_id}
    await session.execute(insert(AUDIT), audit | {"before": None, "after": "received", "why": why})
    if not cases:
        return []
    rows = [
        {"event_id": event_id, "target": t, "state": CaseState.RECEIVED, "dry_run": dry, "created_at": now}
        for t, dry in cases
    ]
    result = await session.execute(insert(CASES).returning(CASES.c.id, sort_by_parameter_order=True), rows)
    return list(result.scalars())
