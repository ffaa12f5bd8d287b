"""The JSON IG answers with: users, accounts, held permissions and roles, request list rows and
request item info, as the 4.2 spec (and 3.7, where it differs) shapes them."""

from __future__ import annotations

from typing import Any

from app.simulator.netiq_ig.catalog import Catalog
from app.simulator.netiq_ig.model import Account, Holding, IgUser, ReqItem
from app.simulator.netiq_ig.wire import APP_TYPES, FAIL_STATUSES


def user_json(user: IgUser, keys: set[str] | None = None) -> dict[str, Any]:
    return {
        "userId": user.user_id,
        "uniqueUserId": user.unique_id,
        "link": f"/api/data/users/{user.user_id}",
        "deleted": user.deleted,
        "attributes": [
            {"attributeKey": k, "attributeValue": v} for k, v in user.attributes.items() if keys is None or k in keys
        ],
    }


def account_json(cat: Catalog, acct: Account, held: list[Holding]) -> dict[str, Any]:
    app = cat.apps[acct.app_id]
    perms = [cat.perms[h.item] for h in held if h.account_id == acct.account_id]
    return {
        "accountId": acct.account_id,
        "uniqueAcctId": acct.unique_id,
        "name": acct.name,
        "appId": app.app_id,
        "appDisplayName": app.name,
        "appType": APP_TYPES.get(app.name, "ENTERPRISE"),
        "authorizedBy": [],
        "deleted": False,
        "permissions": [
            {"permId": p.perm_id, "uniquePermId": p.unique_id, "displayName": p.display_name} for p in perms
        ],
    }


def perm_json(cat: Catalog, h: Holding) -> dict[str, Any]:
    perm = cat.perms[h.item]
    app = cat.apps[perm.app_id]
    acct = cat.accounts.get(h.account_id or -1)
    role = cat.roles.get(h.via_role or "")
    br = cat.broles.get(h.via_br or "")
    authorized_by = (
        [
            {
                "businessRoleId": br.role_id,
                "uniqueId": br.unique_id,
                "displayName": br.name,
                "autoGrant": True,
                "indirectAuthorization": False,
            }
        ]
        if br
        else []
    )
    body: dict[str, Any] = {
        "permId": perm.perm_id,
        "uniquePermId": perm.unique_id,
        "name": perm.name,
        "displayName": perm.display_name,
        "description": f"{perm.display_name} in {app.name}",
        "type": "group" if app.name == "Active Directory" else "permission",
        "appId": app.app_id,
        "appDisplayName": app.name,
        "appType": APP_TYPES.get(app.name, "ENTERPRISE"),
        "accountId": acct.account_id if acct else None,
        "accountName": acct.name if acct else None,
        "dynamic": perm.dynamic,
        "startDate": h.since_ms,
        "endDate": None,
        "authorizedBy": authorized_by,
        "assocBy": role.name if role else None,
        "provByPerm": None,
        "permissionAssignmentInfo": {
            "assocById": role.unique_id if role else None,
            "assocByName": role.name if role else None,
            "atype": "TECH_ROLE" if role else ("BUSINESS_ROLE" if br else "DIRECT"),
            "revocable": h.revocable,
            "startTime": h.since_ms,
            "endTime": None,
        },
        # IG has no privileged field; `risk` is deployment-defined [A]: HIGH marks the privileged.
        "risk": "HIGH" if perm.privileged else "LOW",
    }
    if h.instance_guid:
        body["instanceGuid"] = h.instance_guid
    return body


def role_json(cat: Catalog, h: Holding) -> dict[str, Any]:
    role = cat.role_of(h)
    return {
        "id": role.role_id,
        "uniquePolicyId": role.unique_id,
        "name": role.name,
        "description": f"{'Business' if h.kind == 'brole' else 'Technical'} role {role.name}",
        "state": "ACTIVE",
        "assigned": h.requested,
        "authorizedBy": [],
    }


def held_json(cat: Catalog, h: Holding) -> dict[str, Any]:
    """One row of the `/_state/users/{username}/access` test helper."""
    if h.kind == "perm":
        perm = cat.perms[h.item]
        name, app_name = perm.display_name, cat.apps[perm.app_id].name
    else:
        name, app_name = cat.role_of(h).name, None
    return {"kind": h.kind, "uniqueId": h.item, "name": name, "application": app_name, "revocable": h.revocable}


def request_json(cat: Catalog, item: ReqItem, now: float, version: str) -> dict[str, Any]:
    decision, _, _ = item.progress(now)
    recipient = cat.users.get(item.recipient)
    body: dict[str, Any] = {
        "resourceRequestId": item.request_id,
        "resourceRequestItemId": item.item_id,
        "requestType": item.request_type,
        "requestItem": item.request_item,
        "displayName": item.display_name,
        "appDisplayName": item.app_display_name,
        "recipient": item.recipient,
        "recipientDisplayName": recipient.display_name if recipient else None,
        "recipientAccountUniqueId": item.account_unique_id,
        "instanceGuid": item.instance_guid,
        "decision": decision,
        "reason": item.reason,
        "effectiveDate": None,
        "requestDate": int(item.submitted * 1000),
    }
    if version == "3.7":
        del body["resourceRequestId"]
    return body


def info_json(item: ReqItem, now: float) -> dict[str, Any]:
    decision, status, changed = item.progress(now)
    actions = []
    if status is not None:
        actions.append(
            {
                "changeItemId": item.change_item_id,
                "itemId": item.target_id,
                "order": 1,
                "action": "REMOVE",
                "status": status,
                "fulfillerType": "MANUAL" if item.manual else "CONNECTOR",
                "fulfillerName": "BR administrator" if item.manual else f"{item.app_display_name or 'IG'} connector",
                "comment": f"Fulfilment {status.lower()}" if status in FAIL_STATUSES else None,
                "updateTime": int(changed * 1000),
            }
        )
    steps = []
    if item.approval_delay > 0 or item.outcome == "rejected":
        steps.append(
            {
                "stepNumber": 1,
                "stepType": "APPROVAL",
                "stepApproveOrDenyStatus": decision,
                "approvers": [{"name": "Access Approver"}],
                "stepCompletionTime": int(changed * 1000) if decision != "NO_DECISION" else None,
            }
        )
    return {
        "requestStatus": decision,
        "itemApprovalStatus": decision,
        "requestTime": int(item.submitted * 1000),
        "lastStatusUpdateTime": int(changed * 1000),
        "requestReason": item.request_reason,
        "requestItemReason": item.reason,
        "delayed": False,
        "delayedToTime": None,
        "requesterFeedback": None,
        "approvalSteps": steps,
        "changeItemActions": actions,
    }
