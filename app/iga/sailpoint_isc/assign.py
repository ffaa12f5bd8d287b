"""Which account or which assignment a revoke item names (contract §5): an identity with several
accounts on an entitlement's source needs `nativeIdentity`, a role held more than once needs
`assignmentId`. What ISC does without them is unknown, so leaver fills them in, and an item whose
assignment cannot be read goes to an operator instead of being guessed."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from app.domain import AccessItem, RemovalRequest
from app.iga.base import IgaPermanentError
from app.iga.sailpoint_isc.wire import quote

#: Reads every record of a list endpoint: (path, params) -> records.
Pages = Callable[[str, Mapping[str, str]], Awaitable[list[Any]]]
#: Reads one JSON document: path, params.
Get = Callable[[str, Mapping[str, str]], Awaitable[Any]]

TARGETS = "isc_targets"  # [{"nativeIdentity": ...}] or [{"assignmentId": ...}]: one revoke each
OPERATOR = "isc_operator"  # why leaver cannot say which assignment to revoke


def _with(item: AccessItem, **extra: Any) -> AccessItem:
    return dataclasses.replace(item, extra={**item.extra, **extra})


async def resolve(
    doc: Mapping[str, Any],
    items: Sequence[AccessItem],
    pages: Pages,
    get: Get,
    prefix: str,
    assignments_prefix: str | None,
) -> list[AccessItem]:
    """The items with their revoke targets: entitlements on a source where the identity has
    several accounts, roles with several assignments. Others are returned unchanged."""
    accounts = [a for a in doc.get("accounts") or [] if isinstance(a, dict)]
    per_source = Counter(str((a.get("source") or {}).get("id")) for a in accounts)
    listed = Counter(str(r.get("id")) for r in doc.get("access") or [] if isinstance(r, dict))
    identity_id = str(doc["id"])
    held_by: dict[str, list[str]] | None = None
    out = []
    for item in items:
        kind, source = item.extra.get("isc_type"), item.extra.get("source_id")
        if not item.removable:
            out.append(item)
        elif kind == "ENTITLEMENT" and source and per_source[str(source)] > 1:
            try:
                held_by = held_by if held_by is not None else {}
                natives = await _natives(identity_id, str(source), item.id, pages, prefix, held_by)
            except IgaPermanentError as exc:
                out.append(_with(item, **{OPERATOR: f"the accounts of source {source} cannot be read: {exc}"}))
                continue
            if not natives:
                why = f"the identity has {per_source[str(source)]} accounts on {item.application}; none lists it"
                out.append(_with(item, **{OPERATOR: why}))
            else:
                out.append(_with(item, **{TARGETS: [{"nativeIdentity": n} for n in natives]}))
        elif kind == "ROLE":
            out.append(await _role(identity_id, item, get, assignments_prefix, listed[item.id] > 1))
        else:
            out.append(item)
    return out


async def _natives(
    identity_id: str, source: str, item_id: str, pages: Pages, prefix: str, cache: dict[str, list[str]]
) -> list[str]:
    """Native identities of the identity's accounts on `source` that hold the entitlement."""
    if source not in cache:
        flt = f"identityId eq {quote(identity_id)} and sourceId eq {quote(source)}"
        accounts = await pages(f"{prefix}/accounts", {"filters": flt})
        for acc in accounts:
            for ent in await pages(f"{prefix}/accounts/{acc['id']}/entitlements", {}):
                cache.setdefault(f"{source}:{ent.get('id')}", []).append(str(acc.get("nativeIdentity")))
        cache[source] = []
    return sorted(set(cache.get(f"{source}:{item_id}", [])))


async def _role(
    identity_id: str, item: AccessItem, get: Get, assignments_prefix: str | None, listed_twice: bool
) -> AccessItem:
    """A role's assignments (v2024+). Unreadable: fine when it is listed once; else an operator."""
    if assignments_prefix is None:
        rows = None
    else:
        try:
            rows = await get(f"{assignments_prefix}/identities/{identity_id}/role-assignments", {"roleId": item.id})
        except IgaPermanentError:
            rows = None
    if not isinstance(rows, list):
        if listed_twice:
            return _with(item, **{OPERATOR: "the role is held more than once and its assignments cannot be read"})
        return item
    ids = sorted({str(r["id"]) for r in rows if isinstance(r, dict) and r.get("id")})
    return _with(item, **{TARGETS: [{"assignmentId": i} for i in ids]}) if len(ids) > 1 else item


def alone(req: RemovalRequest) -> bool:
    """Items revoked once per account or assignment, or refused, travel in a batch of their own."""
    return OPERATOR in req.item.extra or len(req.item.extra.get(TARGETS) or ()) > 1


def targets(req: RemovalRequest) -> list[dict[str, str]]:
    """The target fields for each request this item needs ([{}]: one, without fields)."""
    if OPERATOR in req.item.extra:
        raise IgaPermanentError(f"{req.item.name}: not sent, an operator must revoke it: {req.item.extra[OPERATOR]}")
    found: list[dict[str, str]] = [dict(t) for t in req.item.extra.get(TARGETS) or []]
    return found or [{}]
