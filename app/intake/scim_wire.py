"""SCIM 2.0 on the wire (RFC 7643/7644), the part leaver speaks: error bodies, the discovery
documents, how a shadow user is rendered, and the filters Entra ID and Okta send
(`userName eq "x"`, `externalId eq`, `emails[type eq "work"].value eq`, joined by `and`).

Hand-written and small on purpose; `scim2-models` would replace it if leaver ever needs more."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: Attributes compared exactly (RFC 7643 `caseExact: true`); all others case-insensitively.
CASE_EXACT = frozenset({"id", "externalid"})


class ScimError(Exception):
    """An answer in RFC 7644 §3.12 form (`status` is a string there)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body: dict[str, Any] = {"schemas": [ERROR], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return JSONResponse(body, status_code=self.status, media_type=SCIM_JSON, headers=headers)


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=SCIM_JSON, headers=headers)


def error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["schemas", "status"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string"},
            "scimType": {"type": "string"},
            "detail": {"type": "string"},
        },
    }


def scim_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for SCIM error answers."""
    return {c: {"description": "SCIM error", "content": {SCIM_JSON: {"schema": error_schema()}}} for c in codes}


def scim_ok(description: str) -> dict[str, Any]:
    return {"description": description, "content": {SCIM_JSON: {"schema": {"type": "object"}}}}


SERVICE_PROVIDER_CONFIG: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    "documentationUri": "https://github.com/leaver/leaver/blob/main/docs/intake.md",
    "patch": {"supported": True},
    "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
    "filter": {"supported": True, "maxResults": 200},
    "changePassword": {"supported": False},
    "sort": {"supported": False},
    "etag": {"supported": False},
    "authenticationSchemes": [
        {"type": "oauthbearertoken", "name": "Bearer token", "description": "static token", "primary": True}
    ],
    "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"},
}


def _attr(name: str, type_: str = "string", **extra: Any) -> dict[str, Any]:
    base = {"name": name, "type": type_, "multiValued": False, "required": False, "caseExact": False}
    return base | {"mutability": "readWrite", "returned": "default", "uniqueness": "none"} | extra


_PRIMARY = _attr("primary", "boolean")
USER_SCHEMA: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
    "id": USER,
    "name": "User",
    "description": "A person leaver follows: deactivation and deletion start its leaver process",
    "attributes": [
        _attr("userName", required=True, uniqueness="server"),
        _attr("externalId", caseExact=True),
        _attr("displayName"),
        _attr("active", "boolean"),
        _attr("name", "complex", subAttributes=[_attr("givenName"), _attr("familyName"), _attr("formatted")]),
        _attr(
            "emails",
            "complex",
            multiValued=True,
            subAttributes=[_attr("value"), _attr("type"), _attr("primary", "boolean")],
        ),
    ],
    "meta": {"resourceType": "Schema", "location": f"/scim/v2/Schemas/{USER}"},
}
ENTERPRISE_SCHEMA: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
    "id": ENTERPRISE,
    "name": "EnterpriseUser",
    "description": "Enterprise User",
    "attributes": [
        _attr("employeeNumber"),
        _attr("department"),
        _attr("manager", "complex", subAttributes=[_attr("value")]),
    ],
    "meta": {"resourceType": "Schema", "location": f"/scim/v2/Schemas/{ENTERPRISE}"},
}
USER_RESOURCE_TYPE: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
    "id": "User",
    "name": "User",
    "endpoint": "/Users",
    "schema": USER,
    "schemaExtensions": [{"schema": ENTERPRISE, "required": False}],
    "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User"},
}


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def find_key(obj: dict[str, Any], name: str) -> str | None:
    """The key of `obj` that is `name` ignoring case (SCIM attribute names are case-insensitive)."""
    if name in obj:
        return name
    lower = name.lower()
    return next((k for k in obj if k.lower() == lower), None)


# ---------------------------------------------------------------------------- filters

_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|\[|\]|[^\s()\[\]"]+)')


@dataclass(frozen=True)
class Comparison:
    """`attr[.sub] eq value`, or `attr[type eq "work"].sub eq value`."""

    attr: str
    sub: str | None
    value: Any
    selector: tuple[str, Any] | None = None

    def matches(self, resource: dict[str, Any]) -> bool:
        return any(_equal(self.attr, v, self.value) for v in self.values(resource))

    def values(self, resource: dict[str, Any]) -> list[Any]:
        container: Any = resource
        attr = self.attr
        if attr.lower().startswith(f"{ENTERPRISE.lower()}:"):
            container, attr = resource.get(ENTERPRISE) or {}, attr[len(ENTERPRISE) + 1 :]
        elif attr.lower().startswith(f"{USER.lower()}:"):
            attr = attr[len(USER) + 1 :]
        key = find_key(container, attr) if isinstance(container, dict) else None
        value = container[key] if key else None
        items = value if isinstance(value, list) else [value]
        if self.selector:
            name, wanted = self.selector
            items = [i for i in items if isinstance(i, dict) and _equal(name, i.get(find_key(i, name) or name), wanted)]
        if self.sub:
            items = [i.get(find_key(i, self.sub) or self.sub) for i in items if isinstance(i, dict)]
        return [i for i in items if i is not None]


def parse_filter(text: str) -> list[Comparison]:
    """`a eq "x" and b eq "y"` as comparisons that must all match; anything else is invalidFilter."""
    tokens = _tokens(text)
    clauses: list[Comparison] = []
    pos = 0
    while True:
        if pos + 3 > len(tokens):
            raise ScimError(400, "filter: expected 'attribute eq value'", "invalidFilter")
        path, op, raw = tokens[pos : pos + 3]
        if op.lower() != "eq":
            raise ScimError(400, f"filter: only 'eq' (and 'and') are supported, not {op[:20]!r}", "invalidFilter")
        clauses.append(_comparison(path, _literal(raw)))
        pos += 3
        if pos == len(tokens):
            return clauses
        if tokens[pos].lower() != "and":
            raise ScimError(400, "filter: only 'and' joins comparisons", "invalidFilter")
        pos += 1


def _tokens(text: str) -> list[str]:
    """Tokens, with `attr[type eq "work"].value` kept as one."""
    raw: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip():
                raise ScimError(400, "filter: cannot read it", "invalidFilter")
            break
        raw.append(m.group(1))
        pos = m.end()
    tokens: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "[" and tokens:
            end = raw.index("]", i) if "]" in raw[i:] else -1
            if end < 0:
                raise ScimError(400, "filter: unclosed '['", "invalidFilter")
            tokens[-1] += "[" + " ".join(raw[i + 1 : end]) + "]"
            i = end + 1
            if i < len(raw) and raw[i].startswith("."):
                tokens[-1] += raw[i]
                i += 1
            continue
        if raw[i] in "()":
            raise ScimError(400, "filter: parentheses are not supported", "invalidFilter")
        tokens.append(raw[i])
        i += 1
    return tokens


def _comparison(path: str, value: Any) -> Comparison:
    m = re.fullmatch(r"([\w:.-]+?)(?:\[(\w+) eq (\S+)\])?(?:\.(\w+))?", path)
    if not m:
        raise ScimError(400, f"filter: unsupported attribute path {path[:80]!r}", "invalidFilter")
    attr, sel_name, sel_value, sub = m.groups()
    if sub is None and sel_name is None and "." in attr and not attr.lower().startswith("urn:"):
        attr, sub = attr.split(".", 1)
    selector = (sel_name, _literal(sel_value)) if sel_name else None
    return Comparison(attr, sub, value, selector)


def _literal(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        raise ScimError(
            400, "filter: a value must be a quoted string, a number, true, false or null", "invalidFilter"
        ) from None
    if isinstance(value, dict | list):
        raise ScimError(400, "filter: a value must be a string, a number, true, false or null", "invalidFilter")
    return value


def _equal(attr: str, have: Any, want: Any) -> bool:
    if isinstance(have, str) and isinstance(want, str):
        return have == want if attr.lower() in CASE_EXACT else have.lower() == want.lower()
    return bool(have == want and type(have) is type(want))
