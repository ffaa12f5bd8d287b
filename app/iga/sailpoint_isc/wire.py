"""ISC's JSON and leaver's domain, both ways: identity documents, access items, the revoke body,
status rows and their states. Pure functions, so the client only sequences calls."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from app.domain import AccessItem, GrantSource, IgaStatus, IgaUser, ItemType, RemovalRequest, RequestRef, RequestState
from app.iga.base import IgaPermanentError
from app.iga.http import json_object
from app.iga.sailpoint_isc.options import SailPointIscOptions

ISC_TYPES: dict[str, ItemType] = {"ROLE": "role", "ACCESS_PROFILE": "access_profile", "ENTITLEMENT": "entitlement"}
LEAVER_TYPES = {v: k for k, v in ISC_TYPES.items()}

#: `access-request-status` state -> leaver status (contract §6). TERMINATED is set by options.
STATES: dict[str, IgaStatus] = {
    "EXECUTING": IgaStatus.PENDING,
    "PROVISIONING_VERIFICATION_PENDING": IgaStatus.PENDING,
    "REQUEST_COMPLETED": IgaStatus.COMPLETED,
    "NOT_ALL_ITEMS_PROVISIONED": IgaStatus.FAILED,
    "PROVISIONING_FAILED": IgaStatus.FAILED,
    "ERROR": IgaStatus.FAILED,
    "REJECTED": IgaStatus.REJECTED,
    "CANCELLED": IgaStatus.CANCELLED,
}


# ---- types and text


def isc_type(item: AccessItem) -> str:
    """ISC's type for an item; one ISC cannot revoke by access request is a permanent error."""
    kind = item.extra.get("isc_type") or LEAVER_TYPES.get(item.type)
    if kind not in ISC_TYPES:
        raise IgaPermanentError(f"item {item.id}: ISC cannot revoke a {item.type!r} by access request")
    return str(kind)


def item_tag(kind: str, item_id: str) -> str:
    """The `leaverItem` value: which item a status row belongs to."""
    return f"{kind}:{item_id}"


def quote(value: str) -> str:
    """A quoted literal for search queries and list filters."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def norm_dn(dn: str) -> str:
    """DNs compare without case and without spaces around separators."""
    return re.sub(r"\s*([,=+])\s*", r"\1", dn.strip()).casefold()


def iso_time(when: datetime) -> str:
    """UTC with milliseconds, the form ISC's filters and `removeDate` take; naive means UTC."""
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def field_values(doc: Any, path: str) -> list[Any]:
    """Every value at a dotted path, lists flattened (`accounts.accountId`)."""
    current = [doc]
    for part in path.split("."):
        current = [node[part] for node in current if isinstance(node, dict) and part in node]
        current = [v for value in current for v in (value if isinstance(value, list) else [value])]
    return current


def error_text(resp: httpx.Response) -> str:
    """ISC's error bodies in one line: detailCode, messages, causes (never headers or tokens)."""
    body = json_object(resp)
    if body is None:
        return resp.text[:300]
    texts = [m.get("text") for m in [*(body.get("messages") or []), *(body.get("causes") or [])] if isinstance(m, dict)]
    parts = [body.get("detailCode"), *texts, body.get("error"), body.get("message")]
    return " | ".join(str(p).strip() for p in parts if p)[:500]


def row_messages(row: Mapping[str, Any]) -> str | None:
    """The text ISC gives for a row's outcome: its error messages, else the cancellation comment."""
    texts = [
        str(m["text"])
        for group in row.get("errorMessages") or []
        for m in (group or [])
        if isinstance(m, dict) and m.get("text")
    ]
    if texts:
        return "; ".join(texts)
    cancelled = row.get("cancelledRequestDetails") or {}
    return cancelled.get("comment") or None


# ---- identities and access


def to_user(doc: Mapping[str, Any]) -> IgaUser:
    """An identity search document as the domain user; its top-level names join the attributes."""
    attributes = dict(doc.get("attributes") or {})
    for name in ("email", "employeeNumber", "name"):
        if doc.get(name) is not None:
            attributes.setdefault(name, doc[name])
    return IgaUser(
        id=str(doc["id"]),
        display_name=doc.get("displayName") or doc.get("name"),
        attributes=attributes,
        extra={"name": doc.get("name"), "inactive": bool(doc.get("inactive", False))},
    )


def access_item(raw: Mapping[str, Any]) -> AccessItem | None:
    """One `access[]` entry. Roles and access profiles with `revocable: false` came from role
    criteria, a lifecycle state or a role; an entitlement with `standalone: false` came with
    an access profile or role. ISC refuses to revoke either by request (contract §4).

    ISC does not say which grant a non-standalone entitlement came with: it counts as
    role-granted (it goes when its role goes) unless the document marks it `revocable: false`,
    which leaver reads as birthright (it stays until the source removes it)."""
    kind = raw.get("type")
    if kind not in ISC_TYPES or not raw.get("id"):
        return None
    source = raw.get("source") or {}
    granted_by: GrantSource
    if kind == "ENTITLEMENT":
        removable = raw.get("standalone", True) is not False
        granted_by = "direct" if removable else ("birthright" if raw.get("revocable") is False else "role")
    else:
        removable = raw.get("revocable", True) is not False
        granted_by = "direct" if removable else ("birthright" if kind == "ROLE" else "role")
    return AccessItem(
        id=str(raw["id"]),
        type=ISC_TYPES[kind],
        name=str(raw.get("displayName") or raw.get("name") or raw["id"]),
        application=source.get("name"),
        privileged=bool(raw.get("privileged", False)),
        granted_by=granted_by,
        removable=removable,
        extra={
            "isc_type": kind,
            "name": raw.get("name"),
            "source_id": source.get("id"),
            "attribute": raw.get("attribute"),
            "value": raw.get("value"),
            "revocable": raw.get("revocable"),
            "standalone": raw.get("standalone"),
        },
    )


