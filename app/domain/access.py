"""What an IGA holds and answers, as leaver speaks of it: users, access items, removal requests
and where the IGA filed them. Every adapter maps its wire format onto these."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

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
