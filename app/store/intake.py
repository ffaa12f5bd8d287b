"""Storing an inbound event: the event, one case per target and each case's first job, in one
transaction, exactly once per `webhook-id` and per (`source`, `id`)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain import LeaverEvent
from app.store.models import Event, Job, event_columns
from app.store.transitions import Transitions
from app.store.wakeups import notify_work


@dataclass(frozen=True)
class Stored:
    event_id: str
    duplicate: bool
    case_ids: tuple[int, ...] = ()


def new_event_id() -> str:
    """Time-ordered and unguessable: `ev_` + 12 hex of milliseconds + 16 random hex."""
    return f"ev_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


async def _existing(session: AsyncSession, event: LeaverEvent, webhook_id: str | None) -> str | None:
    conditions: list[ColumnElement[bool]] = [(Event.source == event.source) & (Event.external_id == event.id)]
    if webhook_id:
        conditions.append(Event.webhook_id == webhook_id)
    return await session.scalar(select(Event.id).where(or_(*conditions)).limit(1))


async def store_event(
    sessions: async_sessionmaker[AsyncSession],
    event: LeaverEvent,
    *,
    targets: list[str],
    webhook_id: str | None,
    fmt: str = "generic",
    actor: str = "intake",
    dry_run: bool = False,
) -> Stored:
    """Commit the event with its cases and jobs, or return the first copy's ID."""
    for attempt in range(2):
        try:
            async with sessions() as session, session.begin():
                first = await _existing(session, event, webhook_id)
                if first is not None:
                    return Stored(first, duplicate=True)
                changes = Transitions(session, actor)
                row = Event(
                    id=new_event_id(),
                    webhook_id=webhook_id,
                    format=fmt,
                    received_at=changes.now,
                    **event_columns(event),
                )
                session.add(row)
                changes.event_received(row, f"{event.type} for {event.user.label()} from {event.source}")
                cases = [changes.new_case(row.id, t, dry_run=dry_run) for t in targets]
                await session.flush()
                for case in cases:
                    session.add(Job(case_id=case.id, run_at=changes.now))
                await notify_work(session)
                return Stored(row.id, duplicate=False, case_ids=tuple(c.id for c in cases))
        except IntegrityError:
            # A concurrent delivery of the same event won the race: answer with its ID.
            if attempt:
                raise
    raise AssertionError("unreachable")
