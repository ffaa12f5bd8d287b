"""The shared words of leaver: what an IDM says (the event), what an IGA holds and answers (users,
access items, removal requests and their references) and the states a case, a plan item and a
removal batch pass through.

This room sits at the bottom: every other room imports it, and it imports nothing from `app`.
"""

from app.domain.access import (
    AccessItem,
    GrantSource,
    IgaStatus,
    IgaUser,
    ItemType,
    RemovalRequest,
    RequestRef,
    RequestState,
    UserIdentifiers,
)
from app.domain.event import EventType, EventUser, LeaverEvent
from app.domain.states import (
    CASE_TERMINAL,
    FAILED_BEFORE_SUBMISSION,
    ITEM_IN_FLIGHT,
    ITEM_TERMINAL,
    ITEM_UNSENT,
    BatchState,
    CaseState,
    GuardState,
    ItemState,
    PlanItemLike,
    is_due,
    is_unsent,
)

__all__ = [
    "CASE_TERMINAL",
    "FAILED_BEFORE_SUBMISSION",
    "ITEM_IN_FLIGHT",
    "ITEM_TERMINAL",
    "ITEM_UNSENT",
    "AccessItem",
    "BatchState",
    "CaseState",
    "EventType",
    "EventUser",
    "GrantSource",
    "GuardState",
    "IgaStatus",
    "IgaUser",
    "ItemState",
    "ItemType",
    "LeaverEvent",
    "PlanItemLike",
    "RemovalRequest",
    "RequestRef",
    "RequestState",
    "UserIdentifiers",
    "is_due",
    "is_unsent",
]
