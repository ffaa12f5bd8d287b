"""Applying SCIM writes to a shadow user: PATCH operations as Entra ID, Okta and SailPoint send
them, PUT, and the POST body. What matters is `active`: `"False"`, `"false"` and `false` are the
same, the last operation touching it wins, and a PUT without it leaves it unchanged."""

from __future__ import annotations

import copy
import re
from typing import Any

from app.intake.scim_wire import ENTERPRISE, PATCH_OP, USER, ScimError, find_key

#: Never stored, never echoed (RFC 7643: `password` is `returned: never`).
DROPPED = frozenset({"password", "schemas", "id", "meta"})
MAX_OPERATIONS = 200
_FILTERED = re.compile(r"^(\w+)\[(\w+) eq \"([^\"]*)\"\](?:\.(\w+))?$")


def as_bool(value: Any, where: str = "active") -> bool:
    """SCIM booleans as Entra sends them without its 2020 flag (`"False"`) and as the RFC does."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ScimError(400, f"{where} must be a boolean", "invalidValue")


def clean(body: Any, *, what: str) -> dict[str, Any]:
    """A POST/PUT body as the resource leaver keeps: server-owned and secret attributes dropped."""
    if not isinstance(body, dict):
        raise ScimError(400, f"{what}: the body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or USER not in schemas):
        raise ScimError(400, f"{what}: schemas must include {USER}", "invalidValue")
    resource = {k: copy.deepcopy(v) for k, v in body.items() if k.lower() not in DROPPED}
    user_name = resource.get(find_key(resource, "userName") or "userName")
    if not isinstance(user_name, str) or not user_name.strip() or len(user_name) > 256:
        raise ScimError(400, f"{what}: userName is required (a string of at most 256 characters)", "invalidValue")
    return normalise(resource)


def normalise(resource: dict[str, Any]) -> dict[str, Any]:
    """Canonical names for the attributes leaver reads, and `active` as a boolean."""
    for name in ("userName", "externalId", "active", "emails", "displayName", "name"):
        key = find_key(resource, name)
        if key is not None and key != name:
            resource[name] = resource.pop(key)
    if "active" in resource:
        resource["active"] = as_bool(resource["active"])
    return resource


def replace(old: dict[str, Any], body: Any) -> dict[str, Any]:
    """PUT: the body replaces the resource, except that a missing `active` keeps the old value."""
    new = clean(body, what="PUT")
    if "active" not in new and "active" in old:
        new["active"] = old["active"]
    return new


def patch(old: dict[str, Any], body: Any) -> dict[str, Any]:
    """PATCH (RFC 7644 §3.5.2): every operation applied in order to a copy of `old`."""
    if not isinstance(body, dict):
        raise ScimError(400, "PATCH: the body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and (not isinstance(schemas, list) or PATCH_OP not in schemas):
        raise ScimError(400, f"PATCH: schemas must be [{PATCH_OP}]", "invalidSyntax")
    ops = body.get(find_key(body, "Operations") or "Operations")
    if not isinstance(ops, list) or not 1 <= len(ops) <= MAX_OPERATIONS:
        raise ScimError(400, f"PATCH: Operations must list 1 to {MAX_OPERATIONS} operations", "invalidSyntax")
    resource = copy.deepcopy(old)
    for n, op in enumerate(ops):
        if not isinstance(op, dict):
            raise ScimError(400, f"PATCH: Operations[{n}] is not an object", "invalidSyntax")
        _apply(resource, op, n)
    resource = {k: v for k, v in resource.items() if k.lower() not in DROPPED}
    if not isinstance(resource.get("userName"), str) or not resource["userName"]:
        raise ScimError(400, "PATCH: userName cannot be removed", "mutability")
    return normalise(resource)


def _apply(resource: dict[str, Any], op: dict[str, Any], n: int) -> None:
    name = op.get(find_key(op, "op") or "op")
    kind = name.lower() if isinstance(name, str) else None
    if kind not in ("add", "replace", "remove"):
        raise ScimError(400, f"PATCH: Operations[{n}].op must be add, replace or remove", "invalidSyntax")
    path = op.get(find_key(op, "path") or "path")
    value = op.get(find_key(op, "value") or "value")
    if path is None:
        if kind == "remove":
            raise ScimError(400, f"PATCH: Operations[{n}]: remove needs a path", "noTarget")
        if not isinstance(value, dict):
            raise ScimError(400, f"PATCH: Operations[{n}]: without a path, value must be an object", "invalidValue")
        for key, item in value.items():
            _set(resource, key, item, kind)
        return
    if not isinstance(path, str) or not path or len(path) > 300:
        raise ScimError(400, f"PATCH: Operations[{n}].path must be a string", "invalidPath")
    if kind == "remove":
        _remove(resource, path)
    else:
        _set(resource, path, value, kind)


def _split(resource: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The container a path lands in (the resource, or its enterprise extension) and the rest."""
    lower = path.lower()
    if lower.startswith(ENTERPRISE.lower() + ":"):
        return _extension(resource), path[len(ENTERPRISE) + 1 :]
    if lower.startswith(USER.lower() + ":"):
        return resource, path[len(USER) + 1 :]
    return resource, path


