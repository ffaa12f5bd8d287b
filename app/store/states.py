"""The named states of cases and plan items (design: "States")."""

from __future__ import annotations

CASE_STATES = (
    "received",
    "resolving",
    "inventoried",
    "planned",
    "submitting",
    "tracking",
    "verifying",
    "done",
    "failed",
    "cancelled",
)
CASE_TERMINAL = frozenset({"done", "failed", "cancelled"})

ITEM_IN_FLIGHT = ("planned", "scheduled", "held", "submitted")
ITEM_TERMINAL = frozenset({"removed", "kept", "cancelled", "rejected", "failed"})
ITEM_STATES = (*ITEM_IN_FLIGHT, *sorted(ITEM_TERMINAL))

#: Note on items failed only because their case failed; an operator retry plans them again.
FAILED_BEFORE_SUBMISSION = "case failed before submission"
