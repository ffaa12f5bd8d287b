"""The tenant's documents as the simulator answers them: IDM managed users and CREST errors,
IGA grants (entitlement, account, role), accounts and governance requests (contract §3, §4, §6).

Shapes follow the contract's recorded examples and the seed's samples: `keys`, `item`,
`descriptor.idx`, `glossary.idx`, `relationship.properties.grantTypes`, dates with `+00:00`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from app.simulator.pingone_aic.directory import App, Directory, Grant, Person, hex128
from app.simulator.pingone_aic.keys import SERVICE_ACCOUNT_ID
from app.simulator.pingone_aic.requests import REMOVE_TYPES, GovRequest


def iso(at: float) -> str:
    """IGA's timestamps: `2026-11-21T00:00:04+00:00`."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def iso_z(at: float) -> str:
    """IDM metadata timestamps: `2025-01-22T18:16:03.576Z`."""
    when = datetime.fromtimestamp(at, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def crest_error(status: int, message: str | None = None) -> dict[str, Any]:
    """IDM's error body; it has a `message` like IGA's, so it also serves injected faults."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return {"code": status, "reason": reason, "message": message or reason}


REQUESTER = {"id": SERVICE_ACCOUNT_ID, "userName": "leaver-service-account", "givenName": "leaver", "sn": "service"}


def user_summary(person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "userName": person.user_name,
        "mail": person.mail,
        "givenName": person.given_name,
        "sn": person.sn,
    }


def managed_user(person: Person) -> dict[str, Any]:
    """`/openidm/managed/alpha_user` as IDM returns it (every property, `_id` and `_rev`)."""
    return {
        "_id": person.id,
        "_rev": f"{person.id}-{person.rev}",
        "userName": person.user_name,
        "mail": person.mail,
        "givenName": person.given_name,
        "sn": person.sn,
        "cn": f"{person.given_name} {person.sn}",
        "accountStatus": person.account_status,
        **person.properties,
    }


def _application(app: App) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "templateName": app.template,
        "connectorId": app.system,
        "authoritative": False,
        "objectTypes": [{"name": "__ACCOUNT__"}, {"name": "__GROUP__", "accountAttribute": "memberOf"}],
    }


def _common(grant: Grant, person: Person, kind: str, now: float) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "item": {"type": kind},
        "catalog": {"id": hex128("catalog", grant.kind, grant.target)},
        "compositeId": hex128("composite", grant.user_id, grant.kind, grant.target),
        "user": {**user_summary(person), "userId": person.id, "accountStatus": person.account_status},
        "metadata": {"createdDate": iso_z(grant.created), "modifiedDate": iso_z(max(grant.created, now - 60))},
    }
    if grant.kind != "role":
        doc["relationship"] = {"id": grant.relationship_id, "properties": {"grantTypes": list(grant.grant_types)}}
    return doc


def entitlement_grant(grant: Grant, person: Person, directory: Directory, now: float) -> dict[str, Any]:
    ent = directory.entitlements[grant.target]
    app = ent.app
    doc = _common(grant, person, "entitlementGrant", now)
    doc["item"]["objectType"] = ent.object_type
    doc["keys"] = {
        "type": "entitlementGrant",
        "userId": person.id,
        "applicationId": app.id,
        "accountId": directory.account_id(person.id, app),
        "entitlementId": ent.entitlement_id,
    }
    doc["assignment"] = {"id": ent.assignment_id, "name": ent.name}
    doc["application"] = _application(app)
    doc["descriptor"] = {
        "idx": {"/entitlement": {"displayName": ent.name}, "/account": {"displayName": person.user_name}}
    }
    doc["entitlement"] = {"_id": ent.native_id, "displayName": ent.name, "__NAME__": f"cn={ent.name}"}
    doc["glossary"] = {"idx": {"/entitlement": {"requestable": True, "isPrivileged": ent.privileged}}}
    return doc


def account_grant(grant: Grant, person: Person, directory: Directory, now: float) -> dict[str, Any]:
    app = directory.apps[grant.target]
    doc = _common(grant, person, "accountGrant", now)
    account_id = directory.account_id(person.id, app)
    doc["keys"] = {"type": "accountGrant", "userId": person.id, "applicationId": app.id, "accountId": account_id}
    doc["account"] = _account_attributes(directory, person, app)
    doc["application"] = _application(app)
    doc["descriptor"] = {"idx": {"/account": {"displayName": person.user_name}}}
    doc["glossary"] = {"idx": {"/application": {"requestable": True}}}
    return doc


def role_grant(grant: Grant, person: Person, directory: Directory, now: float) -> dict[str, Any]:
    role = directory.roles[grant.target]
    doc = _common(grant, person, "roleMembership", now)
    doc["keys"] = {"type": "roleMembership", "roleId": role.id, "userId": person.id}
    doc["role"] = {"id": role.id, "name": role.name, "description": role.description}
    doc["relationship"] = {"id": grant.relationship_id, "conditional": grant.conditional}
    doc["glossary"] = {"idx": {"/role": {"requestable": not grant.conditional, "isPrivileged": role.privileged}}}
    return doc


def _account_attributes(directory: Directory, person: Person, app: App) -> dict[str, Any]:
    name = directory.account_names.get((person.id, app.id), person.user_name)
    native = directory.account_id(person.id, app).rsplit("/", 1)[1]
    return {"__NAME__": name, "__UID__": native, "_id": native, "email": person.mail, "active": "true"}


def account_doc(directory: Directory, person: Person, app: App) -> dict[str, Any]:
    """An account as `POST /iga/governance/account?_action=search` lists it (seed 001 l.7470)."""
    account_id = directory.account_id(person.id, app)
    return {
        "id": account_id,
        "keys": {"type": "accountGrant", "userId": person.id, "applicationId": app.id, "accountId": account_id},
        "account": _account_attributes(directory, person, app),
        "user": user_summary(person),
        "application": _application(app),
    }


def _item(req: GovRequest, directory: Directory) -> dict[str, Any]:
    """What the request document says about its item: the application, entitlement or role."""
    if req.type == "roleRemove":
        role = directory.roles.get(req.item_id)
        return {"role": {"id": req.item_id, "name": role.name if role else None}}
    if req.type == "applicationRemove":
        app = directory.apps.get(req.item_id)
        return {"application": _application(app)} if app else {"application": {"id": req.item_id}}
    ent = directory.entitlements.get(req.item_id)
    if ent is None:
        return {"assignment": {"id": req.item_id}}
    return {
        "application": _application(ent.app),
        "entitlement": {"_id": ent.native_id, "displayName": ent.name},
        "assignment": {"id": ent.assignment_id, "name": ent.name},
        "descriptor": {"idx": {"/entitlement": {"displayName": ent.name}}},
    }


def request_doc(req: GovRequest, directory: Directory, now: float) -> dict[str, Any]:
    """`GET /iga/governance/requests/{id}` (contract §6; seed 001 l.4328)."""
    person = directory.people.get(req.user_id)
    decision = req.decision(now)
    doc: dict[str, Any] = {
        "id": req.id,
        "requestType": req.type,
        "requester": dict(REQUESTER),
        "user": user_summary(person) if person else {"id": req.user_id},
        "request": {"common": dict(req.common)},
        **_item(req, directory),
        "workflow": {"id": REMOVE_TYPES[req.type][2], "type": "bpmn", "instanceId": str(req.instance)},
        "decision": {
            "type": "request",
            "status": decision.status,
            "decision": decision.decision,
            "outcome": decision.outcome,
            "startDate": iso(req.created),
            "completionDate": iso(decision.completed_at) if decision.completed_at is not None else None,
            "deadline": None,
            "comments": [
                {"user": {"id": who}, "comment": text, "action": "comment", "timeStamp": iso(at)}
                for at, who, text in decision.comments
            ],
            "actors": {"active": [] if decision.terminal or decision.decision else [{"id": "owner"}], "inactive": []},
            "phases": [],
        },
        "metadata": {"createdDate": iso(req.created), "modifiedDate": iso(max(req.modified, req.created))},
    }
    if decision.failure:
        doc["decision"]["failure"] = True
    return doc
