"""Questions one case asks about the same person's other cases on its target: what they hold
open, what they have sent, whether a rehire came after. The overlap and rehire rules in
`app.worker.overlap` decide on the answers; the SQL lives here, once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.domain import CASE_TERMINAL, ITEM_IN_FLIGHT, ITEM_TERMINAL, ITEM_UNSENT, BatchState, ItemState, LeaverEvent
from app.store.models import Case, Event, IgaRequest, Job, PlanItem


@dataclass(frozen=True)
class Person:
    """A resolved person on one target, seen from one of their cases."""

    target: str
    user_id: str  # the IGA's ID
    case_id: int  # the case asking
    event: LeaverEvent  # that case's event

    def others(self) -> tuple[ColumnElement[bool], ...]:
        """Conditions selecting the same person's other cases on this target."""
        return (Case.target == self.target, Case.iga_user_id == self.user_id, Case.id != self.case_id)


@dataclass(frozen=True)
class OtherItem:
    """An open plan item of another case of the same person, with that case's event."""

    item: PlanItem
    occurred_at: datetime
    event_id: str


async def load_case(session: AsyncSession, case_id: int) -> Case:
    """A case with its items and event, for a transaction that changes it."""
    case = await session.scalar(
        select(Case).where(Case.id == case_id).options(selectinload(Case.items), selectinload(Case.event))
    )
    if case is None:
        raise LookupError(f"no case {case_id}")
    return case


async def lock_person(session: AsyncSession, person: Person) -> None:
    """Serialise plan and submit decisions for one person on one target across workers, so two
    events of the same person never both send the same removal. (SQLite: BEGIN IMMEDIATE already
    serialises every write.)"""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(f"{person.target}\0{person.user_id}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


async def open_items(session: AsyncSession, person: Person) -> dict[str, OtherItem]:
    """Items of the person's other cases that are not yet finished, by access item ID."""
    rows = await session.execute(
        select(PlanItem, Event.occurred_at, Event.id)
        .join(Case, PlanItem.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(*person.others(), PlanItem.state.in_(tuple(ITEM_IN_FLIGHT)))
    )
    return {item.item_id: OtherItem(item, when, event_id) for item, when, event_id in rows.all()}


async def newer_rehire(session: AsyncSession, person: Person) -> str | None:
    """The ID of a stored rehire of this person newer than the asking case's event."""
    # The rehire's own case may not have resolved the user yet: its identifiers count too.
    u = person.event.user
    same_person = [Case.iga_user_id == person.user_id]
    for column, value in (
        (Event.user_username, u.username),
        (Event.user_employee_id, u.employee_id),
        (Event.user_dn, u.dn),
        (Event.user_email, u.email.lower() if u.email else None),
    ):
        if value:
            same_person.append(column == value)
    newer: str | None = await session.scalar(
        select(Event.id)
        .join(Case, Case.event_id == Event.id)
        .where(
            Case.target == person.target,
            or_(*same_person),
            Event.type == "user.enabled",
            Event.occurred_at > person.event.occurred_at,
        )
        .limit(1)
    )
    return newer


async def submitted_by_older_cases(session: AsyncSession, person: Person) -> list[PlanItem]:
    """Removals older events of the person have with the IGA (a rehire asks to withdraw them)."""
    rows = await session.scalars(
        select(PlanItem)
        .join(Case, PlanItem.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(
            Case.target == person.target,
            Case.iga_user_id == person.user_id,
            Event.occurred_at < person.event.occurred_at,
            PlanItem.state == ItemState.SUBMITTED,
        )
    )
    return list(rows)


async def sends_in_flight(session: AsyncSession, person: Person) -> bool:
    """An older, still running case of the person has a batch written ahead whose IGA answer is
    not recorded. (A failed case's batch waits for an operator's retry instead.)"""
    found = await session.scalar(
        select(IgaRequest.id)
        .join(Case, IgaRequest.case_id == Case.id)
        .join(Event, Case.event_id == Event.id)
        .where(
            *person.others(),
            Case.state.not_in(tuple(CASE_TERMINAL)),
            Event.occurred_at < person.event.occurred_at,
            IgaRequest.state == BatchState.SENDING,
        )
        .limit(1)
    )
    return found is not None


async def unsent_item_ids(session: AsyncSession, case_id: int) -> set[int]:
    """Plan items of a case still unsent, read fresh (a rehire or newer event may have taken some)."""
    rows = await session.scalars(
        select(PlanItem.id).where(
            PlanItem.case_id == case_id,
            PlanItem.state.in_(tuple(ITEM_UNSENT)),
            PlanItem.request_row_id.is_(None),
        )
    )
    return set(rows)


async def sent_elsewhere(
    session: AsyncSession, person: Person, mine: dict[str, int], since: datetime
) -> dict[int, int]:
    """Of `mine` (access item ID -> this case's plan item ID), those another case of the person
    has sent and this case's inventory, read at `since`, cannot be trusted about: still in flight,
    sent after `since`, or finished after it (the listing may show an item the IGA was removing
    right then). A removal finished before `since` and listed again was granted again: it is not
    taken. Plan item ID -> the other case."""
    if not mine:
        return {}
    rows = await session.execute(
        select(PlanItem.item_id, PlanItem.case_id)
        .join(Case, PlanItem.case_id == Case.id)
        .join(IgaRequest, PlanItem.request_row_id == IgaRequest.id)
        .where(
            *person.others(),
            PlanItem.item_id.in_(sorted(mine)),
            or_(
                PlanItem.state.not_in(tuple(ITEM_TERMINAL)),
                IgaRequest.created_at > since,
                PlanItem.finished_at > since,
            ),
        )
    )
    return {mine[item_id]: case_id for item_id, case_id in rows.all()}


async def wake_case(session: AsyncSession, case_id: int, now: datetime) -> None:
    """Have another case looked at now (its items changed under it): due at once, and if a worker
    holds it right now, its next schedule runs at once too (`nudged`). A job row another
    transaction has locked is left alone rather than waited for: that worker holds the job and may
    be waiting for this person's lock, which we hold (waiting would deadlock); it reads the items
    afresh in its own transaction anyway."""
    job_id = await session.scalar(select(Job.id).where(Job.case_id == case_id).with_for_update(skip_locked=True))
    if job_id is not None:
        await session.execute(update(Job).where(Job.id == job_id).values(run_at=now, nudged=True))
