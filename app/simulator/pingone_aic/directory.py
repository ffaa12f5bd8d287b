"""Who and what the simulated tenant holds: managed users (IDM), applications with their accounts
and entitlements, roles, and each user's grants, seeded from the shared demo people.

IDs follow the tenant's schemes (contract §4, §9.3): UUIDs for users, applications, roles and
native objects; `system_<App>_<Obj>_<id>` assignment ids and `system/<App>/<Obj>/<id>` entitlement
and account ids; 128-hex catalog ids. Seeded IDs are derived from names, so they are the same in
every process that seeds the same people.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from app.simulator.demo_users import DemoAccess, DemoPerson

GrantKind = Literal["entitlement", "account", "role"]
_NAMESPACE = uuid.UUID("6f1c0a52-9d7e-4b3a-8c21-5e4f7a9b0d36")
#: The rule-based role every demo person with birthright access holds (a conditional membership).
BIRTHRIGHT_ROLE = "All Employees"
#: Connector template per demo application (the `templateName` the grant documents carry).
TEMPLATES = {"Active Directory": "active.directory", "Exchange Online": "azure.ad", "Salesforce": "salesforce"}
#: Accounts of these applications are found by reconciliation, not requested.
RECON_APPS = frozenset({"Active Directory"})


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def hex128(*parts: str) -> str:
    return hashlib.sha512("/".join(parts).encode()).hexdigest()


@dataclass
class App:
    id: str
    name: str
    #: The connector's name in system object ids (`system/<system>/...`).
    system: str
    template: str


@dataclass
class Entitlement:
    native_id: str
    app: App
    name: str
    object_type: str = "Group"
    privileged: bool = False

    @property
    def assignment_id(self) -> str:
        """The id a removal names (`common.entitlementId`)."""
        return f"system_{self.app.system}_{self.object_type}_{self.native_id}"

    @property
    def entitlement_id(self) -> str:
        """The slash form the grant's `keys` carry."""
        return f"system/{self.app.system}/{self.object_type}/{self.native_id}"


@dataclass
class Role:
    id: str
    name: str
    description: str
    privileged: bool = False


@dataclass
class Person:
    id: str
    user_name: str
    mail: str
    given_name: str
    sn: str
    account_status: str
    #: Other managed-user properties (`frIndexedString1`, `custom_*`).
    properties: dict[str, Any] = field(default_factory=dict)
    rev: int = 1


@dataclass
class Grant:
    """One grant of a user: an entitlement (by assignment id), an account (by application id) or
    a role membership (by role id), with how it was granted."""

    kind: GrantKind
    user_id: str
    target: str
    relationship_id: str
    #: `[{"id", "grantType": request|recon|role, "roleId"?}]`; role memberships have none.
    grant_types: list[dict[str, str]] = field(default_factory=list)
    conditional: bool = False
    created: float = 0.0

    def via_roles(self) -> set[str]:
        return {g.get("roleId", "") for g in self.grant_types if g.get("grantType") == "role"}


