"""Reading and writing PingOne AIC's documents, with no I/O: managed users, grants as access items,
the publish body of a remove request, the request's decision as leaver's status, refusals in a
200's `errors[]`, and the request-search filters recovery uses (contract §3 to §8)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import structlog

from app.domain import AccessItem, GrantSource, IgaStatus, IgaUser, ItemType, RemovalRequest, RequestState
from app.iga.http import json_object
from app.iga.pingone_aic.options import PingOneAicOptions

Doc = Mapping[str, Any]
#: Item type -> the id field of its remove request's `common` [C: request-type schemas].
ID_FIELDS = {
    "entitlement": "entitlementId",
    "role": "roleId",
    "account": "applicationId",
    "application": "applicationId",
}
PENDING = frozenset({"in-progress", "provisioning", "suspended"})
COMPLETED_OUTCOMES = frozenset({"provisioned", "fulfilled"})
OPEN = frozenset({"in-progress", "suspended"})
log = structlog.get_logger(__name__)


def value(doc: Any, path: str) -> Any:
    """The value at a dotted path (`glossary.idx./entitlement.isPrivileged`), or None."""
    for part in path.split("."):
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(part)
    return doc


def quote(text: str) -> str:
    """A CREST string literal: `"` and `\\` escaped inside the quotes (contract §3)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def error_text(resp: httpx.Response) -> str:
    """IGA (`message`), IDM (`code`/`reason`/`message`) and AM (`error_description`) errors in one
    line, with the transaction ID support asks for; never the request or its headers."""
    body = json_object(resp) or {}
    text = str(body.get("message") or body.get("error_description") or body.get("reason") or resp.text[:200])
    transaction = resp.headers.get("x-forgerock-transactionid")
    return f"{text} (transaction {transaction})" if transaction else text


def user_from_doc(doc: Doc, options: PingOneAicOptions) -> IgaUser:
    """A managed user; `custom_` properties are offered to the policy under their short names too."""
    attributes = {k: v for k, v in doc.items() if not k.startswith("_")}
    for name, val in list(attributes.items()):
        if name.startswith("custom_"):
            attributes.setdefault(name.removeprefix("custom_"), val)
    if options.employee_id_attribute and options.employee_id_attribute in doc:
        attributes.setdefault("employeeNumber", doc[options.employee_id_attribute])
    display = " ".join(str(doc[k]) for k in ("givenName", "sn") if doc.get(k)) or doc.get("userName")
    return IgaUser(
        id=str(doc["_id"]),
        display_name=str(display) if display else None,
        attributes=attributes,
        extra={"userName": doc.get("userName"), "mail": doc.get("mail")},
    )


def _true(flag: Any) -> bool:
    return flag is True or str(flag).casefold() == "true"


def _granted_by(grant: Doc, conditional_roles: set[str], options: PingOneAicOptions) -> GrantSource:
    """`request`/`recon` grants are direct; access held only through roles came with them, and is
    birthright when every such role is a rule-based membership (contract §4)."""
    types = [g for g in value(grant, "relationship.properties.grantTypes") or [] if isinstance(g, Mapping)]
    if not types or any(g.get("grantType") != "role" for g in types):
        return "direct"
    roles = {str(g.get("roleId") or "") for g in types}
    if options.birthright_from_conditional_roles and "" not in roles and roles <= conditional_roles:
        return "birthright"
    return "role"


def _item(
    kind: ItemType, item_id: str, name: str, grant: Doc, granted_by: GrantSource, options: PingOneAicOptions
) -> AccessItem:
    keys = grant.get("keys") or {}
    glossary = "/application" if kind == "account" else f"/{kind}"
    return AccessItem(
        id=item_id,
        type=kind,
        name=name,
        application=value(grant, "application.name"),
        privileged=_true(value(grant, f"glossary.idx.{glossary}.{options.privileged_attribute}")),
        granted_by=granted_by,
        removable=granted_by == "direct",
        extra={
            "id_field": ID_FIELDS[kind],
            "application_id": keys.get("applicationId"),
            "account_id": keys.get("accountId"),
            "entitlement_id": keys.get("entitlementId"),
            "catalog_id": value(grant, "catalog.id"),
        },
    )


def access_items(
    entitlements: Iterable[Doc], accounts: Iterable[Doc], roles: Iterable[Doc], options: PingOneAicOptions
) -> list[AccessItem]:
    """The user's grants as leaver's items: entitlements by `assignment.id`, roles by `roleId`,
    accounts by `applicationId` (those `account_items` lists)."""
    entitlements, accounts, roles = list(entitlements), list(accounts), list(roles)
    conditional = {str(value(r, "keys.roleId")) for r in roles if value(r, "relationship.conditional") is True}
    items: list[AccessItem] = []
    for grant in entitlements:
        assignment = value(grant, "assignment.id") or str(value(grant, "keys.entitlementId") or "").replace("/", "_")
        if not assignment:
            log.warning("pingone_aic.entitlement_without_id", grant=grant.get("compositeId"))
            continue
        name = value(grant, "descriptor.idx./entitlement.displayName") or value(grant, "entitlement.displayName")
        how = _granted_by(grant, conditional, options)
        items.append(_item("entitlement", assignment, str(name or assignment), grant, how, options))
    with_entitlements = {value(g, "keys.applicationId") for g in entitlements}
    for grant in accounts:
        app_id = value(grant, "keys.applicationId")
        listed = options.account_items == "all" or (
            options.account_items == "without_entitlements" and app_id not in with_entitlements
        )
        if not app_id or not listed:
            continue
        app, login = value(grant, "application.name") or app_id, value(grant, "descriptor.idx./account.displayName")
        name = f"{app} ({login})" if login else str(app)
        items.append(_item("account", str(app_id), name, grant, _granted_by(grant, conditional, options), options))
    for grant in roles:
        role_id = value(grant, "keys.roleId") or value(grant, "role.id")
        if not role_id:
            continue
        source: GrantSource = "birthright" if value(grant, "relationship.conditional") is True else "direct"
        items.append(_item("role", str(role_id), str(value(grant, "role.name") or role_id), grant, source, options))
    return items


