"""IG's JSON and leaver's domain, both ways: status words, users, access items, request bodies and
the rows the §7 lookup reads. Pure functions, so the client only sequences calls."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from app.domain import AccessItem, GrantSource, IgaStatus, IgaUser, RemovalRequest, RequestRef, RequestState
from app.iga.base import IgaPermanentError
from app.iga.http import json_object
from app.iga.netiq_ig.options import NetIqIgOptions

_PENDING = (
    "REQUESTING APPROVING APPROVING_PSODV NO_DECISION WAITING_PSODV_APPROVAL TENTATIVE_APPROVED TENTATIVE_DENIED "
    "TENTATIVE_RETRACTED APPROVED INITIALIZED PENDING IN_PROGRESS RETRY ADD REMOVE REASSIGNED"
)
_COMPLETED = "COMPLETED FULFILLED VERIFIED VERIFICATION_IGNORED SKIPPED"
_REJECTED = "DENIED REFUSED REQUEST_DENIED REQUEST_AUTO_DENIED PROXY_REQUEST_DENIED PROXY_REQUEST_AUTO_DENIED"
_CANCELLED = "RETRACTED CLEARED REQUEST_EXPIRED"
_FAILED = (
    "ERROR_STARTING_REQUEST ERROR_STARTING_APPROVAL ERROR_STARTING_PSODV_APPROVAL INVALID_REQUEST_TYPE "
    "INVALID_EFFECTIVE_DATE ERROR TIMED_OUT NOT_VERIFIED VERIFICATION_TIMEOUT"
)
#: Contract §6: every IG decision, itemStatus, fulfilment status and action, as a leaver status.
STATUS_MAP: dict[str, IgaStatus] = {
    value: status
    for words, status in (
        (_PENDING, IgaStatus.PENDING),
        (_COMPLETED, IgaStatus.COMPLETED),
        (_REJECTED, IgaStatus.REJECTED),
        (_CANCELLED, IgaStatus.CANCELLED),
        (_FAILED, IgaStatus.FAILED),
    )
    for value in words.split()
}
#: Submit answers meaning "an earlier request for this item is in flight": adopt it.
DUPLICATES = frozenset({"DUPLICATE_REQUEST", "DUP_EXPIRATION_REQUEST"})
ACCEPTED = frozenset({"REQUESTING", "APPROVING", "APPROVING_PSODV"})


def map_status(value: str | None) -> IgaStatus | None:
    """Leaver status of one IG value; None for duplicates and unknown values."""
    return STATUS_MAP.get(value or "")


def item_state(info: Mapping[str, Any]) -> RequestState:
    """State of a request item from its `/info` (§6): the decision, and once APPROVED the last
    change-item action (highest `order`, then latest `updateTime`)."""
    decision = str(info.get("requestStatus") or info.get("itemApprovalStatus") or "")
    if decision == "APPROVED":
        actions = [a for a in info.get("changeItemActions") or [] if isinstance(a, dict)]
        if not actions:
            return RequestState(IgaStatus.PENDING, decision)
        last = max(actions, key=lambda a: (a.get("order") or 0, a.get("updateTime") or 0))
        for value in (last.get("status"), last.get("action")):
            status = map_status(value)
            if status is not None:
                message = last.get("comment") if status in (IgaStatus.FAILED, IgaStatus.REJECTED) else None
                return RequestState(status, str(value), message)
        return RequestState(IgaStatus.PENDING, str(last.get("status") or decision), "unrecognised IG status")
    status = map_status(decision)
    if status is None:
        return RequestState(IgaStatus.PENDING, decision or "UNKNOWN", "unrecognised IG status")
    return RequestState(status, decision, info.get("requesterFeedback") or None)


def fault_text(resp: httpx.Response) -> str:
    """`Fault.Reason.Text` (with its subcode) of an IG error, else the OAuth error or the raw text."""
    body = json_object(resp)
    if body is None:
        return resp.text[:300]
    fault = body.get("Fault")
    if isinstance(fault, dict):
        reason = (fault.get("Reason") or {}).get("Text") or ""
        subcode = ((fault.get("Code") or {}).get("Subcode") or {}).get("Value")
        return f"{subcode}: {reason}" if subcode else str(reason)
    return str(body.get("error_description") or body.get("error") or resp.text[:300])


# ------------------------------------------------------------------ markers and users


def item_marker(key: str, request: RemovalRequest) -> str:
    """What ties an IG request item back to our plan item: written into its `reason`."""
    return f"{key}:{request.plan_item_id}"


def has_marker(reason: Any, marker: str) -> bool:
    return isinstance(reason, str) and re.search(rf"(?<!\S){re.escape(marker)}(?!\S)", reason) is not None


def user_attribute(user: Mapping[str, Any], key: str) -> str | None:
    """The lowercased value of one attribute in an IG user row, None when absent."""
    for a in user.get("attributes") or []:
        if isinstance(a, dict) and a.get("attributeKey") == key and a.get("attributeValue") is not None:
            return str(a["attributeValue"]).lower()
    return None


def to_user(raw: Mapping[str, Any], options: NetIqIgOptions) -> IgaUser:
    attributes = {
        str(a.get("attributeKey")): a.get("attributeValue")
        for a in raw.get("attributes") or []
        if isinstance(a, dict) and a.get("attributeKey")
    }
    unique = next((raw[f] for f in options.unique_id_fields if raw.get(f)), None)
    unique = unique or next((attributes[f] for f in options.unique_id_fields if attributes.get(f)), None)
    if not unique:
        raise IgaPermanentError(f"IG user {raw.get('userId')} has none of {options.unique_id_fields}")
    name = attributes.get("displayName")
    extra = {"userId": raw.get("userId"), "deleted": bool(raw.get("deleted"))}
    return IgaUser(id=str(unique), display_name=str(name) if name else None, attributes=attributes, extra=extra)


# ------------------------------------------------------------------ access


def is_privileged(raw: Mapping[str, Any], options: NetIqIgOptions) -> bool:
    """IG has no privileged flag: the configured field and values, else a name glob."""
    field = options.privileged_field
    flag = raw.get(field) if field else None
    if flag is not None and options.privileged_values:
        if str(flag).casefold() in {v.casefold() for v in options.privileged_values}:
            return True
    elif flag is True or str(flag).lower() in ("true", "yes", "1"):
        return True
    names = [str(raw.get(k) or "") for k in ("displayName", "name")]
    return any(fnmatch.fnmatch(n.lower(), g.lower()) for g in options.privileged_names for n in names)


def permission_item(p: Mapping[str, Any], accounts: Mapping[Any, str], options: NetIqIgOptions) -> AccessItem:
    o = options
    info = p.get("permissionAssignmentInfo") or {}
    role = info.get("assocById")
    auto = any(isinstance(a, dict) and a.get("autoGrant") for a in p.get("authorizedBy") or [])
    granted: GrantSource = "role" if role else "birthright" if auto else "direct"
    unique = str(p["uniquePermId"])
    guid = p.get("instanceGuid")
    account = accounts.get(p.get("accountId"))
    rtype = o.request_type_account_permission if account else o.request_type_permission
    extra = {
        "kind": "permission",
        "requestType": rtype,
        "uniqueId": unique,
        "permId": p.get("permId"),
        "appId": p.get("appId"),
        "accountId": p.get("accountId"),
        "accountName": p.get("accountName"),
        "accountUniqueId": account,
        "instanceGuid": guid,
        "assocById": role,
        "assocByName": info.get("assocByName"),
    }
    return AccessItem(
        id=f"{unique}:{guid}" if guid else unique,
        type="entitlement",
        name=str(p.get("displayName") or p.get("name") or unique),
        application=p.get("appDisplayName"),
        privileged=is_privileged(p, o),
        granted_by=granted,
        removable=info.get("revocable") is not False and granted == "direct",
        extra={k: v for k, v in extra.items() if v is not None},
    )


def role_item(r: Mapping[str, Any], options: NetIqIgOptions, *, business: bool) -> AccessItem:
    o = options
    auto = any(isinstance(a, dict) and a.get("autoGrant") for a in r.get("authorizedBy") or [])
    unique = str(r["uniquePolicyId"])
    return AccessItem(
        id=unique,
        type="role",
        name=str(r.get("name") or unique),
        privileged=is_privileged(r, o),
        granted_by="birthright" if auto else "direct",
        removable=not auto and r.get("assigned") is not False,
        extra={
            "kind": "business_role" if business else "tech_role",
            "requestType": o.request_type_business_role if business else o.request_type_tech_role,
            "uniqueId": unique,
            "roleId": r.get("id"),
        },
    )


# ------------------------------------------------------------------ removals


def reason_text(marker: str, text: str, options: NetIqIgOptions) -> str:
    """The marker first, so cutting to `reason_max_length` never loses it."""
    return f"{marker} {text}".strip()[: max(options.reason_max_length, len(marker))]


def request_item(user: IgaUser, r: RemovalRequest, key: str, options: NetIqIgOptions) -> dict[str, Any]:
    """One `requestItems[]` entry; the lookup compares rows against it too."""
    extra = r.item.extra
    default = options.request_type_tech_role if r.item.type == "role" else options.request_type_permission
    body: dict[str, Any] = {
        "requestType": extra.get("requestType", default),
        "requestItem": extra.get("uniqueId", r.item.id),
        "recipient": user.id,
        "reason": reason_text(item_marker(key, r), r.reason, options),
    }
    if extra.get("accountUniqueId") and body["requestType"] == options.request_type_account_permission:
        body["recipientAccountUniqueId"] = extra["accountUniqueId"]
    if extra.get("instanceGuid"):
        body["instanceGuid"] = extra["instanceGuid"]
    return body


# ------------------------------------------------------------------ answers and request rows


def same_item(row: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """A request row is the wanted item: same recipient, item and type, and instance when both say."""
    if (row.get("recipient"), row.get("requestItem"), row.get("requestType")) != (
        want["recipient"],
        want["requestItem"],
        want["requestType"],
    ):
        return False
    guid = want.get("instanceGuid")
    return not guid or not row.get("instanceGuid") or row.get("instanceGuid") == guid


def pair_statuses(bodies: Sequence[Mapping[str, Any]], answers: Sequence[Any]) -> list[Mapping[str, Any]]:
    """Each submitted item's answer: by item and type, else by position; {} when IG said nothing."""
    left = [a for a in answers if isinstance(a, dict)]
    paired: list[Mapping[str, Any]] = []
    for n, body in enumerate(bodies):
        match = next(
            (
                a
                for a in left
                if a.get("requestItem") == body["requestItem"] and a.get("requestType") == body["requestType"]
            ),
            None,
        )
        if match is None and len(left) == len(bodies) - n and left:
            match = left[0]
        if match is not None:
            left.remove(match)
        paired.append(match or {})
    return paired


