"""What the simulated tenant holds: its `/_config`, catalog items, identities and what they hold,
tokens, and the rows of `access-request-status`, whose state is a function of the simulator clock
and the settings captured when the request was made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from app.simulator.base import OUTCOMES, SimConfig
from app.simulator.demo_users import DemoPerson
from app.simulator.sailpoint_isc.wire import FINAL_STATE, LIST_LIMIT_MAX


class IscConfig(SimConfig):
    """`/_config`: the standard keys every simulator shares, then ISC-specific switches."""

    #: Besides the shared outcomes, ISC's own final states.
    outcomes: ClassVar[tuple[str, ...]] = (*OUTCOMES, "not_all_items_provisioned", "terminated", "error")

    #: Search index lag: a removed item stays in `access[]` this long after REQUEST_COMPLETED.
    verify_delay: float = Field(2.0, ge=0)
    token_lifetime: int = Field(749, ge=1)
    #: The most records a list page holds (ISC: 250). Set lower, it also caps search pages.
    page_size_max: int = Field(LIST_LIMIT_MAX, ge=1)
    #: The pre-2024-12 202 body: `{}` without request IDs.
    legacy_empty_202: bool = False
    rate_limit_per_10s: int = Field(100, ge=1)
    #: Time spent in PROVISIONING_VERIFICATION_PENDING after provisioning.
    verification_delay: float = Field(0.0, ge=0)
    #: A new request shows in access-request-status only after this long.
    status_lag: float = Field(0.0, ge=0)
    #: True: an item with an open request goes into `existingRequests`. False: it becomes a new
    #: request that ends CANCELLED as a duplicate (the forum's description).
    report_existing: bool = True
    #: False: `accessRequestId in (...)` answers 400 (a tenant without the 2024-12 change).
    status_in_filter: bool = True
    #: >0: the items of one submission are spread over several accessRequestIds, this many each.
    items_per_request_id: int = Field(0, ge=0)
    #: Which date form `created` filters on access-request-status accept (undocumented [A]):
    #: `created ge 2026-01-01T00:00:00.000Z`, `created ge "2026-..."`, or either. Others get a 400.
    created_date_form: Literal["unquoted", "quoted", "both"] = "unquoted"
    #: A revoke for an identity with several accounts on the item's source (or holding a role
    #: more than once) without `nativeIdentity`/`assignmentId` (undocumented [A]): a 400, or the
    #: removal of one arbitrary assignment.
    ambiguous_revoke: Literal["reject", "arbitrary"] = "reject"


@dataclass
class Item:
    """An access item in the catalog (role, access profile or entitlement)."""

    id: str
    type: str
    name: str
    description: str
    source: dict[str, str] | None
    privileged: bool = False
    attribute: str | None = None
    value: str | None = None


@dataclass
class Holding:
    """One item an identity holds; gone from the index at `hidden_at`."""

    item: Item
    revocable: bool
    standalone: bool
    via: str | None = None
    birthright: bool = False
    #: The account that holds an entitlement; the assignment of a role (several per role possible).
    account: str | None = None
    assignment_id: str | None = None
    removed_at: float | None = None
    hidden_at: float | None = None

    def held(self) -> bool:
        return self.removed_at is None

    def indexed(self, now: float) -> bool:
        return self.hidden_at is None or now < self.hidden_at


@dataclass
class Identity:
    id: str
    person: DemoPerson
    created: float
    holdings: list[Holding]
    accounts: list[dict[str, Any]]


@dataclass
class Token:
    authorities: list[str]
    client_id: str
    identity_id: str | None
    expires_at: float


@dataclass
class Row:
    """One requested item: a row of `access-request-status`."""

    id: str
    access_request_id: str
    activity_item_id: str
    identity: Identity
    item: Item
    position: int
    created: float
    comment: str
    metadata: dict[str, str] | None
    remove_at: float | None
    outcome: str
    approval_delay: float
    fulfil_delay: float
    verification_delay: float
    verify_delay: float
    visible_at: float
    requester: dict[str, str]
    noop: str | None = None
    #: The one holding this row removes (an account's entitlement, an assignment of a role).
    target: Holding | None = None
    approval_id: str | None = None
    cancelled_at: float | None = None
    cancel_comment: str | None = None
    applied: bool = False

    @property
    def approved_at(self) -> float:
        return self.created + self.approval_delay

    @property
    def done_at(self) -> float:
        return max(self.approved_at, self.remove_at or 0.0) + self.fulfil_delay

    @property
    def final_at(self) -> float:
        return self.done_at + self.verification_delay

    def state(self, now: float) -> tuple[str, float]:
        """The state at `now` and when it began."""
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return "CANCELLED", self.cancelled_at
        if now < self.approved_at:
            return "EXECUTING", self.created
        if self.noop or self.outcome == "cancelled":
            return "CANCELLED", self.approved_at
        if self.outcome == "rejected":
            return "REJECTED", self.approved_at
        if now < self.done_at:
            return "EXECUTING", self.approved_at
        if now < self.final_at:
            return "PROVISIONING_VERIFICATION_PENDING", self.done_at
        return FINAL_STATE[self.outcome], self.final_at

    def cancelable(self, now: float) -> bool:
        return self.cancelled_at is None and now < self.approved_at
