"""IdentityIQ's SCIM JSON and leaver's domain, both ways: users, access items, TaskResult states,
`attributes` in either shape, approval sets. Pure functions, so the client only sequences calls."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree.ElementTree import ParseError

import httpx
from defusedxml import ElementTree as SafeET

from app.domain import AccessItem, IgaStatus, IgaUser, RequestState
from app.iga.http import json_object
from app.iga.sailpoint_iiq.plan import IIQ_APP, LAUNCHED_WORKFLOW, ROLE_ATTRIBUTE

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SAILPOINT_USER = "urn:ietf:params:scim:schemas:sailpoint:1.0:User"

#: `completionStatus` -> leaver status (contract §6); TempError is final only once `completed` is set.
STATES: dict[str, IgaStatus] = {
    "Success": IgaStatus.COMPLETED,
    "Warning": IgaStatus.COMPLETED,
    "Error": IgaStatus.FAILED,
    "TempError": IgaStatus.FAILED,
    "Terminated": IgaStatus.CANCELLED,
}
RUNNING = "Running"
#: ApprovalItem `state` (WorkItem.State) -> the item's status; others mean still waiting.
APPROVAL_STATES = {"Rejected": IgaStatus.REJECTED, "Finished": IgaStatus.COMPLETED}


def quote(value: str) -> str:
    """A SCIM filter string literal (values must be quoted, §3)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def norm_dn(dn: str) -> str:
    """DNs compare without case and without spaces around separators."""
    return re.sub(r"\s*([,=+])\s*", r"\1", dn.strip()).casefold()


def ref_id(entry: Mapping[str, Any]) -> str | None:
    """The referenced resource's id: the last segment of `$ref` (the meaning of `value` is [A1])."""
    ref = entry.get("$ref")
    if isinstance(ref, str) and ref.rstrip("/"):
        return ref.rstrip("/").rsplit("/", 1)[-1] or None
    value = entry.get("value")
    return str(value) if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) else None


def error_text(resp: httpx.Response) -> str:
    """A SCIM error in one line (`scimType: detail`); other bodies shortened. Never headers."""
    body = json_object(resp)
    if body is None:
        return resp.text[:300]
    parts = [body.get("scimType"), body.get("detail")]
    text = ": ".join(str(p) for p in parts if p)
    return text[:500] or str(body)[:300]


def resources(page: Any) -> list[dict[str, Any]]:
    if not isinstance(page, dict):
        return []
    return [r for r in page.get("Resources") or [] if isinstance(r, dict)]


# ---- users


def to_user(doc: Mapping[str, Any]) -> IgaUser:
    """A SCIM User as the domain user: core names and the extension's simple attributes (the
    policy matches on them, e.g. a legal hold flag)."""
    extension = doc.get(SAILPOINT_USER) or {}
    attributes: dict[str, Any] = {k: v for k, v in extension.items() if isinstance(v, str | int | float | bool)}
    emails = [e.get("value") for e in doc.get("emails") or [] if isinstance(e, dict) and e.get("value")]
    attributes.update(userName=doc.get("userName"), active=doc.get("active", True))
    if emails:
        attributes["email"] = emails[0]
    return IgaUser(
        id=str(doc["id"]),
        display_name=doc.get("displayName") or doc.get("userName"),
        attributes=attributes,
        extra={"userName": doc.get("userName"), "active": bool(doc.get("active", True))},
    )


def user_values(doc: Mapping[str, Any], key: str, employee_attribute: str) -> list[str]:
    """What a User says for one kind of identifier, to confirm a filter's match exactly."""
    if key == "username":
        return [str(doc.get("userName") or "")]
    if key == "email":
        return [str(e.get("value")) for e in doc.get("emails") or [] if isinstance(e, dict)]
    if key == "employee_id":
        return [str((doc.get(SAILPOINT_USER) or {}).get(employee_attribute) or "")]
    return []


# ---- access items


def classified(resource: Mapping[str, Any], privileged: Sequence[str]) -> bool:
    """Whether any classification of an Entitlement or Role is one the options call privileged."""
    raw = resource.get("classifications") or []
    found = raw if isinstance(raw, list) else [raw]
    names = set()
    for c in found:
        inner = c.get("classification") if isinstance(c, dict) else None
        if isinstance(inner, dict):
            names |= {str(inner.get("name")), str(inner.get("displayName"))}
    return bool(names & set(privileged))


def role_item(
    item_id: str, entry: Mapping[str, Any], role: Mapping[str, Any], via: str | None, privileged: bool
) -> AccessItem:
    """A role the user holds. An assigned role is removed by `assignedRoles`; a detected role no
    assigned role requires by `detectedRoles`; one an assigned role requires goes with that role."""
    assigned = str(entry.get("acquired") or "").casefold() == "assigned"
    name = str(role.get("name") or entry.get("display") or item_id)
    kind = "assigned_role" if assigned else "detected_role"
    return AccessItem(
        id=item_id,
        type="role",
        name=str(role.get("displayableName") or name),
        application=IIQ_APP,
        privileged=privileged,
        granted_by="role" if via else "direct",
        removable=via is None,
        extra={
            "iiq_kind": kind,
            "role_name": name,
            "acquired": entry.get("acquired"),
            "role_type": entry.get("type"),
            "assignment_id": entry.get("assignmentId"),
            "via": via,
            "role_id": role.get("id"),
        },
    )


