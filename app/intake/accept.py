"""What every intake format does once it knows what the sender said: build the one `LeaverEvent`,
pick its targets, and commit it through `store_event`. Errors here name no HTTP status: each
format answers them in its own shape (problem+json, RFC 8935, SCIM)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.domain import EventType, LeaverEvent
from app.intake.mapping import map_user
from app.intake.sources import Source
from app.metrics import EVENTS_RECEIVED
from app.problems import problem_responses
from app.runtime import Runtime
from app.store.intake import Stored, store_event
from app.store.models import Event

log = structlog.get_logger(__name__)
RETRY_AFTER = "5"


def accepted_responses(*problems: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of a route that stores an event: 202 once, 200 for a redelivery."""
    example = {"event_id": "ev_019ab3c4d5e6f7a8b9c0d1e2f3a4", "duplicate": False}
    return {
        202: {"description": "Stored; processing starts", "content": {"application/json": {"example": example}}},
        200: {"description": "Already received: the first delivery's event_id"},
        **problem_responses(*problems),
    }


class Unacceptable(ValueError):
    """The sender's message cannot become an event; the text says why and echoes no input."""


class Unavailable(Exception):
    """The event store cannot be reached: the sender must retry (503 + Retry-After)."""


def now() -> datetime:
    return datetime.now(UTC)


def build_event(
    source: Source,
    *,
    event_id: str,
    type_: EventType,
    view: Any,
    occurred_at: datetime | str | None = None,
    effective_at: datetime | str | None = None,
    attributes: Mapping[str, Any] | None = None,
    target: str | None = None,
) -> LeaverEvent:
    """The event, with the user found in `view` (the sender's identifiers) by the source's mapping."""
    user = map_user(source.user_map, view)
    if not user:
        wanted = ", ".join(sorted(source.user_map))
        raise Unacceptable(f"no user identifier found (source {source.name!r} maps {wanted})")
    data = {
        "id": event_id,
        "type": type_,
        "occurred_at": occurred_at or now(),
        "effective_at": effective_at,
        "source": source.name,
        "user": user,
        "target": target or source.target,
        "attributes": dict(attributes or {}),
    }
    try:
        return LeaverEvent.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "event"
        raise Unacceptable(f"{where}: {first.get('msg', 'invalid')}") from None


def targets_for(rt: Runtime, event: LeaverEvent) -> list[str]:
    """The IGA targets the event goes to, for every intake route."""
    names = rt.target_names()
    if event.target is None:
        if not names:
            raise Unacceptable("no IGA target is configured")
        chosen = names
    elif event.target not in names:
        raise Unacceptable(f"unknown target {event.target!r}; configured targets: {', '.join(names)}")
    else:
        chosen = [event.target]
    u = event.user
    if not (u.dn or u.username or u.email or u.employee_id):  # known only by IGA IDs: one per target
        missing = [t for t in chosen if t not in u.ids]
        if missing:
            raise Unacceptable(
                f"user: no identifier for target(s) {', '.join(missing)}; user.ids names {sorted(u.ids)}"
            )
    return chosen


async def commit(
    rt: Runtime,
    event: LeaverEvent,
    *,
    fmt: str,
    plan: bool = True,
    webhook_id: str | None = None,
) -> Stored:
    """Store the event once. `plan=False` records it without a case (a signal, a SCIM shadow
    change): it is kept and deduplicated, and nothing is removed."""
    targets = targets_for(rt, event) if plan else []
    try:
        stored = await store_event(
            rt.sessions, event, targets=targets, webhook_id=webhook_id, fmt=fmt, dry_run_targets=rt.dry_run_targets()
        )
    except (SQLAlchemyError, OSError) as exc:
        EVENTS_RECEIVED.labels("unavailable").inc()
        log.error("intake.store_failed", format=fmt, error=type(exc).__name__)
        raise Unavailable("the event store is unavailable; retry later") from None
    EVENTS_RECEIVED.labels("duplicate" if stored.duplicate else "accepted").inc()
    if stored.case_ids:
        rt.wakeup.set()
    log.info(
        "intake.event",
        format=fmt,
        event_id=stored.event_id,
        duplicate=stored.duplicate,
        type=event.type,
        source=event.source,
        targets=targets,
    )
    return stored


async def stored_payload(rt: Runtime, event_id: str) -> dict[str, Any] | None:
    """The event as first stored (to tell a redelivery from a different message reusing its ID)."""
    try:
        async with rt.sessions() as session:
            payload: dict[str, Any] | None = await session.scalar(select(Event.payload).where(Event.id == event_id))
    except (SQLAlchemyError, OSError) as exc:
        log.error("intake.read_failed", error=type(exc).__name__)
        raise Unavailable("the event store is unavailable; retry later") from None
    return payload


def refused(fmt: str, reason: str, **fields: Any) -> None:
    """Count and log a refused delivery (the reason names no secret and echoes no body)."""
    EVENTS_RECEIVED.labels("unauthorized" if reason == "unauthorized" else "refused").inc()
    log.warning("intake.refused", format=fmt, reason=reason, **fields)
