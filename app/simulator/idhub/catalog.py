"""The demo people as IDHub holds them: catalog entities (roles, target systems, entitlements)
with Mongo ObjectIds, users, and what each user is provisioned with.

Demo kinds map onto IDHub's three requestable entities: a role is a Role, an entitlement an
Entitlement on its application's TargetSystem, and an access profile the account on its
application with no entitlement of its own (IDHub has no access profiles). Birthright access
comes, as in IDHub, from a role granted by rule (`All Employees`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from app.simulator.demo_users import DemoAccess, DemoPerson, demo_people

Kind = Literal["Role", "TargetSystem", "Entitlement"]
BIRTHRIGHT_ROLE = "All Employees"
BIRTHRIGHT_RULE = '{"$and":[{"status":"Active"},{"department":{"$nin":["CO"]}}]}'
NO_RULE = '{"$and":[]}'
#: Applications without a connector: a person fulfils their requests by hand.
DISCONNECTED = frozenset({"SAP ERP", "Jira"})
#: What a direct grant records; role grants record `Role` (both observed in the seed).
DIRECT = "Connected Reconciliation"
BY_ROLE = "Role"


def object_id(*parts: str) -> str:
    """A stable 24-hex ObjectId for a catalog entity or person (same input, same id)."""
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Entity:
    """A requestable catalog item."""

    id: str
    kind: Kind
    name: str
    risk: str = "low"
    app_id: str | None = None  # an entitlement's TargetSystem
    app_name: str | None = None
    rule: str | None = None  # roles
    grants: tuple[str, ...] = ()  # roles: the entitlement ids they bring
    integration: str = "Connected"  # target systems

    @property
    def workflow(self) -> str:
        if self.kind == "Role":
            return "Auto Role Approval"
        if self.kind == "TargetSystem":
            return "Manager Grant and Auto Revoke"
        return "Manager and BO Grant and Auto Revoke"

    @property
    def manual(self) -> bool:
        """Fulfilled by a person (Disconnected application)."""
        return self.integration == "Disconnected"


@dataclass
class Grant:
    """One provisioned thing a user holds: how (`mechanism`) and through which roles."""

    entity_id: str
    mechanism: str = DIRECT
    roles: tuple[str, ...] = ()
    since: float = 0.0


@dataclass
class Person:
    id: str
    login: str
    email: str
    employee_number: str
    display_name: str
    first_name: str
    last_name: str
    department: str
    attributes: dict[str, str] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    status: str = "Active"


class Catalog:
    """Every entity by id, built on demand from demo access."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}

    def app(self, name: str) -> Entity:
        entity = Entity(
            object_id("TargetSystem", name),
            "TargetSystem",
            name,
            risk="medium",
            integration="Disconnected" if name in DISCONNECTED else "Connected",
        )
        return self.entities.setdefault(entity.id, entity)

    def entitlement(self, access: DemoAccess) -> Entity:
        app = self.app(access.application)
        entity = Entity(
            object_id("Entitlement", access.application, access.name),
            "Entitlement",
            access.name,
            risk="high" if access.privileged else "low",
            app_id=app.id,
            app_name=app.name,
        )
        return self.entities.setdefault(entity.id, entity)

    def role(self, name: str, application: str | None, rule: str = NO_RULE) -> Entity:
        rid = object_id("Role", name)
        if rid not in self.entities:
            app = self.app(application) if application else None
            self.entities[rid] = Entity(
                rid, "Role", name, app_id=app.id if app else None, app_name=application, rule=rule
            )
        return self.entities[rid]

    def add_grants(self, role: Entity, entitlement_ids: tuple[str, ...]) -> None:
        known = self.entities[role.id]
        self.entities[role.id] = Entity(
            **{**known.__dict__, "grants": tuple(dict.fromkeys(known.grants + entitlement_ids))}
        )


def seed(now: float) -> tuple[Catalog, dict[str, Person]]:
    """The catalog and the demo people (by User `_id`)."""
    catalog = Catalog()
    people: dict[str, Person] = {}
    add_people(catalog, people, demo_people(), now)
    return catalog, people


def add_people(catalog: Catalog, people: dict[str, Person], demos: list[DemoPerson], now: float) -> None:
    """Seed people with their access; deleted people are gone from IDHub (lookups find nothing)."""
    for demo in demos:
        if demo.deleted:
            continue
        person = _person(demo)
        for access in demo.access:
            _grant(catalog, person, access, now)
        people[person.id] = person


def _person(demo: DemoPerson) -> Person:
    first, _, last = demo.display_name.partition(" ")
    return Person(
        id=object_id("User", demo.username),
        login=demo.username,
        email=demo.email,
        employee_number=demo.employee_id,
        display_name=demo.display_name,
        first_name=first,
        last_name=last or first,
        department=demo.attributes.get("department", "Ops"),
        attributes={k: v for k, v in demo.attributes.items() if k != "department"},
    )


def _grant(catalog: Catalog, person: Person, access: DemoAccess, now: float) -> None:
    if access.kind == "role":
        role = catalog.role(access.name, access.application)
        person.grants[role.id] = Grant(role.id, since=now)
    elif access.kind in ("access_profile", "application", "account"):
        app = catalog.app(access.application)
        person.grants[app.id] = Grant(app.id, since=now)
    elif access.granted_by == "direct":
        ent = catalog.entitlement(access)
        person.grants[ent.id] = Grant(ent.id, since=now)
    else:
        via = access.via or BIRTHRIGHT_ROLE
        rule = BIRTHRIGHT_RULE if access.granted_by == "birthright" else NO_RULE
        role = catalog.role(via, access.application if access.granted_by == "role" else None, rule)
        ent = catalog.entitlement(access)
        catalog.add_grants(role, (ent.id,))
        person.grants.setdefault(role.id, Grant(role.id, since=now))
        person.grants[ent.id] = Grant(ent.id, BY_ROLE, (role.name,), now)