def id_field(item: AccessItem) -> str:
    """Where the item's id goes in `common` (`entitlementId`, `roleId`, `applicationId`)."""
    return str(item.extra.get("id_field") or ID_FIELDS.get(item.type, "entitlementId"))


def justification(key: str, reason: str) -> str:
    """The key first, so people reading the request in the console see whose it is (§7)."""
    return f"[{key}] {reason.strip()}" if reason.strip() else f"[{key}]"


def publish_body(
    user: IgaUser, req: RemovalRequest, key: str, options: PingOneAicOptions, now: datetime
) -> dict[str, Any]:
    """The remove request's body (contract §5): one user, one item, the key in `externalRequestId`."""
    item = req.item
    common: dict[str, Any] = {
        "userId": user.id,
        id_field(item): item.id,
        "justification": justification(key, req.reason),
        "externalRequestId": key,
    }
    if options.priority:
        common["priority"] = options.priority
    if options.admin_context:
        common["context"] = {"type": "admin"}
    if options.send_account_id and item.type == "entitlement" and item.extra.get("account_id"):
        common["accountId"] = item.extra["account_id"]
    if options.expiry_days:
        expiry = datetime.fromtimestamp(now.timestamp() + options.expiry_days * 86400, now.tzinfo)
        common["expiryDate"] = expiry.isoformat(timespec="seconds")
    return {"common": common}


def refusal(body: Doc) -> tuple[bool, str | None, str] | None:
    """A 200 that carries `errors[]` and no `id` refused the request: (duplicate?, the existing
    request's id, message). None for an accepted request (§8)."""
    errors = [e for e in body.get("errors") or [] if isinstance(e, Mapping)]
    if body.get("id") or not errors:
        return None
    first = errors[0]
    message = str(first.get("message") or first.get("error") or "refused")
    duplicate = str(first.get("error", "")).upper() == "DUPLICATE" or "duplicate" in message.casefold()
    request_id = first.get("requestId")
    return duplicate, str(request_id) if request_id else None, message


def pair_filter(user_id: str, id_field: str, item_id: str, request_type: str, key: str | None) -> dict[str, Any]:
    """The admin request search's filter for one (user, item) pair (§7), optionally the key too."""

    def equals(name: str, want: str) -> dict[str, Any]:
        return {"operator": "EQUALS", "operand": {"targetName": name, "targetValue": want}}

    terms = [
        equals("request.common.userId", user_id),
        equals(f"request.common.{id_field}", item_id),
        equals("requestType", request_type),
    ]
    if key is not None:
        terms.append(equals("request.common.externalRequestId", key))
    return {"targetFilter": {"operator": "AND", "operand": terms}}


def is_draft(doc: Doc) -> bool:
    return value(doc, "request.common.isDraft") is True


def own_request(hits: Sequence[Doc], key: str) -> Doc | None:
    """The newest hit carrying our key, whatever its status (a draft never counts)."""
    mine = [h for h in hits if value(h, "request.common.externalRequestId") == key and not is_draft(h) and h.get("id")]
    return max(mine, key=lambda h: str(value(h, "metadata.createdDate") or ""), default=None)


def open_request(hits: Sequence[Doc]) -> Doc | None:
    """An open, submitted request (someone else's or ours): the one a duplicate refusal means."""
    live = [h for h in hits if value(h, "decision.status") in OPEN and not is_draft(h) and h.get("id")]
    return max(live, key=lambda h: str(value(h, "metadata.createdDate") or ""), default=None)


def request_state(doc: Doc) -> RequestState:
    """`decision.status` / `.decision` / `.outcome` as leaver's status (the table of §6)."""
    status, decision, outcome = (value(doc, f"decision.{k}") for k in ("status", "decision", "outcome"))
    raw = "/".join(str(v) for v in (status, decision, outcome) if v) or "unknown"
    comments = [c for c in value(doc, "decision.comments") or [] if isinstance(c, Mapping)]
    last = str(comments[-1].get("comment")) if comments and comments[-1].get("comment") else None
    if is_draft(doc):
        return RequestState(IgaStatus.FAILED, f"draft/{raw}", "the IGA holds this request as an unsubmitted draft")
    if status in PENDING:
        return RequestState(IgaStatus.PENDING, raw)
    if status == "cancelled":
        return RequestState(IgaStatus.CANCELLED, raw, last)
    if status == "complete":
        if outcome == "not provisioned" or value(doc, "decision.failure") is True:
            return RequestState(IgaStatus.FAILED, raw, last)
        if decision == "rejected" or outcome == "denied":
            return RequestState(IgaStatus.REJECTED, raw, last)
        if outcome == "cancelled":
            return RequestState(IgaStatus.CANCELLED, raw, last)
        # provisioned, fulfilled, or no outcome: done as far as the IGA says; verify decides.
        return RequestState(IgaStatus.COMPLETED, raw)
    log.warning("pingone_aic.unknown_status", request=doc.get("id"), status=raw)
    return RequestState(IgaStatus.PENDING, raw, f"unknown IGA status {raw}")
