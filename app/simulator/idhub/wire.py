"""IDHub's documents as the simulator answers them (Mongo extended JSON, RESTHeart errors).

Shapes follow the seed's samples: catalog users and roles with a plain `_id` and `id.$oid`,
UserAccounts and UserRequests with `_id.$oid` and `_etag.$oid`, `IDM: "IDE"`, `collection`,
dates as `…Z` with milliseconds (`…+0000` in histories and tasks). Lists are real arrays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from app.simulator.base import SimError
from app.simulator.idhub.catalog import Catalog, Entity, Grant, Person, object_id

if TYPE_CHECKING:
    from app.simulator.idhub.state import Request, Task


class IdHubError(SimError):
    """An answer in RESTHeart's error format."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.message: str = message

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message)


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"http status code": status, "http status description": phrase, "message": message or phrase}


def iso_z(at: float) -> str:
    when = datetime.fromtimestamp(at, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def iso_offset(at: float) -> str:
    when = datetime.fromtimestamp(at, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def mongo(oid: str) -> dict[str, str]:
    return {"$oid": oid}


def _catalog_fields(entity: Entity) -> dict[str, Any]:
    return {
        "_id": entity.id,
        "id": mongo(entity.id),
        "IDM": "IDE",
        "name": entity.name,
        "displayName": entity.name,
        "riskLevel": entity.risk,
        "isRequestable": True,
        "disabled": False,
        "approvalWorkflow": entity.workflow,
        "approvalWorkflowDisplayName": entity.workflow,
        "createdOn": "2022-12-30T12:06:15.174Z",
        "searchTags": entity.app_name or entity.name,
    }


def role_doc(entity: Entity, catalog: Catalog) -> dict[str, Any]:
    doc = {**_catalog_fields(entity), "collection": "Role", "rule": entity.rule, "roleOwnerLogin": "samantha"}
    granted = [catalog.entities[e] for e in entity.grants if e in catalog.entities]
    if entity.app_id:
        ents = [{"id": mongo(e.id), "name": e.name} for e in granted]
        doc["applications"] = [{"id": mongo(entity.app_id), "name": entity.app_name, "entitlements": ents}]
    return doc


def app_doc(entity: Entity) -> dict[str, Any]:
    performer = "Manual Fulfiller" if entity.manual else "Connector"
    return {
        **_catalog_fields(entity),
        "collection": "TargetSystem",
        "integrationLevel": entity.integration,
        "performer": performer,
        "businessOwner": "liz",
        "ITOwner": "michael",
    }


def entitlement_doc(entity: Entity) -> dict[str, Any]:
    return {
        **_catalog_fields(entity),
        "collection": "Entitlement",
        "targetSystemName": entity.app_name,
        "targetSystemDisplayName": entity.app_name,
        "businessOwner": "liz",
        "ITOwner": "michael",
    }


def user_doc(person: Person, catalog: Catalog) -> dict[str, Any]:
    """A catalog User with its live `accessList` (roles, applications with their entitlements)."""
    held = [catalog.entities[g.entity_id] for g in person.grants.values() if g.entity_id in catalog.entities]
    roles = [role_doc(e, catalog) for e in held if e.kind == "Role"]
    apps: dict[str, dict[str, Any]] = {}
    for entity in held:
        app_id = entity.id if entity.kind == "TargetSystem" else entity.app_id if entity.kind == "Entitlement" else None
        if app_id is None:
            continue
        app = apps.setdefault(app_id, {**app_doc(catalog.entities[app_id]), "entitlements": []})
        if entity.kind == "Entitlement":
            app["entitlements"].append(entitlement_doc(entity))
    return {
        "_id": person.id,
        "id": mongo(person.id),
        "IDM": "IDE",
        "collection": "User",
        "login": person.login,
        "email": person.email,
        "employeeNumber": person.employee_number,
        "displayName": person.display_name,
        "firstName": person.first_name,
        "lastName": person.last_name,
        "department": person.department,
        "status": person.status,
        "userType": "Employee",
        "managerLogin": "spencer",
        "createDate": "11-11-2022",
        "provisionedDate": "11-11-2022",
        **person.attributes,
        "accessList": {
            "applicationCount": len(apps),
            "entitlementCount": sum(len(a["entitlements"]) for a in apps.values()),
            "roles": roles,
            "applications": list(apps.values()),
        },
    }


def account_docs(person: Person, catalog: Catalog) -> list[dict[str, Any]]:
    """One UserAccount per TargetSystem the person holds anything on (contract §4b)."""
    by_app: dict[str, list[tuple[Entity, Grant]]] = {}
    for grant in person.grants.values():
        entity = catalog.entities.get(grant.entity_id)
        if entity is None or entity.kind == "Role":
            continue
        by_app.setdefault(entity.id if entity.kind == "TargetSystem" else entity.app_id or "", []).append(
            (entity, grant)
        )
    docs = []
    for app_id, held in by_app.items():
        app = catalog.entities[app_id]
        own = next((g for e, g in held if e.kind == "TargetSystem"), None)
        ents = [(e, g) for e, g in held if e.kind == "Entitlement"]
        first = own or ents[0][1]
        docs.append(
            {
                "_id": mongo(object_id("UserAccount", person.id, app_id)),
                "IDM": "IDE",
                "collection": "UserAccount",
                "login": person.login,
                "userId": person.id,
                "targetSystemId": app.id,
                "targetSystemName": app.name,
                "status": "Provisioned",
                "provisionMechanism": first.mechanism,
                "associatedRoles": list(first.roles),
                "provisionedDate": iso_offset(first.since),
                "form": {
                    "Email": person.email,
                    "First Name": person.first_name,
                    "Last Name": person.last_name,
                    "User Login": person.login,
                },
                "entitlements": [
                    {
                        "_id": mongo(e.id),
                        "entitlementId": e.id,
                        "entitlementName": e.name,
                        "provisionMechanism": g.mechanism,
                        "associatedRoles": list(g.roles),
                        "status": "Provisioned",
                        "provisionedDate": iso_offset(g.since),
                    }
                    for e, g in ents
                ],
            }
        )
    return docs


def request_doc(req: Request) -> dict[str, Any]:
    return {
        "_id": mongo(req.oid),
        "_etag": mongo(req.etag),
        "IDM": "IDE",
        "collection": "UserRequest",
        "createDate": iso_z(req.created),
        "requestId": req.request_id,
        "correlationId": req.correlation_id,
        "beneficiary": req.beneficiary,
        "requester": req.requester,
        "justification": req.justification,
        "payload": {"entityId": req.entity.id, "entityType": req.entity.kind, "type": req.type, "form": req.form},
        "requestType": "Access",
        "summary": f"{req.type.capitalize()} {req.entity.kind} - {req.entity.name}",
        "workflowName": req.entity.workflow,
        "status": req.status,
        "resolution": req.resolution,
        "history": list(req.history),
    }


def task_doc(task: Task) -> dict[str, Any]:
    req = task.request
    return {
        "_id": mongo(task.oid),
        "IDM": "IDE",
        "collection": "UserTask",
        "type": "ApprovalTask",
        "name": "Manager Approval Task",
        "title": req.entity.name,
        "state": "Assigned",
        "status": task.status,
        "outcome": task.outcome,
        "assignee": task.assignee,
        "assigneeType": "User",
        "createDate": iso_offset(task.created),
        "expiryDate": iso_offset(task.created + 15 * 86400),
        "requestId": req.request_id,
        "requestObjectId": req.oid,
        "requestJustification": req.justification,
        "workflowName": req.entity.workflow,
        "payload": {
            "beneficiary": req.beneficiary,
            "requester": req.requester,
            "entityId": req.entity.id,
            "entityType": req.entity.kind,
            "type": req.type,
        },
        "possibleActions": [
            {"action": a, "displayName": a} for a in ("Claim", "Approve", "Reject", "Escalate", "Re-Assign")
        ]
        if task.status == "Assigned"
        else None,
        "comments": list(task.comments),
    }
