"""Governance requests of the simulated tenant: the three OOTB remove types, each request's
decision over the simulator clock, duplicates by the types' `uniqueKeys`, drafts, the request
actions (cancel, approve, reject, comment) and the grant a completed removal takes away.

A request's decision is computed from when it was made and what the configuration said then
(`Plan`), so advancing the clock moves every request without a background task (contract §6, §9.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.simulator.pingone_aic.config import Outcome
from app.simulator.pingone_aic.directory import Directory, GrantKind

#: requestTypeId -> (the item's id field in `common`, the grant it removes, the OOTB workflow).
REMOVE_TYPES: dict[str, tuple[str, GrantKind, str]] = {
    "entitlementRemove": ("entitlementId", "entitlement", "BasicEntitlementRemove"),
    "roleRemove": ("roleId", "role", "BasicRoleRemove"),
    "applicationRemove": ("applicationId", "account", "BasicApplicationRemove"),
}
#: `common` properties of the remove types (the 2026-04 schema; `accountId` by a switch).
COMMON_FIELDS = frozenset(
    {
        "userId",
        "justification",
        "externalRequestId",
        "priority",
        "context",
        "isDraft",
        "startDate",
        "endDate",
        "expiryDate",
        "requestIdPrefix",
    }
)
OPEN = frozenset({"in-progress", "suspended"})
AUTO_APPROVED = "Request auto-approved due to request context: admin"


class GovernanceError(Exception):
    """An answer in IGA's error format, `{"message": ...}`, with extra fields where it has them."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}


@dataclass(frozen=True)
class Plan:
    """The configuration a request was made under."""

    outcome: Outcome
    approve_at: float
    fulfil_delay: float
    verify_delay: float
    auto_approved: bool


@dataclass
class Decision:
    status: str
    decision: str | None = None
    outcome: str | None = None
    completed_at: float | None = None
    failure: bool = False
    comments: list[tuple[float, str, str]] = field(default_factory=list)  # (when, who, text)

    @property
    def terminal(self) -> bool:
        return self.status not in OPEN


@dataclass
class GovRequest:
    id: str
    type: str
    user_id: str
    item_id: str
    common: dict[str, Any]
    created: float
    plan: Plan
    draft: bool = False
    end_date: float | None = None
    cancelled: tuple[float, str] | None = None
    notes: list[tuple[float, str, str]] = field(default_factory=list)
    applied: bool = False
    modified: float = 0.0
    #: The workflow instance (`workflow.instanceId`).
    instance: int = 0

    @property
    def grant(self) -> GrantKind:
        return REMOVE_TYPES[self.type][1]

    def decision(self, now: float) -> Decision:
        """Where the workflow stands at `now` (contract §6's values)."""
        plan, notes = self.plan, list(self.notes)
        if plan.auto_approved and now >= plan.approve_at:
            notes.insert(0, (plan.approve_at, "system", AUTO_APPROVED))
        if self.cancelled is not None and self.cancelled[0] <= now:
            at, why = self.cancelled
            return Decision("cancelled", None, "cancelled", at, comments=[*notes, (at, "leaver", why)])
        if self.draft or now < plan.approve_at:
            return Decision("in-progress", comments=notes)
        at = plan.approve_at
        if plan.outcome == "rejected":
            return Decision("complete", "rejected", "denied", at, comments=[*notes, (at, "owner", "Rejected")])
        if plan.outcome == "cancelled":
            return Decision("cancelled", None, "cancelled", at, comments=[*notes, (at, "system", "Request expired")])
        if plan.outcome == "stuck":
            return Decision("in-progress", "approved", comments=notes)
        if plan.outcome == "suspended" or (self.end_date is not None and now < self.end_date):
            return Decision("suspended", "approved", comments=notes)
        start = max(at, self.end_date or at)
        done = start + plan.fulfil_delay
        if now < done:
            return Decision("in-progress", "approved", comments=notes)
        if plan.outcome == "failed":
            why = (
                f"Deprovisioning failed: Error deprovisioning {self.grant} {self.item_id} from user {self.user_id}. "
                "Error message: the target system refused the change"
            )
            return Decision(
                "complete", "approved", "not provisioned", done, failure=True, comments=[*notes, (done, "system", why)]
            )
        return Decision("complete", "approved", "provisioned", done, comments=notes)


class Requests:
    """Every request of the tenant, in creation order. Callers hold the simulator lock."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.all: list[GovRequest] = []
        self.withdrawn: list[GovRequest] = []

    def get(self, request_id: str) -> GovRequest:
        found = next((r for r in self.all if r.id == request_id), None)
        if found is None:
            raise GovernanceError(404, "Request not found")
        return found

    def open_duplicate(self, kind: str, user_id: str, item_id: str, now: float) -> GovRequest | None:
        """The open request the type's `uniqueKeys` (user, item) make a new one collide with."""
        for req in self.all:
            same = (req.type, req.user_id, req.item_id) == (kind, user_id, item_id)
            if same and not req.draft and req.decision(now).status in OPEN:
                return req
        return None

    def tick(self, now: float) -> None:
        """Apply the removals that completed (their grants go `verify_delay` after completion)."""
        for req in self.all:
            if req.applied or req.draft:
                continue
            decision = req.decision(now)
            done = decision.completed_at
            if decision.outcome == "provisioned" and done is not None and now >= done + req.plan.verify_delay:
                req.applied = True
                self.directory.revoke(req.user_id, req.grant, req.item_id)

    def act(self, req: GovRequest, action: str, comment: str, now: float) -> None:
        """`POST /requests/{id}?_action=...`: cancel, approve, reject or comment."""
        decision = req.decision(now)
        if action == "comment":
            req.notes.append((now, "leaver", comment))
        elif decision.terminal:
            # A4: what AIC answers to an action on a finished request is unknown; a 400.
            raise GovernanceError(400, f"Request {req.id} is {decision.status}: it cannot be changed")
        elif action == "cancel":
            req.cancelled = (now, comment or "Request cancelled")
            self.withdrawn.append(req)
        elif action in ("approve", "reject") and decision.decision is None:
            outcome = req.plan.outcome if action == "approve" else "rejected"
            p = req.plan
            req.plan = Plan(outcome, now, p.fulfil_delay, p.verify_delay, p.auto_approved)
            if comment:
                req.notes.append((now, "owner", comment))
        else:
            raise GovernanceError(400, f"Invalid action {action!r} for a request that is {decision.status}")
        req.modified = now
