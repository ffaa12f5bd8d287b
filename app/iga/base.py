"""The one interface every IGA adapter implements, and the plain data it speaks.

The pipeline only ever sees these types, so a new IGA system is one module that maps its wire
format onto them; nothing in the worker knows which system it talks to.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

ItemType = Literal["role", "entitlement", "application", "account", "access_profile"]
GrantSource = Literal["direct", "role", "birthright"]


@dataclass(frozen=True)
class UserIdentifiers:
    """What the IDM told us about the user; any subset may be present."""

    dn: str | None = None
    username: str | None = None
    email: str | None = None
    employee_id: str | None = None
    iga_id: str | None = None  # a direct IGA ID supplied by the event (`user.ids[target]`)

    def present(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class IgaUser:
    """A user as found in the IGA. `id` is the ID requests are addressed to."""

    id: str
    display_name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # System-specific extras the adapter needs later (e.g. NetIQ numeric userId).
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessItem:
    """One piece of access the user holds, normalised for the policy."""

    id: str
    type: ItemType
    name: str
    application: str | None = None
    privileged: bool = False
    granted_by: GrantSource = "direct"
    removable: bool = True  # False: the IGA will refuse a removal request (role-granted, birthright)
    extra: Mapping[str, Any] = field(default_factory=dict)


class IgaStatus(enum.StrEnum):
    """Every system's request states collapse to these five."""

    PENDING = "pending"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self is not IgaStatus.PENDING


@dataclass(frozen=True)
class RemovalRequest:
    """One item to remove, as the pipeline hands it to `submit_removals`."""

    item: AccessItem
    plan_item_id: int
    reason: str
    remove_at: datetime | None = None  # IGA-side scheduling where the system supports it


@dataclass(frozen=True)
class RequestRef:
    """Where the IGA filed one item's removal: `request_id` is what operators see, `tracking_id`
    what we poll (equal on systems with one ID per item)."""

    item_id: str
    request_id: str
    tracking_id: str
    status: IgaStatus = IgaStatus.PENDING
    raw_status: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class RequestState:
    status: IgaStatus
    raw_status: str
    message: str | None = None


class IgaError(Exception):
    """Base for adapter errors. `retryable` tells the pipeline whether trying later can help."""

    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class IgaTransientError(IgaError):
    """Throttled, 5xx, timeout or connection error that outlasted the retry budget."""

    retryable = True


class IgaPermanentError(IgaError):
    """A 4xx the IGA will answer the same way every time (bad body, forbidden, unknown ID)."""


class IgaUncertainError(IgaTransientError):
    """A non-idempotent call may or may not have taken effect (timeout, 5xx, dropped connection).

    Never resend after this: look for the earlier request first (design: exactly-once keys)."""


class UserNotFound(IgaPermanentError):
    pass


class AmbiguousUser(IgaPermanentError):
    pass


@runtime_checkable
class IgaClient(Protocol):
    """What the pipeline needs from an IGA. One instance per configured target."""

    system: str

    #: The most items one removal request may carry, per item type; the pipeline batches by it.
    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]: ...

    async def find_user(self, ids: UserIdentifiers) -> IgaUser: ...

    async def list_access(self, user: IgaUser) -> list[AccessItem]: ...

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """Submit one batch under correlation `key`. Raises IgaUncertainError when the outcome
        is unknown; returns one ref per item the IGA accepted or adopted as a duplicate."""
        ...

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """Refs of an earlier submission of this batch (found by `key`), empty if none."""
        ...

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        """Current state of each ref, keyed by `tracking_id`, in as few calls as the API allows."""
        ...

    async def cancel_request(self, user: IgaUser, ref: RequestRef, reason: str) -> bool:
        """Withdraw a submitted removal (rehire). False where the IGA no longer allows it."""
        ...

    async def aclose(self) -> None: ...