def ref_from_row(r: RemovalRequest, row: Mapping[str, Any]) -> RequestRef:
    """The ref of an item found by the lookup, with the row's decision as its first state."""
    item_id = str(row["resourceRequestItemId"])
    decision = str(row.get("decision") or "")
    return RequestRef(
        item_id=r.item.id,
        request_id=str(row.get("resourceRequestId") or item_id),  # 3.7 rows carry only the item ID
        tracking_id=item_id,
        status=map_status(decision) or IgaStatus.PENDING,
        raw_status=decision or None,
    )


def invisible_duplicate(r: RemovalRequest, key: str) -> RequestRef:
    """IG says "duplicate" but the lookup cannot see the original: fail it, naming the fix."""
    return RequestRef(
        item_id=r.item.id,
        request_id=f"{key}:{r.item.id}",
        tracking_id=f"{key}:{r.item.id}",
        status=IgaStatus.FAILED,
        raw_status="DUPLICATE_REQUEST",
        message="IG has a request for this item in flight that the service account cannot list "
        "(set option lookup_get_all with the ManageRequests right)",
    )


def no_longer_held(r: RemovalRequest, key: str) -> RequestRef:
    """An item recovery could not find a request for, but the user no longer holds: whatever
    removed it, nothing is left to send."""
    return RequestRef(
        item_id=r.item.id,
        request_id=f"{key}:{r.item.id}",
        tracking_id=f"gone:{key}:{r.item.id}",
        status=IgaStatus.COMPLETED,
        raw_status="NOT_HELD",
        message="no longer held by the user when recovery looked (the request list was too long to read to the end)",
    )


RELIST = "relist:"


def is_role(r: RemovalRequest) -> bool:
    return r.item.type == "role"


def relist_ref(r: RemovalRequest, key: str) -> RequestRef:
    """A role item IG accepted that its request list does not show (§7): no ID to poll, so it is
    tracked by listing the user's roles again; never failed, never resubmitted."""
    return RequestRef(
        item_id=r.item.id,
        request_id=f"{key}:{r.item.id}",
        tracking_id=f"{RELIST}{key}:{r.item.id}",
        status=IgaStatus.PENDING,
        raw_status="NOT_LISTED",
        message="accepted; IG's request list does not show role removals, so the user's roles are listed again",
    )


def relist_state(held: bool) -> RequestState:
    """A re-listed role item: gone is done; held is pending (the verify grace then hands it on)."""
    if held:
        return RequestState(IgaStatus.PENDING, "NOT_LISTED", "still held; IG does not list role removals")
    return RequestState(IgaStatus.COMPLETED, "NOT_HELD", "the role is no longer held")
