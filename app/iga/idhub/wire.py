"""IDHub's documents as leaver reads them: Mongo-style ids, users, access, request states, and
the rule that says whether a listed request is one of ours.

Pure functions, no I/O. Redoc collapsed every array of the published samples into one object,
so wherever a list is expected an object is accepted too (contract §4).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from app.domain import AccessItem, GrantSource, IgaStatus, IgaUser, ItemType, RequestState
from app.iga.http import json_object
from app.iga.idhub.options import IdHubOptions

Doc = Mapping[str, Any]
#: Top-level user fields that are structure, not attributes a policy could match on.
_NOT_ATTRIBUTES = {"_id", "id", "_etag", "accessList", "IDM", "collection", "logoURL"}


def oid(value: Any) -> str | None:
    """A Mongo id as a string: `"63ae…"`, `{"$oid": "63ae…"}` or (seed §5) `{"oid": "63ae…"}`."""
    if isinstance(value, Mapping):
        value = value.get("$oid", value.get("oid"))
    return str(value) if isinstance(value, str | int) and str(value) else None


def doc_id(doc: Doc) -> str | None:
    """`_id` (plain or `$oid`), else `id.$oid` (catalog items carry either or both)."""
    return oid(doc.get("_id")) or oid(doc.get("id"))


def as_list(value: Any) -> list[Doc]:
    """The objects of a list field, accepting a lone object or nothing."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def parse_time(value: Any) -> datetime | None:
    """`2023-12-18T11:31:25.810Z`, `2023-12-18T11:31:28.388+0000`, `{"$date": …}`; None otherwise."""
    if isinstance(value, Mapping):
        value = value.get("$date")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso_ms(when: datetime) -> str:
    """IDHub's own time format: UTC with milliseconds and `Z`."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def error_text(resp: httpx.Response) -> str:
    """RESTHeart's error body in one line (`http status description: message`), never headers."""
    body = json_object(resp)
    if body is None:
        return resp.text[:300]
    parts = [body.get("http status description"), body.get("message"), body.get("error_description")]
    return ": ".join(str(p) for p in parts if p)[:500] or resp.text[:300]


# ---------------------------------------------------------------- users


def user_from_doc(doc: Doc) -> IgaUser:
    """A catalog User document. `id` is the User `_id` (carts, `userid=`); `login` is how IDHub
    names the beneficiary of requests."""
    user_id = doc_id(doc)
    if not user_id:
        raise ValueError("IDHub user document without _id")
    attributes = {k: v for k, v in doc.items() if k not in _NOT_ATTRIBUTES and isinstance(v, str | int | float | bool)}
    return IgaUser(
        id=user_id,
        display_name=doc.get("displayName") or None,
        attributes=attributes,
        extra={
            "login": doc.get("login"),
            "employeeNumber": doc.get("employeeNumber"),
            "displayName": doc.get("displayName"),
            "email": doc.get("email"),
            "status": doc.get("status"),
        },
    )


def same(a: Any, b: str | None) -> bool:
    """Case-insensitive exact match of a document field and an identifier."""
    return b is not None and isinstance(a, str) and a.casefold() == b.casefold()


# ---------------------------------------------------------------- access


def rule_has_conditions(rule: Any) -> bool:
    """A role `rule` that grants by attribute (e.g. All Employees); `{"$and":[]}` counts as none."""
    if not rule:
        return False
    try:
        parsed = json.loads(rule) if isinstance(rule, str) else rule
    except ValueError:
        return bool(str(rule).strip())  # not JSON (the seed has `$and:[department:CO]`): conditions

    def conditions(node: Any) -> bool:
        if isinstance(node, Mapping):
            return any(k not in ("$and", "$or") or conditions(v) for k, v in node.items())
        if isinstance(node, list):
            return any(conditions(v) for v in node)
        return bool(node)

    return conditions(parsed)


@dataclass(frozen=True)
class _Roles:
    """The user's roles, and which of them are birthright (granted by a rule)."""

    docs: dict[str, Doc]
    birthright_ids: frozenset[str]
    birthright_names: frozenset[str]

    @classmethod
    def of(cls, access: Doc, options: IdHubOptions) -> _Roles:
        docs = {rid: r for r in as_list(access.get("roles")) if (rid := doc_id(r))}
        rule = {rid for rid, r in docs.items() if options.birthright_rule and rule_has_conditions(r.get("rule"))}
        names = {str(docs[rid].get(k)) for rid in rule for k in ("name", "displayName") if docs[rid].get(k)}
        return cls(docs, frozenset(rule), frozenset(names))

    def grant(self, mechanism: Any, roles: Iterable[Any], options: IdHubOptions) -> GrantSource:
        if mechanism not in options.role_mechanisms:
            return "direct"
        named = [str(r) for r in roles]
        return "birthright" if named and all(r in self.birthright_names for r in named) else "role"


