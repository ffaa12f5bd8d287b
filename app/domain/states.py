"""The named states of cases, plan items and removal batches (design: "States").

The values are the strings stored in the database and shown by the API; `StrEnum` members compare
and hash as those strings, so a row's plain `state` column can be tested against them directly.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol


class CaseState(enum.StrEnum):
    """One case: the work for one event on one IGA target, in pipeline order."""

    RECEIVED = "received"  # stored by intake, no worker has looked at it
    RESOLVING = "resolving"  # a worker is finding the user and listing their access
    INVENTORIED = "inventoried"  # the user's access is listed; policy not yet applied
    PLANNED = "planned"  # (kept for older rows) the plan is written
    SUBMITTING = "submitting"  # due removals are being sent, batch by batch
    TRACKING = "tracking"  # every due removal is with the IGA; polling its requests
    VERIFYING = "verifying"  # the IGA finished; listing access again to confirm
    DONE = "done"  # every item is in a terminal state
    FAILED = "failed"  # a dead letter: kept for an operator
    CANCELLED = "cancelled"  # a rehire or an operator ended it

    @property
    def terminal(self) -> bool:
        return self in CASE_TERMINAL


CASE_TERMINAL = frozenset({CaseState.DONE, CaseState.FAILED, CaseState.CANCELLED})


class ItemState(enum.StrEnum):
    """One plan item: what became of one access item of a case."""

    PLANNED = "planned"  # to be removed, not yet sent
    SCHEDULED = "scheduled"  # to be removed at its due time
    HELD = "held"  # waits for an operator's decision
    SUBMITTED = "submitted"  # with the IGA under a request ID
    UNCERTAIN = "uncertain"  # its case failed while a send of it may have reached the IGA
    REMOVED = "removed"  # the IGA completed and the item is gone
    KEPT = "kept"  # policy keeps it
    CANCELLED = "cancelled"  # a rehire, a newer event or an operator withdrew it
    REJECTED = "rejected"  # the IGA denied the removal
    FAILED = "failed"  # an error after retries, or still held after the IGA said done

    @property
    def terminal(self) -> bool:
        return self in ITEM_TERMINAL


ITEM_TERMINAL = frozenset(
    {ItemState.REMOVED, ItemState.KEPT, ItemState.CANCELLED, ItemState.REJECTED, ItemState.FAILED}
)
ITEM_IN_FLIGHT = frozenset(
    {ItemState.PLANNED, ItemState.SCHEDULED, ItemState.HELD, ItemState.SUBMITTED, ItemState.UNCERTAIN}
)
#: States of an item that may still be sent to the IGA (a held item first needs an operator).
ITEM_UNSENT = frozenset({ItemState.PLANNED, ItemState.SCHEDULED})


class BatchState(enum.StrEnum):
    """One write-ahead removal batch (an `iga_requests` row)."""

    SENDING = "sending"  # committed before the call: the IGA may or may not have it
    SUBMITTED = "submitted"  # the IGA's request IDs are recorded
    FAILED = "failed"  # refused by the IGA, or settled as never sent


class GuardState(enum.StrEnum):
    """A blast-radius guard batch: the cases of one target held when too many leavers arrived."""

    HELD = "held"  # waiting for an operator; none of its cases submits anything
    CONFIRMED = "confirmed"  # an operator let every case of it proceed
    CANCELLED = "cancelled"  # an operator cancelled every case of it: nothing submitted


#: Note on items failed only because their case failed; an operator retry plans them again.
FAILED_BEFORE_SUBMISSION = "case failed before submission"


class PlanItemLike(Protocol):
    """What the predicates read of a plan item (the stored row satisfies it)."""

    @property
    def state(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def removable(self) -> bool: ...
    @property
    def request_row_id(self) -> int | None: ...
    @property
    def due_at(self) -> datetime | None: ...


def is_unsent(item: PlanItemLike) -> bool:
    """Not sent, not being sent, and still to be decided or sent: a newer event may take it over."""
    return item.state in ITEM_UNSENT and item.request_row_id is None


def is_due(item: PlanItemLike, now: datetime) -> bool:
    """A removal the IGA takes by request, not yet sent, whose time has come."""
    return (
        is_unsent(item) and item.action == "remove" and item.removable and (item.due_at is None or item.due_at <= now)
    )
