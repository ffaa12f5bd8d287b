"""`NetIqIgOptions`: every value the contract marks as assumed [A], settable per target."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NetIqIgOptions(BaseModel):
    """Per-target knobs for IG, read from `target.options`. Each default is the contract's
    assumption [A]; change one when a live IG (or its identity-collector mapping) differs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: IG attribute keys the user search filters on, per event identifier (§3).
    attr_dn: str = "userDn"
    attr_username: str = "userId"
    attr_email: str = "email"
    attr_employee_id: str = "workforceId"
    #: Body of `POST /data/users/search`: `criterias` as JSON strings (as public Java code sends),
    #: `criterias_objects`, `searchCriteria`, or `q` (quick search on `q=<value>`, empty body).
    search_body: Literal["criterias", "criterias_objects", "searchCriteria", "q"] = "criterias"
    #: Where the user's unique ID is read: these top-level fields in order, then an attribute of that key.
    unique_id_fields: tuple[str, ...] = ("uniqueUserId", "userUniqueId")
    #: Items per removal request (IG documents no limit; one recipient per request).
    batch_size: int = Field(25, ge=1, le=500)
    #: Longest `reason` sent; the marker at its start is never cut.
    reason_max_length: int = Field(255, ge=40)
    #: Text after the marker in the request-level reason.
    request_reason: str = "Leaver: removal of a departed user's access"
    #: requestType per item kind (§5 pairing).
    request_type_permission: str = "REMOVE_PERMISSION_ASSIGNMENT"
    request_type_account_permission: str = "REMOVE_ACCOUNT_PERMISSION"
    request_type_tech_role: str = "REMOVE_TECH_ROLE_ASSIGNMENT"
    request_type_business_role: str = "REMOVE_BUSINESS_ROLE_MEMBERSHIP"
    #: Remove permissions held through an account as REMOVE_ACCOUNT_PERMISSION with
    #: `recipientAccountUniqueId` (costs one accounts listing per inventory) instead of the plain type.
    account_scoped_removal: bool = False
    #: `size` of every paged call (IG's request APIs default it to 0, so it is always sent).
    page_size: int = Field(100, ge=1, le=1000)
    #: IG's permission model has no privileged flag, so nothing is privileged unless configured:
    #: a field of the permission/role (e.g. `risk`) and the values that mean privileged (e.g.
    #: `["HIGH"]`; without values, a true boolean), and/or name globs.
    privileged_field: str | None = None
    privileged_values: tuple[str, ...] = ()
    privileged_names: tuple[str, ...] = ()
    #: Whether the request lookup lists role removal items (unverified [A]: it has only getPerms and
    #: getApps flags). False: role items are not waited for there. Either way a role item the lookup
    #: does not list is tracked by listing the user's roles again, never resubmitted.
    role_items_in_lookup: bool = True
    #: IG version: "4.x" adds requested business roles to the inventory.
    version: str = "4.2"
    #: How far before a submit the lookup's `startDate` reaches (clock skew), and how far back
    #: `find_existing` and the duplicate adoption look.
    lookup_window_seconds: float = Field(600.0, ge=0)
    recovery_window_seconds: float = Field(7 * 86400.0, ge=0)
    #: Add `getAll=true` to the lookup (needs ManageRequests scope ALL) to see other requesters' items.
    lookup_get_all: bool = False
    lookup_max_pages: int = Field(20, ge=1)
    #: Narrow the lookup to the user with `q=<display name>&qMatch=EXACT` (IG's `q` matches
    #: application, permission and recipient names [A]); rows are still matched on the recipient's
    #: unique ID, so a wider answer is harmless. Off: every request of the window is read.
    lookup_by_recipient_name: bool = True
    #: After a submit, how often and how far apart to look for items IG has not listed yet.
    lookup_attempts: int = Field(3, ge=1)
    lookup_retry_seconds: float = Field(1.0, ge=0)
    #: OSP: client credentials in the form body or as HTTP Basic; revoke URL (default: token URL's
    #: last segment replaced by `revoke`); renew this long before expiry; token call timeout.
    client_auth: Literal["form", "basic"] = "form"
    revoke_url: str | None = None
    token_renew_seconds: float = Field(20.0, ge=0)
    token_timeout_seconds: float = Field(10.0, gt=0)
    #: `retractPerms` sent with a retract.
    retract_perms: bool = False
