"""What the simulated IG holds: its `/_config`, the catalogue records (users, applications,
accounts, permissions, roles), what each user holds, and request items, whose status is a function
of the simulator clock and the settings captured when they were submitted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from app.simulator.base import SimConfig
from app.simulator.netiq_ig.wire import FAIL_STATUSES, MAX_SIZE

#: itemStatus values `/_config submit_item_status` may force (denied or failed at submit).
SubmitRefusal = Literal[
    "REQUEST_DENIED",
    "REQUEST_AUTO_DENIED",
    "PROXY_REQUEST_DENIED",
    "PROXY_REQUEST_AUTO_DENIED",
    "ERROR_STARTING_REQUEST",
    "ERROR_STARTING_APPROVAL",
    "ERROR_STARTING_PSODV_APPROVAL",
    "INVALID_EFFECTIVE_DATE",
    "REQUEST_EXPIRED",
]


class NetIqConfig(SimConfig):
    """`/_config`: the shared keys with IG's defaults (OSP access tokens live 119 s), then the
    switches of points the contract marks as assumed."""

    token_lifetime: int = Field(119, ge=1)
    page_size_max: int = Field(MAX_SIZE, ge=1)
    #: 3.7 has no business-role requests and no `resourceRequestId` in the request list.
    version: Literal["3.7", "4.2"] = "4.2"
    #: Every submitted item is refused at submit with this itemStatus.
    submit_item_status: SubmitRefusal | None = None
    #: The fulfilment status of a failed item, and the verification of a completed one.
    fail_status: Literal["ERROR", "REFUSED", "TIMED_OUT"] = "ERROR"
    verify_result: Literal["VERIFIED", "NOT_VERIFIED"] = "VERIFIED"
    #: Whether `POST /request/requests` lists technical-role and business-role removal items at
    #: all: its only item-kind flags are getPerms and getApps, so this is unverified [A].
    role_items_in_lookup: bool = True


@dataclass
class IgUser:
    user_id: int
    unique_id: str
    username: str
    display_name: str
    attributes: dict[str, str]
    deleted: bool = False


@dataclass
class App:
    app_id: int
    unique_id: str
    name: str


@dataclass
class Account:
    account_id: int
    unique_id: str
    app_id: int
    owner: str  # uniqueUserId
    name: str


@dataclass
class Perm:
    perm_id: int
    unique_id: str
    name: str
    display_name: str
    app_id: int
    privileged: bool = False
    dynamic: bool = False


@dataclass
class Role:
    """A technical or business role in the catalogue."""

    role_id: int
    unique_id: str
    name: str
    privileged: bool = False


@dataclass
class Holding:
    """One thing a user holds: a permission (through an account), a technical or a business role."""

    kind: str  # perm | role | brole
    item: str  # unique ID of the permission / role
    since_ms: int
    account_id: int | None = None
    instance_guid: str | None = None
    via_role: str | None = None  # technical role that associated this permission
    via_br: str | None = None  # business role that auto-grants it
    revocable: bool = True
    requested: bool = True  # brole: requested membership (False: from membership criteria)


@dataclass
class ReqItem:
    """One request item; its status is derived from the clock and the settings captured at submit."""

    item_id: int
    request_id: int
    change_item_id: int
    request_type: str
    request_item: str
    recipient: str
    requester: str
    reason: str
    request_reason: str
    submitted: float
    approval_delay: float
    fulfil_delay: float
    verify_delay: float
    outcome: str
    fail_status: str
    verify_result: str
    display_name: str
    app_display_name: str | None
    target_id: int
    instance_guid: str | None = None
    account_unique_id: str | None = None
    parent: int | None = None
    manual: bool = False  # criteria-based BR: only a manual fulfilment task, never done by itself
    retracted_at: float | None = None

    def progress(self, now: float) -> tuple[str, str | None, float]:
        """(decision, fulfilment status or None, sim time of the last change)."""
        if self.retracted_at is not None and now >= self.retracted_at:
            return "RETRACTED", None, self.retracted_at
        approved = self.submitted + self.approval_delay
        if now < approved:
            return "NO_DECISION", None, self.submitted
        if self.outcome == "rejected":
            return "DENIED", None, approved
        if self.outcome == "cancelled":
            return "CLEARED", None, approved
        if self.manual:
            return "APPROVED", "PENDING", approved
        fulfilled = approved + self.fulfil_delay
        if now < fulfilled:
            started = approved + self.fulfil_delay / 4
            return "APPROVED", ("INITIALIZED" if now < started else "IN_PROGRESS"), approved
        if self.outcome == "failed":
            return "APPROVED", self.fail_status, fulfilled
        verified = fulfilled + self.verify_delay
        if now < verified:
            return "APPROVED", "COMPLETED", fulfilled
        return "APPROVED", self.verify_result, verified

    def final(self, now: float) -> bool:
        decision, status, _ = self.progress(now)
        return decision in ("DENIED", "RETRACTED", "CLEARED") or status in ("VERIFIED", "NOT_VERIFIED", *FAIL_STATUSES)
