"""The IG catalogue and who holds what: users, applications, accounts, permissions, technical and
business roles, with IG's ID formats (numeric IDs per kind, 32-hex unique IDs), seeded from the
demo people."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

from app.simulator.demo_users import DemoAccess, DemoPerson
from app.simulator.netiq_ig.model import Account, App, Holding, IgUser, Perm, Role
from app.simulator.netiq_ig.wire import BIRTHRIGHT_ROLE, IgFault


class Catalog:
    """Everything IG knows about people and access, and the ID generators that name it."""

    def __init__(self) -> None:
        self.users: dict[str, IgUser] = {}  # by uniqueUserId
        self.apps: dict[int, App] = {}
        self.accounts: dict[int, Account] = {}
        self.perms: dict[str, Perm] = {}  # by uniquePermId
        self.roles: dict[str, Role] = {}  # technical roles by uniquePolicyId
        self.broles: dict[str, Role] = {}  # business roles by uniquePolicyId
        self.holdings: dict[str, list[Holding]] = {}  # by uniqueUserId
        # Distinct seeds per ID kind, as in a real IG database.
        self._hex_rng = random.Random(20240917)
        self._hex_seen: set[str] = set()
        self._ids: dict[str, Iterator[int]] = {
            "user": itertools.count(10001),
            "app": itertools.count(41),
            "account": itertools.count(5501),
            "perm": itertools.count(88001),
            "role": itertools.count(601),
            "brole": itertools.count(801),
            "request": itertools.count(3301),
            "item": itertools.count(9901),
            "change": itertools.count(70001),
        }

    def hex(self) -> str:
        """A fresh 32-hex unique ID."""
        while True:
            value = f"{self._hex_rng.getrandbits(128):032x}"
            if value not in self._hex_seen:
                self._hex_seen.add(value)
                return value

    def next(self, kind: str) -> int:
        """The next numeric ID of a kind (user, app, ..., request, item, change)."""
        return next(self._ids[kind])

    # ---- lookups

    def user(self, unique_id: str) -> IgUser:
        user = self.users.get(unique_id)
        if user is None:
            raise IgFault(404, "NotFound", f"No user with unique ID {unique_id}")
        return user

    def user_by_id(self, user_id: int) -> IgUser:
        for user in self.users.values():
            if user.user_id == user_id:
                return user
        raise IgFault(404, "NotFound", f"No user with ID {user_id}")

    def user_named(self, username: str) -> IgUser | None:
        return next((u for u in self.users.values() if u.username == username), None)

    def account_id(self, unique_id: str | None) -> int | None:
        """The numeric ID of an account named by unique ID (-1: no such account; None: none named)."""
        if unique_id is None:
            return None
        return next((a.account_id for a in self.accounts.values() if a.unique_id == unique_id), -1)

    def role_of(self, h: Holding) -> Role:
        return (self.broles if h.kind == "brole" else self.roles)[h.item]

    # ---- seeding

    def _app(self, name: str) -> App:
        for app in self.apps.values():
            if app.name == name:
                return app
        app = App(self.next("app"), self.hex(), name)
        self.apps[app.app_id] = app
        return app

    def _perm(self, access: DemoAccess) -> Perm:
        app = self._app(access.application)
        for perm in self.perms.values():
            if perm.display_name == access.name and perm.app_id == app.app_id:
                return perm
        name = f"cn={access.name},ou=groups,o=example" if app.name == "Active Directory" else access.name
        perm = Perm(
            self.next("perm"),
            self.hex(),
            name,
            access.name,
            app.app_id,
            access.privileged,
            dynamic=access.name.startswith("Mailbox "),
        )
        self.perms[perm.unique_id] = perm
        return perm

    def _role(self, name: str, privileged: bool = False, business: bool = False) -> Role:
        store = self.broles if business else self.roles
        for role in store.values():
            if role.name == name:
                return role
        role = Role(self.next("brole" if business else "role"), self.hex(), name, privileged)
        store[role.unique_id] = role
        return role

    def _account(self, user: IgUser, app: App) -> Account:
        for acct in self.accounts.values():
            if acct.owner == user.unique_id and acct.app_id == app.app_id:
                return acct
        acct = Account(self.next("account"), self.hex(), app.app_id, user.unique_id, user.username)
        self.accounts[acct.account_id] = acct
        return acct

    def seed(self, person: DemoPerson, since_ms: int) -> None:
        """Add a person and what they hold (held since `since_ms`): a role as a technical role,
        an entitlement as a permission through an account, a role's entitlements associated by
        it, a birthright one auto-granted by a criteria-based business role."""
        first, _, last = person.display_name.partition(" ")
        attributes = {
            "displayName": person.display_name,
            "firstName": first,
            "lastName": last,
            "userDn": person.dn,
            "userId": person.username,
            "email": person.email,
            "workforceId": person.employee_id,
            **person.attributes,
        }
        user = IgUser(self.next("user"), self.hex(), person.username, person.display_name, attributes, person.deleted)
        self.users[user.unique_id] = user
        held: list[Holding] = []
        for access in person.access:
            if access.kind == "role":
                role = self._role(access.name, access.privileged)
                held.append(Holding("role", role.unique_id, since_ms))
                continue
            if access.kind in ("application", "account"):
                self._account(user, self._app(access.application))
                continue
            perm = self._perm(access)
            acct = self._account(user, self._app(access.application))
            holding = Holding(
                "perm",
                perm.unique_id,
                since_ms,
                account_id=acct.account_id,
                instance_guid=self.hex() if perm.dynamic else None,
            )
            if access.granted_by == "role":
                holding.via_role = self._role(access.via or "Unnamed role").unique_id
                holding.revocable = False
            elif access.granted_by == "birthright":
                br = self._role(BIRTHRIGHT_ROLE, business=True)
                holding.via_br = br.unique_id
                holding.revocable = False
                if not any(h.kind == "brole" and h.item == br.unique_id for h in held):
                    held.append(Holding("brole", br.unique_id, since_ms, requested=False))
            held.append(holding)
        self.holdings[user.unique_id] = held
