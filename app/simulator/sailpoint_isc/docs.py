"""The JSON documents ISC answers with: identities in the search index (with their access and
accounts), accounts, and rows of `access-request-status` with their phases and approvals."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from app.simulator.sailpoint_isc.model import Holding, Identity, Item, Row
from app.simulator.sailpoint_isc.wire import (
    ADMIN,
    APPROVER,
    NULLABLE_REFS,
    OWNER,
    POD,
    TENANT,
    hex_id,
    iso,
    signed_int32,
)


def identity_doc(ident: Identity, now: float, nested: bool = True) -> dict[str, Any]:
    p = ident.person
    first, _, last = p.display_name.partition(" ")
    holdings = [h for h in ident.holdings if h.indexed(now)]
    # An item held on two accounts, or a role assigned twice, is listed once.
    access = list({h.item.id: access_doc(h) for h in reversed(holdings)}.values())[::-1]
    doc: dict[str, Any] = {
        "id": ident.id,
        "name": p.username,
        "displayName": p.display_name,
        "firstName": first,
        "lastName": last,
        "email": p.email,
        "employeeNumber": p.employee_id,
        "created": iso(ident.created),
        "modified": iso(max([ident.created] + [h.removed_at or 0 for h in ident.holdings])),
        "synced": iso(now),
        "inactive": False,
        "protected": False,
        "status": "ACTIVE",
        "disabled": False,
        "locked": False,
        "isManager": False,
        "manager": None,
        "processingState": None,
        "identityProfile": {"id": hex_id("profile", "employees"), "name": "Employees"},
        "source": {"id": hex_id("source", "HR"), "name": "HR"},
        "attributes": {
            "uid": p.username,
            "email": p.email,
            "displayName": p.display_name,
            "firstname": first,
            "lastname": last,
            "identificationNumber": p.employee_id,
            "cloudLifecycleState": "active",
            "cloudStatus": "UNREGISTERED",
            "identityState": "ACTIVE",
            **p.attributes,
        },
        "accountCount": len(ident.accounts),
        "accessCount": len(access),
        "roleCount": sum(1 for a in access if a["type"] == "ROLE"),
        "accessProfileCount": sum(1 for a in access if a["type"] == "ACCESS_PROFILE"),
        "entitlementCount": sum(1 for a in access if a["type"] == "ENTITLEMENT"),
        "pod": POD,
        "org": TENANT,
        "_type": "identity",
        "type": "identity",
        "_version": "v7",
    }
    if nested:
        doc["accounts"] = ident.accounts
        doc["access"] = access
    return doc


def access_doc(h: Holding) -> dict[str, Any]:
    it = h.item
    doc: dict[str, Any] = {
        "id": it.id,
        "name": it.name,
        "displayName": it.name,
        "type": it.type,
        "description": it.description,
    }
    if it.type == "ROLE":
        doc.update(owner=OWNER, disabled=False, revocable=h.revocable)
    elif it.type == "ACCESS_PROFILE":
        doc.update(source=it.source, owner=OWNER, revocable=h.revocable)
    else:
        doc.update(
            source=it.source,
            privileged=it.privileged,
            attribute=it.attribute,
            value=it.value,
            standalone=h.standalone,
            schema="group",
        )
        if h.birthright:
            doc["revocable"] = False
    return doc


def account_docs(identities: Iterable[Identity]) -> list[dict[str, Any]]:
    out = []
    for ident in identities:
        for acc in ident.accounts:
            out.append(
                {
                    "id": acc["id"],
                    "name": acc["name"],
                    "created": acc["created"],
                    "modified": acc["created"],
                    "sourceId": acc["source"]["id"],
                    "sourceName": acc["source"]["name"],
                    "identityId": ident.id,
                    "cloudLifecycleState": "active",
                    "identityState": "ACTIVE",
                    "connectionType": "direct",
                    "isMachine": False,
                    "attributes": {"uid": acc["accountId"]},
                    "authoritative": False,
                    "description": None,
                    "disabled": False,
                    "locked": False,
                    "nativeIdentity": acc["accountId"],
                    "systemAccount": False,
                    "uncorrelated": False,
                    "uuid": None,
                    "manuallyCorrelated": False,
                    "hasEntitlements": True,
                    "identity": {"id": ident.id, "type": "IDENTITY", "name": ident.person.username},
                }
            )
    return out


def row_doc(row: Row, now: float) -> dict[str, Any]:
    state, since = row.state(now)
    approval_done = now >= row.approved_at or row.cancelled_at is not None
    approval_status = (
        "CANCELLED"
        if row.cancelled_at is not None and row.cancelled_at <= row.approved_at
        else "PENDING"
        if not approval_done
        else "REJECTED"
        if state == "REJECTED"
        else "APPROVED"
    )
    approvals = []
    if row.approval_id:
        approvals.append(
            {
                "approvalId": row.approval_id,
                "forwarded": False,
                "originalOwner": APPROVER,
                "currentOwner": APPROVER,
                "modified": iso(min(now, row.approved_at)),
                "status": approval_status,
                "scheme": "MANAGER",
                "errorMessages": None,
                "comment": None,
                "removeDate": iso(row.remove_at) if row.remove_at else None,
            }
        )
    errors = None
    if state in ("PROVISIONING_FAILED", "ERROR", "NOT_ALL_ITEMS_PROVISIONED", "TERMINATED"):
        text = {
            "PROVISIONING_FAILED": f"Failed to remove {row.item.name}: the connector returned an error",
            "ERROR": "An error occurred while processing the request",
            "NOT_ALL_ITEMS_PROVISIONED": "One or more items of the request failed to provision",
            "TERMINATED": "The request was terminated by an administrator",
        }[state]
        errors = [[{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}]]
    cancelled = None
    if state == "CANCELLED":
        comment = row.cancel_comment or row.noop or "Request cancelled by the system"
        cancelled = {"comment": comment, "owner": ADMIN if row.cancel_comment else APPROVER, "modified": iso(since)}
    approval_phase: dict[str, Any] = {
        "started": iso(row.created),
        "finished": iso(since) if approval_done else None,
        "name": "APPROVAL_PHASE",
        "phaseReference": "approvalDetails",
        "state": "EXECUTING" if not approval_done else "CANCELLED" if approval_status == "CANCELLED" else "COMPLETED",
        "result": None
        if not approval_done or approval_status == "CANCELLED"
        else "FAILED"
        if approval_status == "REJECTED"
        else "SUCCESSFUL",
    }
    phases = [approval_phase]
    if approval_done and state not in ("REJECTED", "CANCELLED"):
        finished = now >= row.done_at
        phases.append(
            {
                "started": iso(row.approved_at),
                "finished": iso(row.done_at) if finished else None,
                "name": "PROVISIONING_PHASE",
                "phaseReference": None,
                "state": "COMPLETED" if finished else "EXECUTING",
                "result": None
                if not finished
                else "SUCCESSFUL"
                if state in ("REQUEST_COMPLETED", "PROVISIONING_VERIFICATION_PENDING")
                else "FAILED",
            }
        )
    ident = row.identity
    doc = {
        "id": row.id,
        "name": row.item.name,
        "type": row.item.type,
        "cancelledRequestDetails": cancelled,
        "errorMessages": errors,
        "state": state,
        "approvalDetails": approvals,
        "approvalIds": [row.approval_id] if row.approval_id else [],
        "manualWorkItemDetails": None,
        "accountActivityItemId": row.activity_item_id,
        "requestType": "REVOKE_ACCESS",
        "modified": iso(since),
        "created": iso(row.created),
        "requester": row.requester,
        "requestedFor": {"type": "IDENTITY", "id": ident.id, "name": ident.person.display_name},
        "requesterComment": {"comment": row.comment, "created": iso(row.created), "author": row.requester},
        "sodViolationContext": None,
        "provisioningDetails": None,
        "preApprovalTriggerDetails": None,
        "accessRequestPhases": phases,
        "description": row.item.description,
        "startDate": None,
        "removeDate": iso(row.remove_at) if row.remove_at else None,
        "cancelable": row.cancelable(now),
        "accessRequestId": row.access_request_id,
        "clientMetadata": row.metadata,
        "requestedAccounts": None,
        "privilegeLevel": None,
    }
    # The spec makes these `allOf: [$ref, {nullable: true}]`, which strict validators read as
    # "never null": leave them out when empty.
    return {k: v for k, v in doc.items() if v is not None or k not in NULLABLE_REFS}


def tracking(ident: Identity, items: list[Item], ids: list[str]) -> dict[str, Any]:
    """One entry of the 202 answer's `newRequests` or `existingRequests`."""
    details = [{"type": i.type, "id": i.id} for i in items]
    digest = "|".join([ident.id, "REVOKE_ACCESS", *sorted(f"{i.type}:{i.id}" for i in items)])
    return {
        "requestedFor": ident.id,
        "requestedItemsDetails": details,
        "attributesHash": signed_int32(zlib.crc32(digest.encode())),
        "accessRequestIds": ids,
    }
