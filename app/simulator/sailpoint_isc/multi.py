"""Identities with several accounts on one source, or a role held more than once (contract §5,
§9.4): the ISC-only demo person that has both, the documents of `/accounts/{id}/entitlements`
and `role-assignments`, and which holding a revoke item takes away."""

from __future__ import annotations

from typing import Any

from app.simulator.demo_users import DemoAccess, DemoPerson
from app.simulator.sailpoint_isc.model import Holding, Identity, IscConfig, Item
from app.simulator.sailpoint_isc.wire import bad, hex_id, iso

AD = "Active Directory"
#: Two accounts on Active Directory (VPN Users on both, Finance RW on the second only) and the
#: role Sales Global assigned twice. Seeded here, not in the shared demo people.
MULTI = DemoPerson(
    username="mmulti",
    display_name="Maria Multi",
    email="mmulti@example.com",
    employee_id="E9401",
    dn="uid=mmulti,ou=people,dc=example,dc=com",
    access=(
        DemoAccess("entitlement", "VPN Users", AD),
        DemoAccess("role", "Sales Global", "Salesforce"),
        DemoAccess("access_profile", "Jira Developers", "Jira"),
    ),
)
SECOND_NATIVE = "CN=mmulti-admin,OU=Admins,DC=example,DC=com"


def add_second_accounts(ident: Identity, items: dict[str, Item]) -> None:
    """Give the multi person a second AD account and a second assignment of Sales Global."""
    first = next(a for a in ident.accounts if a["source"]["name"] == AD)
    second = {**first, "id": hex_id("account", ident.person.username, AD, "admin")}
    second.update(name=SECOND_NATIVE, accountId=SECOND_NATIVE, privileged=True)
    ident.accounts.append(second)
    extra = []
    for h in ident.holdings:
        if h.item.name == "VPN Users":
            extra.append(Holding(h.item, h.revocable, h.standalone, account=second["id"]))
        if h.item.type == "ROLE":
            extra.append(Holding(h.item, h.revocable, h.standalone, assignment_id=hex_id("assignment", "2", h.item.id)))
    finance = items[hex_id("ENTITLEMENT", AD, "Finance RW")]
    extra.append(Holding(finance, True, True, account=second["id"]))
    ident.holdings.extend(extra)


def native_of(ident: Identity, account_id: str | None) -> str | None:
    return next((a["accountId"] for a in ident.accounts if a["id"] == account_id), None)


def target_holding(ident: Identity, item: Item, req: dict[str, Any], cfg: IscConfig) -> Holding | None:
    """The holding a revoke item removes. With several accounts on the item's source (or the role
    held more than once) the item must name one; without it `ambiguous_revoke` decides [A]."""
    held = [h for h in ident.holdings if h.item.id == item.id and h.held()]
    if item.type == "ENTITLEMENT":
        on_source = [a for a in ident.accounts if item.source and a["source"]["id"] == item.source["id"]]
        several, field = len(on_source) > 1, "nativeIdentity"
        chosen = [h for h in held if native_of(ident, h.account) == req.get(field)]
    elif item.type == "ROLE":
        several, field = len(held) > 1, "assignmentId"
        chosen = [h for h in held if h.assignment_id == req.get(field)]
    else:
        several, field, chosen = False, "", []
    if req.get(field):
        return chosen[0] if chosen else None
    if several and cfg.ambiguous_revoke == "reject":
        raise bad(f"{item.name}: the identity has several assignments of it; {field} is required")
    return held[0] if held else None


def account_entitlements(ident: Identity, account_id: str, now: float) -> list[dict[str, Any]]:
    """`GET /accounts/{id}/entitlements`: the entitlements this account holds."""
    out = []
    for h in ident.holdings:
        if h.account == account_id and h.indexed(now) and h.item.type == "ENTITLEMENT":
            it = h.item
            out.append(
                {
                    "id": it.id,
                    "name": it.name,
                    "attribute": it.attribute,
                    "value": it.value,
                    "sourceSchemaObjectType": "group",
                    "privileged": it.privileged,
                    "source": it.source,
                }
            )
    return out


def role_assignments(ident: Identity, role_id: str | None, now: float) -> list[dict[str, Any]]:
    """`GET /v2025/identities/{id}/role-assignments[?roleId=]`, one entry per assignment."""
    out = []
    for h in ident.holdings:
        if h.item.type != "ROLE" or not h.indexed(now) or (role_id and h.item.id != role_id):
            continue
        out.append(
            {
                "id": h.assignment_id,
                "role": {"type": "ROLE", "id": h.item.id, "name": h.item.name},
                "addedDate": iso(ident.created),
                "removeDate": None,
            }
        )
    return out