# ---- removals


def build_revoke_body(
    user: IgaUser,
    batch: Sequence[RemovalRequest],
    key: str,
    options: SailPointIscOptions,
    fields: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The REVOKE_ACCESS request for one batch, with the key on the request and every item.
    `fields`, one per item, name the account (`nativeIdentity`) or assignment (`assignmentId`)."""
    now = datetime.now(UTC)
    items = []
    for n, req in enumerate(batch):
        kind = isc_type(req.item)
        item: dict[str, Any] = {
            "type": kind,
            "id": req.item.id,
            "comment": req.reason.strip() or options.default_comment,
            "clientMetadata": {"leaverKey": key, "leaverItem": item_tag(kind, req.item.id)},
        }
        target = dict(fields[n]) if fields else {}
        if target:
            item.update(target)
            item["clientMetadata"]["leaverTarget"] = next(iter(target.values()))
        if req.remove_at is not None:
            when = req.remove_at if req.remove_at.tzinfo else req.remove_at.replace(tzinfo=UTC)
            if when > now:
                item["removeDate"] = iso_time(when)
        items.append(item)
    return {
        "requestType": "REVOKE_ACCESS",
        "requestedFor": [user.id],
        "requestedItems": items,
        "clientMetadata": {"leaverKey": key},
    }


def is_row_of(row: Mapping[str, Any], kind: str, req: RemovalRequest) -> bool:
    """A status row belongs to the item: by our `leaverItem`, else (no metadata) by type and name."""
    meta = row.get("clientMetadata") or {}
    if meta.get("leaverItem"):
        return bool(meta["leaverItem"] == item_tag(kind, req.item.id))
    names = {req.item.name, req.item.extra.get("name")}
    return row.get("type") == kind and row.get("name") in names


# ---- tracking


def refs_from_rows(
    rows: Sequence[Mapping[str, Any]], wanted: Mapping[str, RemovalRequest], key: str, options: SailPointIscOptions
) -> list[RequestRef]:
    """Refs for the items whose rows carry our key, newest row first: one request ID per item,
    or per account/assignment when one item was revoked by several requests."""
    found: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in rows:  # newest first: a later resend under the same key wins
        meta = row.get("clientMetadata") or {}
        tag = meta.get("leaverItem")
        if meta.get("leaverKey") != key or tag not in wanted:
            continue
        found.setdefault(str(tag), {}).setdefault(str(meta.get("leaverTarget") or ""), row)
    refs = []
    for tag, req in wanted.items():
        if tag not in found:
            continue
        picked = list(found[tag].values())
        request_ids = [str(r.get("accessRequestId")) for r in picked]
        states = [row_state(r, options) for r in picked]
        state = states[0] if len(states) == 1 else combine_states(states)
        refs.append(
            RequestRef(
                item_id=req.item.id,
                request_id=request_ids[0],
                tracking_id=f"{'+'.join(request_ids)}:{tag}",
                status=state.status,
                raw_status=state.raw_status,
                message=state.message,
            )
        )
    return refs


def combine_states(states: Sequence[RequestState]) -> RequestState:
    """One item revoked by several requests: pending while any is, completed when all are,
    otherwise the first that did not complete."""
    for state in states:
        if state.status is IgaStatus.PENDING:
            return state
    return next((s for s in states if s.status is not IgaStatus.COMPLETED), states[0])


def pick_row(ref: RequestRef, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The item's row: by our `leaverItem`; else (a request adopted from someone else) the
    only row of the item's type, else the only row. None while ISC does not list it yet."""
    tag = ref.tracking_id.split(":", 1)[1] if ":" in ref.tracking_id else ""
    for row in rows:
        if (row.get("clientMetadata") or {}).get("leaverItem") == tag:
            return row
    same_type = [r for r in rows if r.get("type") == tag.split(":", 1)[0]]
    for candidates in (same_type, rows):
        if len(candidates) == 1:
            return candidates[0]
    if same_type and len({r.get("state") for r in same_type}) == 1:
        return same_type[0]
    return None


def row_state(row: Mapping[str, Any], options: SailPointIscOptions) -> RequestState:
    """A status row's state; TERMINATED maps as the options say."""
    raw = str(row.get("state") or "UNKNOWN")
    if raw == "TERMINATED":
        status = IgaStatus.FAILED if options.terminated_as == "failed" else IgaStatus.CANCELLED
    else:
        status = STATES.get(raw, IgaStatus.PENDING)  # an unknown new state is not taken as final
    return RequestState(status=status, raw_status=raw, message=row_messages(row))
