"""The identities, accounts, entitlements and roles of the simulated IdentityIQ, seeded from the
shared demo people, and their SCIM renderings.

Mapping of the demo people: a demo role is a business role assigned to the person; the entitlements
granted with it form the profile of an IT role (`<role> - IT`) the business role requires, which
IIQ then *detects* on the person. Entitlements and access profiles are entitlements (group
memberships) on the person's account in that application; privileged ones carry the
`Privileged` classification. Every person also has an account in `Corporate Directory` whose
nativeIdentity is their directory DN (the IDM's account).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.simulator.demo_users import DemoAccess, DemoPerson
from app.simulator.sailpoint_iiq.scim import CORE_USER, SAILPOINT_USER, hex_id, iso, meta

DIRECTORY_APP = "Corporate Directory"
AD = "Active Directory"


@dataclass
class Entitlement:
    id: str
    application: str
    attribute: str
    value: str
    display: str
    privileged: bool = False
    type: str = "Entitlement"


@dataclass
class Role:
    id: str
    name: str
    type: str  # business | it
    application: str | None = None
    requirements: list[str] = field(default_factory=list)  # role ids
    profile: list[str] = field(default_factory=list)  # entitlement ids (IT roles)


@dataclass
class Holding:
    """An entitlement on an account; still listed `verify_delay` after its removal."""

    entitlement: Entitlement
    removed_at: float | None = None

    def listed(self, now: float, lag: float) -> bool:
        return self.removed_at is None or now < self.removed_at + lag


@dataclass
class Account:
    id: str
    application: str
    native: str
    display: str
    created: float
    holdings: list[Holding] = field(default_factory=list)
    disabled_at: float | None = None
    deleted_at: float | None = None

    def listed(self, now: float, lag: float) -> bool:
        return self.deleted_at is None or now < self.deleted_at + lag

    def active(self, now: float, lag: float) -> bool:
        return self.disabled_at is None or now < self.disabled_at + lag

    def held(self, entitlement_id: str) -> Holding | None:
        return next((h for h in self.holdings if h.removed_at is None and h.entitlement.id == entitlement_id), None)


@dataclass
class Assignment:
    role: Role
    assignment_id: str


@dataclass
class Identity:
    id: str
    person: DemoPerson
    created: float
    modified: float
    assignments: list[Assignment] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.person.username

    def account(self, application: str, native: str) -> Account | None:
        return next(
            (
                a
                for a in self.accounts
                if a.deleted_at is None and a.application == application and a.native.casefold() == native.casefold()
            ),
            None,
        )


class Directory:
    """The catalog (applications' entitlements, roles) and the identities."""

    def __init__(self) -> None:
        self.entitlements: dict[str, Entitlement] = {}
        self.roles: dict[str, Role] = {}
        self.identities: dict[str, Identity] = {}

    # ---- lookups

    def role_named(self, name: str) -> Role | None:
        return next((r for r in self.roles.values() if r.name.casefold() == name.casefold()), None)

    def entitlement_of(self, application: str, attribute: str, value: str) -> Entitlement | None:
        return next(
            (
                e
                for e in self.entitlements.values()
                if e.application == application
                and e.attribute.casefold() == attribute.casefold()
                and e.value.casefold() == value.casefold()
            ),
            None,
        )

    def identity_named(self, name: str) -> Identity | None:
        return next((i for i in self.identities.values() if i.name.casefold() == name.casefold()), None)

    def detected(self, identity: Identity, now: float, lag: float) -> list[Role]:
        """IT roles whose whole profile the identity holds (IIQ's role detection)."""
        listed = {
            h.entitlement.id for a in identity.accounts if a.listed(now, lag) for h in a.holdings if h.listed(now, lag)
        }
        return [r for r in self.roles.values() if r.type == "it" and r.profile and set(r.profile) <= listed]

    # ---- seeding

    def _entitlement(self, access: DemoAccess) -> Entitlement:
        ad = access.application == AD
        value = f"CN={access.name},OU=Groups,DC=example,DC=com" if ad else access.name
        ent_id = hex_id("entitlement", access.application, value)
        if ent_id not in self.entitlements:
            attribute = "memberOf" if ad else "groups"
            self.entitlements[ent_id] = Entitlement(
                ent_id, access.application, attribute, value, access.name, access.privileged
            )
        return self.entitlements[ent_id]

    def _role(self, name: str, kind: str, application: str | None = None) -> Role:
        role = self.role_named(name)
        if role is None:
            role = Role(hex_id("role", name), name, kind, application)
            self.roles[role.id] = role
        return role

    def add_person(self, person: DemoPerson, created: float) -> Identity | None:
        if person.deleted:
            return None  # a deleted identity is gone from IIQ: lookups find nothing
        ident = Identity(hex_id("identity", person.username), person, created, created)
        accounts: dict[str, Account] = {}

        def account(application: str) -> Account:
            if application not in accounts:
                native = {
                    DIRECTORY_APP: person.dn,
                    AD: f"CN={person.display_name},OU=Users,DC=example,DC=com",
                    "Exchange Online": person.email,
                }.get(application, person.username)
                accounts[application] = Account(
                    hex_id("account", person.username, application), application, native, person.display_name, created
                )
            return accounts[application]

        account(DIRECTORY_APP)
        for access in person.access:
            if access.kind == "role":
                business = self._role(access.name, "business")
                granted = [a for a in person.access if a.via == access.name]
                if granted:
                    it = self._role(f"{access.name} - IT", "it", granted[0].application)
                    it.profile = sorted({*it.profile, *(self._entitlement(a).id for a in granted)})
                    business.requirements = sorted({*business.requirements, it.id})
                index = sum(1 for a in ident.assignments if a.role.id == business.id)
                ident.assignments.append(
                    Assignment(business, hex_id("assignment", person.username, business.id, str(index)))
                )
            elif access.kind in ("entitlement", "access_profile"):
                target = account(access.application)
                ent = self._entitlement(access)
                if target.held(ent.id) is None:
                    target.holdings.append(Holding(ent))
            else:
                account(access.application)
        ident.accounts = list(accounts.values())
        self.identities[ident.id] = ident
        return ident

    # ---- SCIM renderings

    def user(self, ident: Identity, base: str, now: float, lag: float, assignment_ids: bool) -> dict[str, Any]:
        """The whole User; `roles`, `entitlements` and `accounts` are cut unless requested."""
        person = ident.person
        roles: list[dict[str, Any]] = []
        for assignment in ident.assignments:
            role = assignment.role
            entry = {"value": role.id, "display": role.name, "type": role.type, "acquired": "Assigned"}
            if assignment_ids:
                entry["assignmentId"] = assignment.assignment_id
            roles.append({**entry, "$ref": f"{base}/Roles/{role.id}"})
        for role in self.detected(ident, now, lag):
            native = next((a.native for a in ident.accounts if a.application == role.application), None)
            entry = {"value": role.id, "display": role.name, "type": role.type, "acquired": "Detected"}
            if role.application:
                entry.update(application=role.application, accountName=native or "")
            roles.append({**entry, "$ref": f"{base}/Roles/{role.id}"})
        ents = [
            {
                "value": h.entitlement.id,
                "display": h.entitlement.display,
                "type": h.entitlement.type,
                "application": a.application,
                "accountName": a.native,
                "$ref": f"{base}/Entitlements/{h.entitlement.id}",
            }
            for a in ident.accounts
            if a.listed(now, lag)
            for h in a.holdings
            if h.listed(now, lag)
        ]
        links = [
            {"displayName": a.native, "value": a.id, "$ref": f"{base}/Accounts/{a.id}"}
            for a in ident.accounts
            if a.listed(now, lag)
        ]
        given, _, family = person.display_name.partition(" ")
        return {
            "id": ident.id,
            "userName": person.username,
            "name": {"formatted": person.display_name, "givenName": given, "familyName": family},
            "displayName": person.display_name,
            "active": True,
            "emails": [{"type": "work", "value": person.email, "primary": True}],
            SAILPOINT_USER: {
                "empId": person.employee_id,
                **person.attributes,
                "accounts": links,
                "entitlements": ents,
                "roles": roles,
            },
            "schemas": [SAILPOINT_USER, CORE_USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "meta": meta("User", f"{base}/Users/{ident.id}", ident.created, ident.modified),
        }

    def account_doc(self, account: Account, ident: Identity, base: str, now: float, lag: float) -> dict[str, Any]:
        app_id = hex_id("application", account.application)
        return {
            "id": account.id,
            "nativeIdentity": account.native,
            "displayName": account.display,
            "active": account.active(now, lag),
            "locked": False,
            "manuallyCorrelated": False,
            "hasEntitlements": any(h.listed(now, lag) for h in account.holdings),
            "identity": {
                "value": ident.id,
                "displayName": ident.person.display_name,
                "$ref": f"{base}/Users/{ident.id}",
            },
            "application": {
                "value": app_id,
                "displayName": account.application,
                "$ref": f"{base}/Applications/{app_id}",
            },
            "lastRefresh": iso(account.created),
            "schemas": ["urn:ietf:params:scim:schemas:sailpoint:1.0:Account"],
            "meta": meta("Account", f"{base}/Accounts/{account.id}", account.created, account.created),
        }

    def entitlement_doc(self, ent: Entitlement, base: str, created: float) -> dict[str, Any]:
        app_id = hex_id("application", ent.application)
        doc: dict[str, Any] = {
            "id": ent.id,
            "displayableName": ent.display,
            "type": "group",
            "application": [{"value": app_id, "displayName": ent.application, "$ref": f"{base}/Applications/{app_id}"}],
            "requestable": True,
            "aggregated": True,
            "attribute": ent.attribute,
            "value": ent.value,
            "schemas": ["urn:ietf:params:scim:schemas:sailpoint:1.0:Entitlement"],
            "meta": meta("Entitlement", f"{base}/Entitlements/{ent.id}", created, created),
        }
        if ent.privileged:
            doc["classifications"] = [_privileged()]
        return doc

    def role_doc(self, role: Role, base: str, created: float) -> dict[str, Any]:
        business = role.type == "business"
        doc: dict[str, Any] = {
            "id": role.id,
            "name": role.name,
            "displayableName": role.name,
            "type": {
                "name": role.type,
                "displayName": "Business" if business else "IT",
                "manualAssignment": business,
                "autoAssignment": business,
                "requirements": business,
                "permits": business,
                "assignmentSelector": business,
                "iiq": False,
            },
            "active": True,
            "requirements": [
                {"value": r, "displayName": self.roles[r].name, "$ref": f"{base}/Roles/{r}"} for r in role.requirements
            ],
            "permits": [],
            "schemas": ["urn:ietf:params:scim:schemas:sailpoint:1.0:Role"],
            "meta": meta("Role", f"{base}/Roles/{role.id}", created, created),
        }
        return doc


def _privileged() -> dict[str, Any]:
    return {
        "source": "UI",
        "effective": False,
        "classification": {"name": "Privileged", "displayName": "Privileged", "origin": "Demo", "type": "Manual"},
    }
