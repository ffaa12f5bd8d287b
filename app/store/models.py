"""The database tables, and the mapping between their rows and the domain's words (once, here).
Every state a case or item passes through is also one `audit` row (see `transitions`)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.domain import AccessItem, IgaUser, LeaverEvent, RemovalRequest, RequestRef


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Event(Base):
    """An inbound event exactly once: `webhook_id` and (`source`, `external_id`) are dedupe keys."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_events_source_external_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(30), default="generic")
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    effective_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    target: Mapped[str | None] = mapped_column(String(100))
    user_username: Mapped[str | None] = mapped_column(String(256), index=True)
    user_email: Mapped[str | None] = mapped_column(String(320), index=True)
    user_employee_id: Mapped[str | None] = mapped_column(String(128), index=True)
    user_dn: Mapped[str | None] = mapped_column(String(1024))
    payload: Mapped[dict[str, Any]]

    cases: Mapped[list[Case]] = relationship(back_populates="event", order_by="Case.id")

    def leaver_event(self) -> LeaverEvent:
        return LeaverEvent.model_validate(self.payload)


def event_columns(event: LeaverEvent) -> dict[str, Any]:
    """An event's columns: the payload plus the user keys status lookups search by."""
    return {
        "source": event.source,
        "external_id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "effective_at": event.effective,
        "target": event.target,
        "user_username": event.user.username,
        "user_email": event.user.email.lower() if event.user.email else None,
        "user_employee_id": event.user.employee_id,
        "user_dn": event.user.dn,
        "payload": event.model_dump(mode="json"),
    }


class Case(Base):
    """The work for one event on one IGA target."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("event_id", "target", name="uq_cases_event_target"),
        Index("ix_cases_state_finished_at", "state", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    target: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), index=True)
    iga_user_id: Mapped[str | None] = mapped_column(String(200))
    iga_user: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    inventory: Mapped[list[Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    #: How a case ended when that is worth saying and no failure (the person is not in this IGA).
    outcome: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    polls: Mapped[int] = mapped_column(default=0)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The blast-radius guard batch this case waits in (or waited in), if it tripped the guard.
    guard_batch_id: Mapped[int | None] = mapped_column(ForeignKey("guard_batches.id"), index=True)
    #: When resolve began to list the user's access: sends of other cases after it may be missing
    #: from (or, done later, still in) this case's inventory.
    inventoried_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    event: Mapped[Event] = relationship(back_populates="cases")
    items: Mapped[list[PlanItem]] = relationship(back_populates="case", order_by="PlanItem.id")

    def user(self) -> IgaUser | None:
        """The IGA user resolve found, or None before resolve."""
        if not self.iga_user:
            return None
        return IgaUser(
            id=self.iga_user["id"],
            display_name=self.iga_user.get("display_name"),
            attributes=self.iga_user.get("attributes", {}),
            extra=self.iga_user.get("extra", {}),
        )

    def record_resolved(self, user: IgaUser, items: list[AccessItem], listed_at: datetime) -> None:
        self.inventoried_at = listed_at
        self.iga_user_id = user.id
        self.iga_user = {
            "id": user.id,
            "display_name": user.display_name,
            "attributes": dict(user.attributes),
            "extra": dict(user.extra),
        }
        self.inventory = [dataclasses.asdict(i) | {"extra": dict(i.extra)} for i in items]

    def inventory_items(self) -> list[AccessItem]:
        return [AccessItem(**{**raw, "extra": raw.get("extra", {})}) for raw in self.inventory or []]


def access_columns(item: AccessItem) -> dict[str, Any]:
    """A plan item's columns describing the access item it is about."""
    return {
        "item_id": item.id,
        "item_type": item.type,
        "name": item.name,
        "application": item.application,
        "privileged": item.privileged,
        "granted_by": item.granted_by,
        "removable": item.removable,
        "extra": dict(item.extra),
    }


