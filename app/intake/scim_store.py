"""SCIM shadow users, kept as the events they produce: every change a SCIM client makes to a user
is one stored event (`scim:<source>:<user id>:<seq>`) carrying the user as it became, written by
`store_event` like any other; the user is its latest event. A change of `active` or a DELETE
plans removals; any other change is recorded without a case.

So the shadow store needs no table of its own and no writer besides `store_event`, and two
concurrent writes to one user cannot both win: the second gets the same event ID, is told it is
a duplicate, and is applied again on top of the first."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from app.domain import EventType
from app.intake.accept import Unavailable, build_event, commit, now
from app.intake.mapping import compile_choice
from app.intake.scim_wire import ENTERPRISE, ScimError
from app.intake.sources import Source
from app.runtime import Runtime
from app.store.models import Event

FORMAT = "scim"
WRITE_ATTEMPTS = 3
_USER_NAME = compile_choice("$.userName")


@dataclass(frozen=True)
class Shadow:
    """One SCIM user as leaver last stored it."""

    id: str
    seq: int
    resource: dict[str, Any]
    created: str
    modified: str
    deleted: bool = False

    @property
    def active(self) -> bool:
        return bool(self.resource.get("active", True))


def new_id() -> str:
    return uuid.uuid4().hex


def valid_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def _prefix(source: Source, rid: str = "") -> str:
    return f"scim:{source.name}:{rid}"


def identifiers(shadow_id: str, resource: dict[str, Any]) -> dict[str, Any]:
    """What a source's `user` mapping reads: `$.userName`, `$.email`, `$.employeeNumber`, ..."""
    emails = [e for e in resource.get("emails") or [] if isinstance(e, dict) and isinstance(e.get("value"), str)]
    primary = next((e for e in emails if e.get("primary") is True), None) or next(
        (e for e in emails if e.get("type") == "work"), emails[0] if emails else None
    )
    ext = resource.get(ENTERPRISE) if isinstance(resource.get(ENTERPRISE), dict) else {}
    return {
        **resource,
        "id": shadow_id,
        "email": primary["value"] if primary else None,
        "employeeNumber": ext.get("employeeNumber") if ext else None,
    }


async def _rows(rt: Runtime, source: Source, *conditions: Any) -> list[tuple[str, dict[str, Any]]]:
    query = select(Event.external_id, Event.payload).where(
        Event.source == source.name, Event.format == FORMAT, *conditions
    )
    try:
        async with rt.sessions() as session:
            return [(str(a), b) for a, b in (await session.execute(query.order_by(Event.external_id))).all()]
    except (SQLAlchemyError, OSError):
        raise Unavailable("the event store is unavailable; retry later") from None


def _fold(rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Shadow]:
    """The latest state of each user in `rows` (ordered by event ID, so by sequence)."""
    latest: dict[str, Shadow] = {}
    for external_id, payload in rows:
        scim = payload.get("attributes", {}).get("scim", {})
        rid, seq = scim.get("id"), int(external_id.rsplit(":", 1)[-1])
        if not isinstance(rid, str):
            continue
        first = latest.get(rid)
        latest[rid] = Shadow(
            id=rid,
            seq=seq,
            resource=scim.get("resource", {}),
            created=first.created if first else payload.get("occurred_at", ""),
            modified=payload.get("occurred_at", ""),
            deleted=bool(scim.get("deleted")),
        )
    return latest


async def get(rt: Runtime, source: Source, rid: str) -> Shadow | None:
    """The user with this ID, deleted ones included (the caller decides what a deletion means)."""
    if not valid_id(rid):
        return None
    return _fold(await _rows(rt, source, Event.external_id.like(_prefix(source, rid) + ":%"))).get(rid)


async def current(rt: Runtime, source: Source, user_name: str | None = None) -> list[Shadow]:
    """Users not deleted, oldest first; narrowed to those ever named `user_name` when the source
    maps the username from `userName` (so the index on the event's username helps)."""
    if user_name is not None and _username_is_user_name(source):
        names = await _rows(rt, source, func.lower(Event.user_username) == user_name.lower())
        rids = {r for r in (p.get("attributes", {}).get("scim", {}).get("id") for _, p in names) if isinstance(r, str)}
        if not rids:
            return []
        likes = [Event.external_id.like(_prefix(source, rid) + ":%") for rid in sorted(rids)[:50]]
        rows = await _rows(rt, source, or_(*likes))
    else:
        rows = await _rows(rt, source)
    found = [s for s in _fold(rows).values() if not s.deleted]
    return sorted(found, key=lambda s: (s.created, s.id))


def _username_is_user_name(source: Source) -> bool:
    return source.user_map.get("username") == _USER_NAME


async def write(
    rt: Runtime,
    source: Source,
    rid: str,
    change: Callable[[Shadow | None], tuple[dict[str, Any], bool] | None],
) -> Shadow | None:
    """Apply `change` to the latest state of user `rid` and store the result as its next event.

    `change(before)` returns (the resource after, deleted) or None for "nothing to store". Retried
    on top of a concurrent write; returns the user as stored (or unchanged)."""
    for _ in range(WRITE_ATTEMPTS):
        before = await get(rt, source, rid)
        outcome = change(before)
        if outcome is None:
            return before
        resource, deleted = outcome
        type_, plan = _transition(before, resource, deleted)
        seq = (before.seq if before else 0) + 1
        stamp = now()
        event = build_event(
            source,
            event_id=f"{_prefix(source, rid)}:{seq:06d}",
            type_=type_,
            view=identifiers(rid, resource),
            occurred_at=stamp,
            attributes={"scim": {"id": rid, "resource": resource, "deleted": deleted, "recorded_only": not plan}},
        )
        stored = await commit(rt, event, fmt=FORMAT, plan=plan)
        if not stored.duplicate:
            iso = _iso(stamp)
            return Shadow(rid, seq, resource, before.created if before else iso, iso, deleted)
    raise ScimError(409, "the user was changed by another request meanwhile; retry")


def _transition(before: Shadow | None, resource: dict[str, Any], deleted: bool) -> tuple[EventType, bool]:
    """The event a change is: a deactivation, a reactivation, a deletion, or a record of state."""
    active = bool(resource.get("active", True))
    if deleted:
        return "user.terminated", True
    if before is None or before.deleted:
        return ("user.enabled", False) if active else ("user.disabled", True)
    if before.active != active:
        return ("user.enabled" if active else "user.disabled"), True
    return ("user.enabled" if active else "user.disabled"), False


def _iso(stamp: datetime) -> str:
    return stamp.isoformat().replace("+00:00", "Z")
