"""Storing an inbound event: the event, one case per target and each case's first job, in one
transaction, exactly once per `webhook-id` and per (`source`, `id`)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Insert, Table, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain import LeaverEvent
from app.store.db import write_slot
from app.store.models import Event, Job, event_columns, utcnow
from app.store.transitions import receive
from app.store.wakeups import notify_work


@dataclass(frozen=True)
class Stored:
    event_id: str
    duplicate: bool
    case_ids: tuple[int, ...] = ()


def new_event_id() -> str:
    """Time-ordered and unguessable: `ev_` + 12 hex of milliseconds + 16 random hex."""
    return f"ev_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


EVENTS: Table = Event.__table__  # type: ignore[assignment]
JOBS: Table = Job.__table__  # type: ignore[assignment]


async def _existing(session: AsyncSession, event: LeaverEvent, webhook_id: str | None) -> str | None:
    conditions: list[ColumnElement[bool]] = [(EVENTS.c.source == event.source) & (EVENTS.c.external_id == event.id)]
    if webhook_id:
        conditions.append(EVENTS.c.webhook_id == webhook_id)
    return await session.scalar(select(EVENTS.c.id).where(or_(*conditions)).limit(1))


def _insert_new(session: AsyncSession) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: a copy already stored (either key) inserts
    nothing and returns no row, with no SELECT first and no IntegrityError to recover from. The
    values go with the execution, so the compiled statement is cached."""
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return upsert(EVENTS).on_conflict_do_nothing().returning(EVENTS.c.id)


async def store_event(
    sessions: async_sessionmaker[AsyncSession],
    event: LeaverEvent,
    *,
    targets: list[str],
    webhook_id: str | None,
    fmt: str = "generic",
    actor: str = "intake",
    dry_run_targets: Collection[str] = (),
) -> Stored:
    """Commit the event with its cases and jobs, or return the first copy's ID: a handful of Core
    statements in one transaction. On SQLite the process's intake writes queue for one writer
    slot instead of fighting for `BEGIN IMMEDIATE`; a connection found dead is retried once."""
    for attempt in range(3):
        try:
            async with write_slot(sessions), sessions() as session, session.begin():
                return await _store(session, event, targets, webhook_id, fmt, actor, dry_run_targets)
        except IntegrityError:
            # A concurrent delivery of the same event won the race: answer with its ID.
            if attempt:
                raise
        except DBAPIError as exc:
            # No pre-ping per checkout: a connection the server dropped fails here, once.
            if not exc.connection_invalidated or attempt:
                raise
    raise AssertionError("unreachable")


async def _store(
    session: AsyncSession,
    event: LeaverEvent,
    targets: list[str],
    webhook_id: str | None,
    fmt: str,
    actor: str,
    dry_run_targets: Collection[str],
) -> Stored:
    now = utcnow()
    values = {"id": new_event_id(), "webhook_id": webhook_id, "format": fmt, "received_at": now}
    event_id = await session.scalar(_insert_new(session), values | event_columns(event))
    if event_id is None:
        first = await _existing(session, event, webhook_id)
        if first is None:  # only the random ID collided: the caller tries again with a new one
            raise IntegrityError("event id collision", None, Exception("event id collision"))
        return Stored(first, duplicate=True)
    why = f"{event.type} for {event.user.label()} from {event.source}"
    cases = [(t, event.dry_run or t in dry_run_targets) for t in targets]
    case_ids = await receive(session, actor, now, event_id, why, cases)
    if case_ids:
        await session.execute(insert(JOBS), [{"case_id": c, "run_at": now} for c in case_ids])
    await notify_work(session)
    return Stored(event_id, duplicate=False, case_ids=tuple(case_ids))
