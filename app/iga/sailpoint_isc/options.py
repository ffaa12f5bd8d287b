"""`SailPointIscOptions`: the contract's assumptions [A] and tenant choices, settable per target."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: ISC's largest page for list endpoints, and how far a search may page at all.
LIST_LIMIT_MAX = 250
SEARCH_WINDOW = 10000

Lookup = Literal["employee_id", "username", "dn", "email"]
#: Employee number and username first: an email address can be shared (and then is ambiguous).
DEFAULT_ORDER: tuple[Lookup, ...] = ("employee_id", "username", "dn", "email")


class SailPointIscOptions(BaseModel):
    """`target.options` for sailpoint-isc. Each value is an assumption of the contract ([A]) or
    a tenant-specific choice, so it can be changed without code."""

    model_config = ConfigDict(extra="forbid")

    #: API path prefix. The same operations exist under v2024, v2025 and v2026.
    api_version: str = Field("v3", pattern=r"^(v3|v20\d\d|beta)$")
    #: Identity search field that holds the username; tenant-specific.
    username_attribute: str = Field("attributes.uid", pattern=r"^[A-Za-z0-9_.]+$")
    #: Find a username by that attribute, or by an account whose accountId is the username.
    username_lookup: Literal["attribute", "account"] = "attribute"
    #: Find a DN by `@accounts(accountId:"dn")` in search, or via `GET /accounts?filters=nativeIdentity eq`.
    dn_lookup: Literal["search", "accounts"] = "search"
    #: With dn_lookup "accounts": only accounts of this source (the IDM's directory) count.
    dn_source_id: str | None = None
    #: Identifiers tried in this order; the first one that names exactly one identity wins.
    lookup_order: list[Lookup] = Field(default_factory=lambda: list(DEFAULT_ORDER))
    #: Page size for identity searches (ISC allows up to 10000).
    search_page_size: int = Field(50, ge=1, le=SEARCH_WINDOW)
    #: Page size for access-request-status and accounts (ISC allows up to 250).
    status_page_size: int = Field(LIST_LIMIT_MAX, ge=1, le=LIST_LIMIT_MAX)
    #: Roles and access profiles per revoke request (no documented limit; entitlements go alone).
    batch_max: int = Field(25, ge=1, le=250)
    #: Request IDs per `accessRequestId in (...)` status call, to keep URLs short.
    status_ids_per_call: int = Field(50, ge=1, le=250)
    #: Looking for an earlier submission: tries, and seconds between them (contract §7.6).
    lookup_grace_tries: int = Field(3, ge=1, le=20)
    lookup_grace_seconds: float = Field(15.0, ge=0)
    #: Only status rows created this many days back are searched for a correlation key.
    lookup_window_days: float = Field(30.0, gt=0)
    #: The first date form tried in `created ge ...` filters: bare (the spec's examples) or quoted.
    #: Which one ISC takes is undocumented; on a 400 the other is tried once and remembered.
    created_filter_quoted: bool = False
    #: The API version whose `identities/{id}/role-assignments` says which assignment of a role to
    #: revoke (v2024+); None where the tenant has no such API: a role listed twice then goes to an operator.
    role_assignments_version: str | None = Field("v2025", pattern=r"^(v20\d\d|beta)$")
    #: TERMINATED (stopped, e.g. by an admin) counts as failed: the access probably remains.
    terminated_as: Literal["failed", "cancelled"] = "failed"
    #: Comment for items whose removal reason is empty (ISC requires one on every revoke item).
    default_comment: str = Field("leaver: access removal", min_length=1)