def entitlement_item(
    item_id: str, entry: Mapping[str, Any], entitlement: Mapping[str, Any] | None, privileged: bool
) -> AccessItem:
    """An entitlement on one of the user's accounts. Without its resource (no `$ref`) leaver cannot
    name the attribute in a plan: it is listed, not removable."""
    ent = entitlement or {}
    permission = str(entry.get("type") or "").casefold() == "permission"
    return AccessItem(
        id=item_id,
        type="entitlement",
        name=str(entry.get("display") or ent.get("displayableName") or ent.get("value") or item_id),
        application=entry.get("application"),
        privileged=privileged,
        removable=bool(ent.get("attribute")) and ent.get("value") is not None,
        extra={
            "iiq_kind": "permission" if permission else "entitlement",
            "application": entry.get("application"),
            "account": entry.get("accountName"),
            "attribute": ent.get("attribute"),
            "value": ent.get("value"),
            "entitlement_id": ent.get("id"),
        },
    )


def account_item(account: Mapping[str, Any]) -> AccessItem:
    app = account.get("application") or {}
    app_name = app.get("displayName") if isinstance(app, dict) else None
    native = account.get("nativeIdentity")
    return AccessItem(
        id=str(account["id"]),
        type="account",
        name=str(native or account.get("displayName") or account["id"]),  # the display name repeats per account
        application=app_name,
        extra={"iiq_kind": "account", "application": app_name, "native_identity": native},
    )


# ---- launches and TaskResults


def attribute_map(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`attributes` (real answers: an array of {key, value}) or `Attributes` (the spec: an object)."""
    out: dict[str, Any] = {}
    for name in ("Attributes", "attributes"):
        raw = doc.get(name)
        if isinstance(raw, dict):
            out.update(raw)
        elif isinstance(raw, list):
            out.update({str(a["key"]): a.get("value") for a in raw if isinstance(a, dict) and "key" in a})
    return out


def identity_request_id(doc: Mapping[str, Any]) -> str | None:
    """The "Access Request" number: from the LaunchedWorkflow extension, else from `attributes`."""
    value = (doc.get(LAUNCHED_WORKFLOW) or {}).get("identityRequestId") or attribute_map(doc).get("identityRequestId")
    return str(value) if value else None


def messages(doc: Mapping[str, Any]) -> str | None:
    texts = []
    for m in doc.get("messages") or []:
        text = m if isinstance(m, str) else (m.get("text") or m.get("message")) if isinstance(m, dict) else None
        if text:
            texts.append(str(text))
    return "; ".join(texts)[:1000] or None


def task_state(doc: Mapping[str, Any]) -> RequestState:
    """A TaskResult (or launch answer) as a status. No `completionStatus` means the case still
    runs (approval, background provisioning); an unknown value is not taken as final."""
    raw = doc.get("completionStatus")
    if doc.get("terminated") is True or raw == "Terminated":
        return RequestState(IgaStatus.CANCELLED, "Terminated", messages(doc))
    if not raw or (raw == "TempError" and not doc.get("completed")):
        return RequestState(IgaStatus.PENDING, str(raw or RUNNING), messages(doc))
    return RequestState(STATES.get(str(raw), IgaStatus.PENDING), str(raw), messages(doc))


def approval_items(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ApprovalItems of a launch's `approvalSet` XML (the IGA's text, parsed safely)."""
    text = (doc.get(LAUNCHED_WORKFLOW) or {}).get("approvalSet") or doc.get("approvalSet")
    if not isinstance(text, str) or "<" not in text:
        return []
    try:
        root = SafeET.fromstring(text.strip())
    except (ParseError, ValueError):
        return []
    return [{k: str(v) for k, v in e.attrib.items()} for e in root.iter("ApprovalItem")]


def approval_matches(approval: Mapping[str, str], item: AccessItem, account_op: str) -> bool:
    """Whether an ApprovalItem is about this item's removal (`account_op`: what removes an account)."""
    extra, kind = item.extra, item.extra.get("iiq_kind")

    def same(a: Any, b: Any) -> bool:
        return str(a or "").casefold() == str(b or "").casefold()

    if kind in ROLE_ATTRIBUTE:
        if extra.get("assignment_id") and approval.get("assignmentId"):
            return same(approval["assignmentId"], extra["assignment_id"])
        return same(approval.get("name"), ROLE_ATTRIBUTE[str(kind)]) and same(approval.get("value"), extra["role_name"])
    if not same(approval.get("application"), extra.get("application")):
        return False
    if kind == "account":
        native = approval.get("nativeIdentity")
        return same(approval.get("operation"), account_op) and (
            native is None or norm_dn(native) == norm_dn(str(extra.get("native_identity") or ""))
        )
    native = approval.get("nativeIdentity")
    if native is not None and norm_dn(native) != norm_dn(str(extra.get("account") or "")):
        return False
    return same(approval.get("name"), extra.get("attribute")) and same(approval.get("value"), extra.get("value"))


def approval_state(approvals: Sequence[Mapping[str, str]], item: AccessItem, account_op: str) -> IgaStatus | None:
    """The approval decision on one item, if the set has one for it."""
    for approval in approvals:
        if approval_matches(approval, item, account_op):
            return APPROVAL_STATES.get(approval.get("state", ""), IgaStatus.PENDING)
    return None
