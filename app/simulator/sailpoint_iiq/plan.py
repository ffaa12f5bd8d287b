"""The ProvisioningPlan a launch carries, parsed as IdentityIQ reads it: with `defusedxml` (no DTDs,
no entities), refusing what is not a plan, with one operation per AttributeRequest,
PermissionRequest or account-level AccountRequest."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

ACCOUNT_OPS = {"Create", "Modify", "Delete", "Disable", "Enable", "Lock", "Unlock"}
ATTRIBUTE_OPS = {"Add", "Set", "Remove", "Retain", "Revoke"}
IIQ_APP = "IIQ"


class PlanError(Exception):
    """The plan is not one IIQ can compile; `malformed` when it is not even well-formed XML."""

    def __init__(self, detail: str, *, malformed: bool = False) -> None:
        super().__init__(detail)
        self.malformed = malformed


@dataclass(frozen=True)
class PlanOp:
    """One thing the plan asks: an attribute or permission change on an account, or an account op."""

    application: str
    native: str
    op: str  # the account request's op, or the attribute request's op
    name: str | None = None  # attribute (or permission target); None for an account op
    value: str | None = None  # attribute value (or permission rights)
    assignment_id: str | None = None
    permission: bool = False

    @property
    def account_level(self) -> bool:
        return self.name is None


@dataclass(frozen=True)
class Plan:
    identity: str | None
    ops: list[PlanOp]
    attributes: dict[str, str]


def _required(element: Element, name: str) -> str:
    value = element.get(name)
    if not value:
        raise PlanError(f"{element.tag} is missing the attribute {name!r}")
    return value


def parse_plan(text: str) -> Plan:
    """The plan, or PlanError: malformed XML, a DTD or entity, a root that is not a
    ProvisioningPlan, unknown ops, or both Delete and Modify for one account."""
    try:
        root = SafeET.fromstring(text)
    except (ParseError, DefusedXmlException) as exc:
        raise PlanError(f"Unable to parse the plan: {exc}", malformed=True) from None
    if root.tag != "ProvisioningPlan":
        raise PlanError(f"Expected a ProvisioningPlan, found {root.tag}", malformed=True)
    ops: list[PlanOp] = []
    by_account: dict[tuple[str, str], set[str]] = {}
    for request in root.findall("AccountRequest"):
        application = _required(request, "application")
        native = request.get("nativeIdentity") or root.get("nativeIdentity") or ""
        op = request.get("op") or "Modify"
        if op not in ACCOUNT_OPS:
            raise PlanError(f"Unknown AccountRequest op {op!r}")
        by_account.setdefault((application, native.casefold()), set()).add(op)
        if op != "Modify":
            ops.append(PlanOp(application, native, op))
        for attr in request.findall("AttributeRequest"):
            attr_op = attr.get("op") or "Set"
            if attr_op not in ATTRIBUTE_OPS:
                raise PlanError(f"Unknown AttributeRequest op {attr_op!r}")
            ops.append(
                PlanOp(
                    application,
                    native,
                    attr_op,
                    _required(attr, "name"),
                    attr.get("value"),
                    attr.get("assignmentId"),
                )
            )
        for perm in request.findall("PermissionRequest"):
            perm_op = perm.get("op") or "Set"
            if perm_op not in ATTRIBUTE_OPS:
                raise PlanError(f"Unknown PermissionRequest op {perm_op!r}")
            target, rights = _required(perm, "target"), _required(perm, "rights")
            ops.append(PlanOp(application, native, perm_op, target, rights, permission=True))
    for (application, native), seen in by_account.items():
        if {"Delete", "Modify"} <= seen:
            raise PlanError(f"Conflicting Delete and Modify requests for account {native!r} on {application}")
    attributes = {
        str(e.get("key")): str(e.get("value") or "") for e in root.findall("./Attributes/Map/entry") if e.get("key")
    }
    return Plan(root.get("nativeIdentity"), ops, attributes)
