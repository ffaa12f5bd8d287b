"""The demo people every simulator seeds, so one demo event works against any system.

Each simulator maps these neutral records onto its own wire format and ID scheme.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["role", "entitlement", "application", "access_profile", "account"]
Grant = Literal["direct", "role", "birthright"]


@dataclass(frozen=True)
class DemoAccess:
    kind: Kind
    name: str
    application: str
    privileged: bool = False
    granted_by: Grant = "direct"
    #: name of the role this item comes with, when granted_by == "role"
    via: str | None = None


@dataclass(frozen=True)
class DemoPerson:
    username: str
    display_name: str
    email: str
    employee_id: str
    dn: str
    access: tuple[DemoAccess, ...]
    attributes: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


JDOE_ACCESS = (
    DemoAccess("entitlement", "Finance RW", "Active Directory"),
    DemoAccess("entitlement", "VPN Users", "Active Directory"),
    DemoAccess("entitlement", "Domain Admins", "Active Directory", privileged=True),
    DemoAccess("entitlement", "Mailbox jdoe", "Exchange Online"),
    DemoAccess("entitlement", "Payroll Approver", "SAP ERP"),
    DemoAccess("role", "Sales Global", "Salesforce"),
    DemoAccess("entitlement", "Salesforce Sales User", "Salesforce", granted_by="role", via="Sales Global"),
    DemoAccess("access_profile", "Jira Developers", "Jira"),
    DemoAccess("entitlement", "All Staff", "Active Directory", granted_by="birthright"),
    DemoAccess("entitlement", "GitHub acme-org member", "GitHub"),
)

ASMITH_ACCESS = (
    DemoAccess("entitlement", "HR Readers", "Active Directory"),
    DemoAccess("entitlement", "Mailbox asmith", "Exchange Online"),
    DemoAccess("role", "Helpdesk Tier 1", "ServiceNow"),
    DemoAccess("entitlement", "ServiceNow ITIL", "ServiceNow", granted_by="role", via="Helpdesk Tier 1"),
)

_POOL = (
    DemoAccess("entitlement", "VPN Users", "Active Directory"),
    DemoAccess("entitlement", "Wiki Editors", "Confluence"),
    DemoAccess("entitlement", "Expense Submitter", "SAP ERP"),
    DemoAccess("access_profile", "Jira Users", "Jira"),
    DemoAccess("entitlement", "Slack Guests", "Slack"),
    DemoAccess("role", "Engineering", "GitHub"),
    DemoAccess("entitlement", "Prod DB Admin", "PostgreSQL", privileged=True),
)


def demo_people(generated: int = 40, seed: int = 1001) -> list[DemoPerson]:
    """jdoe, asmith, a few edge cases (ambiguous email, deleted user), and `generated` more."""
    people = [
        DemoPerson(
            "jdoe",
            "Jane Doe",
            "jdoe@example.com",
            "E1001",
            "cn=jdoe,ou=users,o=example",
            JDOE_ACCESS,
            {"department": "Finance", "legalHold": "false"},
        ),
        DemoPerson(
            "asmith",
            "Alex Smith",
            "asmith@example.com",
            "E1002",
            "cn=asmith,ou=users,o=example",
            ASMITH_ACCESS,
            {"department": "HR", "legalHold": "false"},
        ),
        DemoPerson(
            "lhold",
            "Lee Hold",
            "lhold@example.com",
            "E1003",
            "cn=lhold,ou=users,o=example",
            JDOE_ACCESS[:3],
            {"department": "Legal", "legalHold": "true"},
        ),
        # Two people share one address: looking up by that email must be "ambiguous", never a guess.
        DemoPerson(
            "twin1",
            "Twin One",
            "twins@example.com",
            "E1004",
            "cn=twin1,ou=users,o=example",
            ASMITH_ACCESS[:1],
        ),
        DemoPerson(
            "twin2",
            "Twin Two",
            "twins@example.com",
            "E1005",
            "cn=twin2,ou=users,o=example",
            ASMITH_ACCESS[:1],
        ),
        DemoPerson(
            "gone",
            "Gone Away",
            "gone@example.com",
            "E1006",
            "cn=gone,ou=users,o=example",
            ASMITH_ACCESS[:2],
            deleted=True,
        ),
    ]
    rng = random.Random(seed)
    for n in range(generated):
        username = f"user{n:03d}"
        access = tuple(rng.sample(_POOL, k=rng.randint(2, len(_POOL))))
        people.append(
            DemoPerson(
                username,
                f"User {n:03d}",
                f"{username}@example.com",
                f"E{2000 + n}",
                f"cn={username},ou=users,o=example",
                access,
                {"department": "Ops", "legalHold": "false"},
            )
        )
    return people
