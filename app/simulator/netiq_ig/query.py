"""How IG's lists are searched and sorted: the user search's `criterias` (nested
`Criteria{operator, childCriteria}` nodes), its `searchCriteria` and quick search `q`, and the
`sortBy`/`sortOrder` of every list."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.simulator.netiq_ig.model import IgUser
from app.simulator.netiq_ig.wire import IgFault, invalid_parameter


def sorted_rows(
    rows: list[dict[str, Any]], q: Mapping[str, str], fields: Mapping[str, str], default: str, id_key: str
) -> list[dict[str, Any]]:
    """`sortBy` one of `fields` (name -> column), case-insensitive, ties broken by `id_key`."""
    sort_by = q.get("sortBy") or default
    if sort_by not in fields:
        raise invalid_parameter(f"Cannot sort by {sort_by!r}; use one of {sorted(fields)}")
    column = fields[sort_by]
    descending = (q.get("sortOrder") or "ASC").upper() == "DESC"
    return sorted(rows, key=lambda r: (str(r.get(column) or "").lower(), r[id_key]), reverse=descending)


def matches(value: str | None, wanted: str, how: str) -> bool:
    """One comparison, case-insensitive, by IG's operator names."""
    if value is None:
        return False
    value, wanted = value.lower(), wanted.lower()
    if how in ("EQ", "EXACT", "EQUALS"):
        return value == wanted
    if how in ("START", "STARTS_WITH", "SW"):
        return value.startswith(wanted)
    if how in ("ANY", "CONTAINS", "CO"):
        return wanted in value
    if how in ("NE", "NEQ", "NOT_EQUALS"):
        return value != wanted
    raise invalid_parameter(f"Unsupported operator {how!r}")


def _criterion_ok(user: IgUser, node: Any) -> bool:
    """Evaluate one `Criteria{operator, childCriteria}` or `UniquenessCriterion` node."""
    if isinstance(node, str):
        try:
            node = json.loads(node)
        except ValueError:
            raise IgFault(400, "InvalidRequest", "criterias entries must be JSON") from None
    if not isinstance(node, dict):
        raise IgFault(400, "InvalidRequest", "criteria must be objects")
    if "childCriteria" in node:
        results = [_criterion_ok(user, child) for child in node.get("childCriteria") or []]
        return any(results) if str(node.get("operator", "AND")).upper() == "OR" else all(results)
    key = node.get("attributeKey")
    if not key:
        raise IgFault(400, "InvalidRequest", "criterion without attributeKey")
    value = user.attributes.get(str(key))
    operator = str(node.get("operator") or "EQ").upper()
    if operator == "IN":
        return any(matches(value, str(v), "EQ") for v in node.get("values") or [])
    return matches(value, str(node.get("value", "")), operator)


def search_ok(user: IgUser, body: dict[str, Any], q: Mapping[str, str]) -> bool:
    """Whether a user answers a `POST /data/users/search` (body criteria and quick search `q`)."""
    for node in body.get("criterias") or []:
        if not _criterion_ok(user, node):
            return False
    for crit in body.get("searchCriteria") or []:
        if not isinstance(crit, dict) or not crit.get("attributeKey"):
            raise IgFault(400, "InvalidRequest", "searchCriteria entries need attributeKey")
        value = user.attributes.get(str(crit["attributeKey"]))
        how = str(crit.get("attributeMatch") or "EXACT").upper()
        wanted = crit.get("attributeValues") or [crit.get("attributeValue", "")]
        if not any(matches(value, str(w), how) for w in wanted):
            return False
    text = q.get("q")
    if text:
        how = (q.get("qMatch") or "START").upper()
        quick = ("displayName", "userId", "email", "workforceId", "userDn")
        if not any(matches(user.attributes.get(k), text, how) for k in quick):
            return False
    return True