class Directory:
    """The tenant's identities, catalog and grants. Not thread-safe: callers hold the sim lock."""

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}
        self.apps: dict[str, App] = {}
        self.entitlements: dict[str, Entitlement] = {}
        self.roles: dict[str, Role] = {}
        self.grants: dict[tuple[str, GrantKind, str], Grant] = {}
        #: `account.__NAME__` per (user id, application id).
        self.account_names: dict[tuple[str, str], str] = {}

    # ---- the catalog

    def app(self, name: str) -> App:
        system = re.sub(r"[^A-Za-z0-9]", "", name) or "App"
        app_id = stable_uuid("app", name)
        return self.apps.setdefault(app_id, App(app_id, name, system, TEMPLATES.get(name, "scim")))

    def entitlement(self, name: str, app_name: str, privileged: bool = False) -> Entitlement:
        ent = Entitlement(stable_uuid("entitlement", app_name, name), self.app(app_name), name, privileged=privileged)
        return self.entitlements.setdefault(ent.assignment_id, ent)

    def role(self, name: str, privileged: bool = False) -> Role:
        role_id = stable_uuid("role", name)
        return self.roles.setdefault(role_id, Role(role_id, name, f"{name} (demo role)", privileged))

    def account_id(self, user_id: str, app: App) -> str:
        return f"system/{app.system}/User/{stable_uuid('account', user_id, app.id)}"

    # ---- grants

    def held(self, user_id: str, kind: GrantKind | None = None) -> list[Grant]:
        return [g for g in self.grants.values() if g.user_id == user_id and kind in (None, g.kind)]

    def give(
        self,
        user_id: str,
        kind: GrantKind,
        target: str,
        grant_type: str | None,
        now: float,
        *,
        role_id: str | None = None,
        conditional: bool = False,
    ) -> Grant:
        """Add a grant, or one more way of holding it (`grant_type` None: a role membership)."""
        key = (user_id, kind, target)
        grant = self.grants.get(key)
        if grant is None:
            rel = f"{stable_uuid('relationship', user_id, kind, target)}-{len(self.grants) + 1000}"
            grant = self.grants[key] = Grant(kind, user_id, target, rel, conditional=conditional, created=now)
        if grant_type is not None:
            entry = {"id": grant.relationship_id, "grantType": grant_type} | ({"roleId": role_id} if role_id else {})
            if entry not in grant.grant_types:
                grant.grant_types.append(entry)
        return grant

    def revoke(self, user_id: str, kind: GrantKind, target: str) -> None:
        """What a completed remove request does (the OOTB workflows remove the `request` grant):
        a role membership ends, taking the access it granted; an account ends with everything on
        its application; an entitlement loses its requested and reconciled grants. Access also
        held through a role stays, and a rule-based membership cannot be ended by request."""
        grant = self.grants.get((user_id, kind, target))
        if grant is None:
            return
        if kind == "role":
            if grant.conditional:
                return
            del self.grants[(user_id, kind, target)]
            for other in self.held(user_id):
                if target in other.via_roles():
                    other.grant_types = [g for g in other.grant_types if g.get("roleId") != target]
                    if not other.grant_types:
                        del self.grants[(user_id, other.kind, other.target)]
            return
        keep = [g for g in grant.grant_types if g.get("grantType") == "role"]
        if keep:
            grant.grant_types = keep
            return
        del self.grants[(user_id, kind, target)]
        if kind == "account":
            for other in self.held(user_id, "entitlement"):
                if self.entitlements[other.target].app.id == target:
                    del self.grants[(user_id, "entitlement", other.target)]

    # ---- seeding

    def seed(self, people: list[DemoPerson], now: float) -> None:
        """Map the neutral demo people onto the tenant; deleted people are gone from IDM."""
        for demo in people:
            if demo.deleted:
                continue
            person = _person(demo)
            self.people[person.id] = person
            for access in demo.access:
                self._grant(person, demo, access, now)

    def _grant(self, person: Person, demo: DemoPerson, access: DemoAccess, now: float) -> None:
        uid = person.id
        if access.kind == "role":
            role = self.role(access.name, access.privileged)
            self.give(uid, "role", role.id, None, now)
            return
        app = self.app(access.application)
        self.account_names.setdefault((uid, app.id), demo.dn if app.name == "Active Directory" else demo.username)
        how = "recon" if app.name in RECON_APPS else "request"
        if access.kind in ("access_profile", "application", "account"):
            self.give(uid, "account", app.id, how, now)
            return
        ent = self.entitlement(access.name, access.application, access.privileged)
        if access.granted_by == "direct":
            self.give(uid, "account", app.id, how, now)
            self.give(uid, "entitlement", ent.assignment_id, how, now)
            return
        if access.granted_by == "birthright":
            role = self.role(BIRTHRIGHT_ROLE)
            self.give(uid, "role", role.id, None, now, conditional=True)
        else:
            role = self.role(access.via or f"{access.application} users")
            self.give(uid, "role", role.id, None, now)
        self.give(uid, "account", app.id, "role", now, role_id=role.id)
        self.give(uid, "entitlement", ent.assignment_id, "role", now, role_id=role.id)


def _person(demo: DemoPerson) -> Person:
    given, _, sn = demo.display_name.partition(" ")
    properties: dict[str, Any] = {"frIndexedString1": demo.employee_id, "frIndexedString2": demo.dn}
    properties.update({f"custom_{k}": v for k, v in demo.attributes.items()})
    return Person(
        id=stable_uuid("user", demo.username),
        user_name=demo.username,
        mail=demo.email,
        given_name=given,
        sn=sn or given,
        account_status="active",
        properties=properties,
    )
