"""The read side of IdentityIQ's SCIM API: finding an identity (§3) and listing its access (§4),
with SCIM paging. Entitlement and Role resources change rarely and are cached per process."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any

from app.domain import AccessItem, IgaUser, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaPermanentError, UserNotFound
from app.iga.http import IgaHttp
from app.iga.lookup import first_single
from app.iga.sailpoint_iiq.options import SailPointIiqOptions
from app.iga.sailpoint_iiq.wire import (
    CORE_USER,
    SAILPOINT_USER,
    account_item,
    classified,
    entitlement_item,
    norm_dn,
    quote,
    ref_id,
    resources,
    role_item,
    to_user,
    user_values,
)

SCIM_JSON = "application/scim+json"
ACCEPT = {"Accept": SCIM_JSON}
#: Roles and entitlements come back only when asked for (§4).
ACCESS_ATTRIBUTES = ",".join(["userName", f"{SAILPOINT_USER}:roles", f"{SAILPOINT_USER}:entitlements"])
#: Cached Entitlement and Role resources at most; the cache starts over beyond it.
CACHE_MAX = 20_000


class IiqReader:
    """Users and their access, read through the shared HTTP layer."""

    def __init__(self, http: IgaHttp, options: SailPointIiqOptions) -> None:
        self.http = http
        self.options = options
        self._resources: dict[str, dict[str, Any] | None] = {}

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        resp = await self.http.request("GET", path, params=params, headers=ACCEPT)
        try:
            return resp.json()
        except ValueError:
            raise IgaPermanentError(f"GET {path}: the answer is not JSON", status_code=resp.status_code) from None

    async def pages(self, path: str, params: Mapping[str, str], *, limit: int | None = None) -> list[dict[str, Any]]:
        """Every resource of a SCIM list (no `itemsPerPage`: `totalResults` decides, §8)."""
        out: list[dict[str, Any]] = []
        start = 1
        while True:
            page = await self.get_json(path, {**params, "startIndex": str(start), "count": str(self.options.page_size)})
            found = resources(page)
            out.extend(found)
            start += len(found)
            total = page.get("totalResults") if isinstance(page, dict) else None
            if not found or (isinstance(total, int) and start - 1 >= total):
                return out
            if not isinstance(total, int) and len(found) < self.options.page_size:
                return out
            if limit is not None and len(out) >= limit:
                return out

    # ---- users

    async def user(self, identity_id: str, attributes: str | None = None) -> dict[str, Any]:
        try:
            doc = await self.get_json(f"/Users/{identity_id}", {"attributes": attributes} if attributes else None)
        except IgaPermanentError as exc:
            if exc.status_code == 404:
                raise UserNotFound(f"no IIQ identity {identity_id}", status_code=404) from None
            raise
        if not isinstance(doc, dict) or "id" not in doc:
            raise IgaPermanentError(f"identity {identity_id}: unexpected SCIM answer")
        return doc

    async def find_user(self, ids: UserIdentifiers) -> IgaUser:
        if ids.iga_id:
            try:
                return to_user(await self.user(ids.iga_id))
            except UserNotFound:
                pass  # a stale direct ID: the other identifiers may still name the user
        found, several = await first_single(self.options.lookup_order, lambda k: getattr(ids, k), self._candidates)
        if found is not None:
            return to_user(found)
        if several:
            raise AmbiguousUser("; ".join(f"{key} matches {n} identities" for key, n in several))
        tried = ", ".join(k for k in ("iga_id", *self.options.lookup_order) if getattr(ids, k))
        raise UserNotFound(f"no IIQ identity matches {tried or 'the event (no identifiers)'}")

    async def _candidates(self, key: str, value: str) -> list[dict[str, Any]]:
        return await (self._by_dn(value) if key == "dn" else self._by_filter(key, value))

    async def _by_filter(self, key: str, value: str) -> list[dict[str, Any]]:
        """Users whose username, email or employee number equals `value` (checked again here,
        without case: the filter's own matching is the server's)."""
        attribute = {
            "username": f"{CORE_USER}:userName",
            "email": f"{CORE_USER}:emails.value",
            "employee_id": f"{SAILPOINT_USER}:{self.options.employee_id_attribute}",
        }[key]
        docs = await self.pages("/Users", {"filter": f"{attribute} eq {quote(value)}"})
        want = value.casefold()
        employee = self.options.employee_id_attribute
        return [d for d in docs if any(v.casefold() == want for v in user_values(d, key, employee))]

    async def _by_dn(self, dn: str) -> list[dict[str, Any]]:
        """The owners of accounts whose nativeIdentity is the DN (the IDM's directory account)."""
        flt = f"nativeIdentity eq {quote(dn)}"
        if self.options.dn_application_id:
            flt += f" and application.value eq {quote(self.options.dn_application_id)}"
        accounts = await self.pages("/Accounts", {"filter": flt})
        owners = sorted(
            {
                str((a.get("identity") or {}).get("value"))
                for a in accounts
                if (a.get("identity") or {}).get("value") and norm_dn(str(a.get("nativeIdentity", ""))) == norm_dn(dn)
            }
        )
        found = []
        for owner in owners:
            try:
                found.append(await self.user(owner))
            except UserNotFound:
                continue  # an orphaned link
        return found

    # ---- access

    async def _resource(self, kind: str, resource_id: str) -> dict[str, Any] | None:
        """An Entitlement or Role by id; None when IIQ no longer has it."""
        key = f"{kind}/{resource_id}"
        if key not in self._resources:
            try:
                doc = await self.get_json(f"/{kind}/{resource_id}")
            except IgaPermanentError as exc:
                if exc.status_code != 404:
                    raise
                doc = None
            if len(self._resources) >= CACHE_MAX:
                self._resources.clear()
            self._resources[key] = doc if isinstance(doc, dict) else None
        return self._resources[key]

    async def list_access(self, user: IgaUser) -> list[AccessItem]:
        doc = await self.user(user.id, ACCESS_ATTRIBUTES)
        extension = doc.get(SAILPOINT_USER) or {}
        roles = [r for r in extension.get("roles") or [] if isinstance(r, dict)]
        entitlements = [e for e in extension.get("entitlements") or [] if isinstance(e, dict)]
        wanted = {("Roles", i) for i in map(ref_id, roles) if i} | {
            ("Entitlements", i) for i in map(ref_id, entitlements) if i
        }
        fetched = await asyncio.gather(*(self._resource(kind, rid) for kind, rid in sorted(wanted)))
        known = {key: value for key, value in zip(sorted(wanted), fetched, strict=True)}
        items = self._roles(roles, known) + self._entitlements(entitlements, known)
        if self.options.list_accounts:
            flt = f"{self.options.account_owner_attribute} eq {quote(user.id)}"
            accounts = await self.pages("/Accounts", {"filter": flt})
            items += [account_item(a) for a in accounts if a.get("id") and a.get("active", True) is not False]
        return items

    def _roles(self, roles: list[dict[str, Any]], known: Mapping[tuple[str, str], Any]) -> list[AccessItem]:
        """Roles; a detected role that an assigned role requires or permits is role-granted."""
        privileged = self.options.privileged_classifications
        assigned = [
            known.get(("Roles", ref_id(r) or "")) for r in roles if str(r.get("acquired")).casefold() == "assigned"
        ]
        granted_by: dict[str, str] = {}
        for role in (r for r in assigned if r):
            for link in [*(role.get("requirements") or []), *(role.get("permits") or [])]:
                target = ref_id(link) if isinstance(link, dict) else None
                if target:
                    granted_by.setdefault(target, str(role.get("name")))
        seen = Counter(ref_id(r) for r in roles)
        position: Counter[str] = Counter()
        items = []
        for entry in roles:
            role_id = ref_id(entry)
            if not role_id:
                continue
            role = known.get(("Roles", role_id)) or {"id": role_id, "name": entry.get("display")}
            position[role_id] += 1
            item_id = role_id
            if seen[role_id] > 1:  # held more than once: one item per assignment
                item_id = f"{role_id}~{entry.get('assignmentId') or position[role_id]}"
            assigned_here = str(entry.get("acquired")).casefold() == "assigned"
            via = None if assigned_here else granted_by.get(role_id)
            items.append(role_item(item_id, entry, role, via, classified(role, privileged)))
        return items

    def _entitlements(
        self, entitlements: list[dict[str, Any]], known: Mapping[tuple[str, str], Any]
    ) -> list[AccessItem]:
        """Entitlements, all direct: SCIM does not say which came with a role (§4, A2)."""
        privileged = self.options.privileged_classifications
        seen: Counter[str] = Counter()
        items = []
        for entry in entitlements:
            ent_id = ref_id(entry)
            ent = known.get(("Entitlements", ent_id)) if ent_id else None
            base = ent_id or "|".join(str(entry.get(k) or "") for k in ("application", "value", "accountName"))
            seen[base] += 1
            item_id = base if seen[base] == 1 else f"{base}~{seen[base]}"
            items.append(entitlement_item(item_id, entry, ent, classified(ent or {}, privileged)))
        return items