def access_items(user_doc: Doc, accounts: Iterable[Doc], options: IdHubOptions) -> list[AccessItem]:
    """Roles from `accessList`, entitlements and applications from the provisioned UserAccounts
    joined with the catalog data of `accessList.applications[].entitlements[]` (contract §4)."""
    access = user_doc.get("accessList") or {}
    roles = _Roles.of(access, options)
    items: dict[str, AccessItem] = {}
    for rid, role in roles.docs.items():
        birthright = rid in roles.birthright_ids
        apps = [a.get("name") for a in as_list(role.get("applications")) if a.get("name")]
        items[rid] = _item(
            rid,
            "role",
            role,
            options,
            application=str(apps[0]) if apps else None,
            granted_by="birthright" if birthright else "direct",
            extra={"entity_type": options.entity_type_role},
        )
    apps_meta = {aid: a for a in as_list(access.get("applications")) if (aid := doc_id(a))}
    ents_meta = {eid: (e, a) for a in apps_meta.values() for e in as_list(a.get("entitlements")) if (eid := doc_id(e))}
    for account in accounts:
        if account.get("status") not in (None, "Provisioned"):
            continue
        app_id = str(account.get("targetSystemId") or "")
        app_name = account.get("targetSystemName") or (apps_meta.get(app_id) or {}).get("name")
        form = account.get("form") or {}
        account_name = form.get("User Login") or form.get("Email") or account.get("login")
        held = [e for e in as_list(account.get("entitlements")) if e.get("status") in (None, "Provisioned")]
        for ent in held:
            eid = str(ent.get("entitlementId") or oid(ent.get("_id")) or "")
            if not eid:
                continue
            meta = ents_meta.get(eid, ({}, {}))[0]
            mechanism = ent.get("provisionMechanism") or account.get("provisionMechanism")
            via = ent.get("associatedRoles") or account.get("associatedRoles") or []
            items[eid] = _item(
                eid,
                "entitlement",
                {"entitlementName": ent.get("entitlementName"), **meta},
                options,
                application=str(app_name) if app_name else meta.get("targetSystemName"),
                granted_by=roles.grant(mechanism, via, options),
                extra=_extra(options.entity_type_entitlement, account_name, app_id, mechanism, via),
            )
        wanted = options.application_items == "all" or (options.application_items == "account_only" and not held)
        if app_id and wanted:
            mechanism, via = account.get("provisionMechanism"), account.get("associatedRoles") or []
            items[app_id] = _item(
                app_id,
                "application",
                {"name": app_name, **apps_meta.get(app_id, {})},
                options,
                application=str(app_name) if app_name else None,
                granted_by=roles.grant(mechanism, via, options),
                extra=_extra(options.entity_type_application, account_name, app_id, mechanism, via),
            )
    return list(items.values())


def _extra(entity_type: str, account_name: Any, app_id: str, mechanism: Any, via: Any) -> dict[str, Any]:
    extra = {
        "entity_type": entity_type,
        "account_name": account_name,
        "target_system_id": app_id or None,
        "provision_mechanism": mechanism,
        "associated_roles": [str(r) for r in via] if isinstance(via, list) else None,
    }
    return {k: v for k, v in extra.items() if v}


def _item(
    item_id: str,
    kind: ItemType,
    doc: Doc,
    options: IdHubOptions,
    *,
    application: str | None,
    granted_by: GrantSource,
    extra: dict[str, Any],
) -> AccessItem:
    name = doc.get("displayName") or doc.get("name") or doc.get("entitlementName") or item_id
    risk = str(doc.get("riskLevel") or "")
    return AccessItem(
        id=item_id,
        type=kind,
        name=str(name),
        application=application,
        privileged=risk.casefold() in options.privileged_risk_levels,
        granted_by=granted_by,
        # Role-granted access goes with its role; rule-granted (birthright) access is granted again.
        removable=granted_by == "direct",
        extra={**extra, "risk": risk} if risk else extra,
    )


# ---------------------------------------------------------------- requests

_ORDER = (IgaStatus.COMPLETED, IgaStatus.CANCELLED, IgaStatus.REJECTED, IgaStatus.FAILED)


def request_state(row: Doc, options: IdHubOptions) -> RequestState:
    """Contract §6: resolution and status, checked case-insensitively for completed, cancelled,
    rejected, failed in that order; a completed status with no known resolution is completed but
    flagged (the verify step decides); anything else, including unknown workflow steps, pending."""
    status, resolution = str(row.get("status") or ""), str(row.get("resolution") or "")
    raw = f"{status} / {resolution}" if resolution else status or "UNKNOWN"
    by_resolution = options.resolution_map.get(resolution.casefold())
    by_status = options.status_map.get(status.casefold())
    for outcome in _ORDER:
        if outcome.value in (by_resolution, by_status):
            return RequestState(outcome, raw, _message(row) if outcome is not IgaStatus.COMPLETED else None)
    if status.casefold().startswith(options.completed_status_prefixes):
        note = f"IDHub reports {status!r} with resolution {resolution or 'none'}: verification decides"
        return RequestState(IgaStatus.COMPLETED, raw, note)
    return RequestState(IgaStatus.PENDING, raw)


def _message(row: Doc) -> str | None:
    """The last history comment, if IDHub recorded one with the outcome."""
    for entry in reversed(as_list(row.get("history"))):
        diff = entry.get("diff") or {}
        for key in ("comment", "message", "reason"):
            if isinstance(diff, Mapping) and diff.get(key):
                return str(diff[key])
    return None


def marked(justification: Any, key: str) -> bool:
    """The justification starts with the correlation key, as a whole word: `leaver-7-1` does not
    mark `leaver-7-10: …`."""
    return isinstance(justification, str) and re.match(rf"{re.escape(key)}(?![\w-])", justification) is not None


@dataclass(frozen=True)
class Match:
    """What makes a listed UserRequest one of a batch's (contract §7)."""

    login: str
    entities: Mapping[str, str]  # entityId -> entityType
    revoke_type: str
    key: str
    since: datetime
    correlation_id: str | None = None

    def __call__(self, row: Doc) -> bool:
        payload = row.get("payload") or {}
        beneficiary = row.get("beneficiary") or {}
        entity = str(payload.get("entityId") or "")
        created = parse_time(row.get("createDate"))
        return (
            same(beneficiary.get("login"), self.login)
            and self.entities.get(entity) == payload.get("entityType")
            and payload.get("type") == self.revoke_type
            and marked(row.get("justification"), self.key)
            and (created is None or created >= self.since)
            and (self.correlation_id is None or row.get("correlationId") == self.correlation_id)
        )