class PlanItem(Base):
    """One access item of a case's plan: what policy decided, and what the IGA did about it."""

    __tablename__ = "plan_items"
    __table_args__ = (Index("ix_plan_items_state_finished_at", "state", "finished_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    item_id: Mapped[str] = mapped_column(String(300))
    item_type: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(500))
    application: Mapped[str | None] = mapped_column(String(300))
    privileged: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_by: Mapped[str] = mapped_column(String(20), default="direct")
    removable: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    action: Mapped[str] = mapped_column(String(10))
    rule: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(20), index=True)
    request_row_id: Mapped[int | None] = mapped_column(ForeignKey("iga_requests.id"))
    iga_request_id: Mapped[str | None] = mapped_column(String(200))
    iga_tracking_id: Mapped[str | None] = mapped_column(String(300))
    iga_status: Mapped[str | None] = mapped_column(String(100))
    iga_raw_status: Mapped[str | None] = mapped_column(String(100))
    iga_message: Mapped[str | None] = mapped_column(Text)
    iga_done_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime | None]
    #: When an operator released it from `held` (its wait is the operator's, not the IGA's).
    approved_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="items")

    def access_item(self) -> AccessItem:
        return AccessItem(
            id=self.item_id,
            type=self.item_type,  # type: ignore[arg-type]
            name=self.name,
            application=self.application,
            privileged=self.privileged,
            granted_by=self.granted_by,  # type: ignore[arg-type]
            removable=self.removable,
            extra=self.extra,
        )

    def removal(self) -> RemovalRequest:
        return RemovalRequest(item=self.access_item(), plan_item_id=self.id, reason=self.reason, remove_at=None)

    def request_ref(self) -> RequestRef:
        """Where the IGA filed this item's removal (only meaningful once submitted)."""
        return RequestRef(self.item_id, self.iga_request_id or "", self.iga_tracking_id or "")


class IgaRequest(Base):
    """Write-ahead record of one removal batch: committed as `sending` *before* the HTTP call,
    so a crash between "sent" and "ID stored" is found and resolved by lookup, never resent blind."""

    __tablename__ = "iga_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    batch_no: Mapped[int]
    key: Mapped[str] = mapped_column(String(100), unique=True)
    state: Mapped[str] = mapped_column(String(20))  # sending | submitted | failed
    sends: Mapped[int] = mapped_column(default=0)
    request_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sent_at: Mapped[datetime | None]
    #: When the last send became uncertain (no answer, or found `sending` after a crash): the
    #: resend grace period counts from here, not from the write-ahead commit.
    uncertain_since: Mapped[datetime | None]


class RateBudget(Base):
    """One IGA target's request budget, shared by every worker process (virtual scheduling: each
    call takes the next free slot and waits for it)."""

    __tablename__ = "rate_budgets"

    target: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_free_at: Mapped[datetime]


class GuardBatch(Base):
    """Cases of one target held before any submission because more leavers arrived within the
    guard window than allowed; an operator confirms (all proceed) or cancels (none is sent)."""

    __tablename__ = "guard_batches"
    #: At most one batch per target waits for an operator; a second trip joins it.
    __table_args__ = (
        Index(
            "uq_guard_batches_one_held",
            "target",
            unique=True,
            sqlite_where=text("state = 'held'"),
            postgresql_where=text("state = 'held'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(100), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    tripped_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The limit and window in force when it tripped, as shown to the operator.
    max_leavers: Mapped[int]
    window_seconds: Mapped[float]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)


class OpsToken(Base):
    """A named operator credential. Only its SHA-256 is kept: the token is shown once, at creation."""

    __tablename__ = "ops_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # reader | operator
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in console browser: the cookie holds a random ID, the table its SHA-256."""

    __tablename__ = "console_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    token_id: Mapped[int | None]
    expires_at: Mapped[datetime]


class Job(Base):
    """The queue: one row per open case. A worker owns it while `lease_until` is in the future."""

    __tablename__ = "jobs"
    #: IDs are never reused (a claim names its job by ID): AUTOINCREMENT on SQLite, a sequence on PostgreSQL.
    __table_args__ = (Index("ix_jobs_due", "run_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    run_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    claims: Mapped[int] = mapped_column(default=0)
    #: Set by an operator action while a worker may hold the job, so its next schedule runs at once.
    nudged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Audit(Base):
    """Append-only: who or what changed which state, when, and why."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    entity: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str | None] = mapped_column(String(40), index=True)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    before: Mapped[str | None] = mapped_column(String(40))
    after: Mapped[str | None] = mapped_column(String(40))
    why: Mapped[str] = mapped_column(Text)