def _extension(resource: dict[str, Any]) -> dict[str, Any]:
    ext = resource.setdefault(find_key(resource, ENTERPRISE) or ENTERPRISE, {})
    if not isinstance(ext, dict):
        raise ScimError(400, "the enterprise extension must be an object", "invalidValue")
    return ext


def _set(resource: dict[str, Any], path: str, value: Any, kind: str) -> None:
    if path.lower() in (ENTERPRISE.lower(), USER.lower()):
        if not isinstance(value, dict):
            raise ScimError(400, f"{path}: the value must be an object", "invalidValue")
        target = resource if path.lower() == USER.lower() else _extension(resource)
        for key, item in value.items():
            _set(target, key, item, kind)
        return
    container, rest = _split(resource, path)
    if rest.lower() == "active":
        value = as_bool(value)
    filtered = _FILTERED.match(rest)
    if filtered:
        _set_filtered(container, filtered.groups(), value)
        return
    if "[" in rest or not re.fullmatch(r"[\w$-]+(\.[\w$-]+)?", rest):
        raise ScimError(400, f"unsupported path {path[:80]!r}", "invalidPath")
    attr, _, sub = rest.partition(".")
    key = find_key(container, attr) or attr
    if sub:
        inner = container.setdefault(key, {})
        if not isinstance(inner, dict):
            raise ScimError(400, f"{attr} has no sub-attribute {sub!r}", "invalidPath")
        inner[find_key(inner, sub) or sub] = value
    elif kind == "add" and isinstance(container.get(key), list) and isinstance(value, list):
        container[key] = container[key] + [v for v in value if v not in container[key]]
    elif kind in ("add", "replace") and isinstance(container.get(key), dict) and isinstance(value, dict):
        container[key] = {**container[key], **value}
    else:
        container[key] = value


def _set_filtered(container: dict[str, Any], groups: tuple[str | None, ...], value: Any) -> None:
    """`emails[type eq "work"].value`: set it on the matching element, adding one if none."""
    attr, field, wanted, sub = groups
    assert attr and field and wanted is not None
    key = find_key(container, attr) or attr
    items = container.setdefault(key, [])
    if not isinstance(items, list):
        raise ScimError(400, f"{attr} is not multi-valued", "invalidPath")
    hits = [i for i in items if isinstance(i, dict) and str(i.get(field, "")).lower() == wanted.lower()]
    if not hits:
        hits = [{field: wanted}]
        items.append(hits[0])
    for item in hits:
        if sub:
            item[sub] = value
        elif isinstance(value, dict):
            item.update(value)


def _remove(resource: dict[str, Any], path: str) -> None:
    container, rest = _split(resource, path)
    filtered = _FILTERED.match(rest)
    if filtered:
        attr, field, wanted, sub = filtered.groups()
        key = find_key(container, attr or "")
        items = container.get(key) if key else None
        if isinstance(items, list) and field and wanted is not None:
            keep = [i for i in items if not (isinstance(i, dict) and str(i.get(field, "")).lower() == wanted.lower())]
            if sub:
                for item in items:
                    if item not in keep and isinstance(item, dict):
                        item.pop(sub, None)
            else:
                container[key or ""] = keep
        return
    attr, _, sub = rest.partition(".")
    key = find_key(container, attr)
    if key is None:
        return
    if sub and isinstance(container[key], dict):
        container[key].pop(find_key(container[key], sub) or sub, None)
    elif not sub:
        del container[key]
