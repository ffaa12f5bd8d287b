"""The ProvisioningPlan XML and the LaunchedWorkflows body for one batch (contract §5).

The plan is built with `xml.etree.ElementTree`, so every value is escaped by the serialiser and
never pasted into markup. Attributes are written in alphabetical order, as IIQ itself writes them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from app.domain import AccessItem, IgaUser, RemovalRequest
from app.iga.base import IgaPermanentError
from app.iga.sailpoint_iiq.options import SailPointIiqOptions

LAUNCHED_WORKFLOW = "urn:ietf:params:scim:schemas:sailpoint:1.0:LaunchedWorkflow"
TASK_RESULT = "urn:ietf:params:scim:schemas:sailpoint:1.0:TaskResult"
#: The pseudo-application of IIQ's own attributes (role assignments).
IIQ_APP = "IIQ"
ROLE_ATTRIBUTE = {"assigned_role": "assignedRoles", "detected_role": "detectedRoles"}


def _element(parent: ET.Element | None, tag: str, attrs: Mapping[str, str | None]) -> ET.Element:
    clean = {k: v for k, v in sorted(attrs.items()) if v is not None}
    return ET.Element(tag, clean) if parent is None else ET.SubElement(parent, tag, clean)


def identity_name(user: IgaUser) -> str:
    name = user.extra.get("userName")
    if not name:
        raise IgaPermanentError(f"IIQ identity {user.id} has no userName: a plan cannot name it")
    return str(name)


def _kind(item: AccessItem) -> str:
    kind = item.extra.get("iiq_kind")
    if kind not in ("assigned_role", "detected_role", "entitlement", "permission", "account"):
        raise IgaPermanentError(f"item {item.id}: IIQ cannot remove a {item.type!r} by provisioning plan")
    return str(kind)


def build_plan(user: IgaUser, batch: Sequence[RemovalRequest], key: str, options: SailPointIiqOptions) -> str:
    """One ProvisioningPlan: role removals on the IIQ account request, one Modify per application
    account with its attribute and permission removals, then account ops, then the plan attributes."""
    name = identity_name(user)
    root = _element(None, "ProvisioningPlan", {"nativeIdentity": name})
    modify: dict[tuple[str, str], ET.Element] = {}
    account_ops: list[dict[str, str | None]] = []

    def account_request(application: str, native: str) -> ET.Element:
        found = modify.get((application, native))
        if found is None:
            found = _element(
                root, "AccountRequest", {"application": application, "nativeIdentity": native, "op": "Modify"}
            )
            modify[(application, native)] = found
        return found

    for req in batch:
        item, kind = req.item, _kind(req.item)
        extra = item.extra
        if kind in ROLE_ATTRIBUTE:
            assignment = extra.get("assignment_id")
            attrs: dict[str, str | None] = {
                "assignmentId": str(assignment) if assignment else None,
                "name": ROLE_ATTRIBUTE[kind],
                "op": "Remove",
                "value": str(extra.get("role_name") or item.name),
            }
            _element(account_request(IIQ_APP, name), "AttributeRequest", attrs)
        elif kind == "account":
            account_ops.append(
                {"application": _need(item, "application"), "nativeIdentity": _need(item, "native_identity")}
            )
        else:
            parent = account_request(_need(item, "application"), _need(item, "account"))
            if kind == "permission":
                attrs = {"op": "Remove", "rights": _need(item, "value"), "target": _need(item, "attribute")}
                _element(parent, "PermissionRequest", attrs)
            else:
                attrs = {"name": _need(item, "attribute"), "op": "Remove", "value": _need(item, "value")}
                _element(parent, "AttributeRequest", attrs)
    for attrs in account_ops:
        if (str(attrs["application"]), str(attrs["nativeIdentity"])) in modify:
            raise IgaPermanentError("an account's removal and its Modify cannot share one plan")
        _element(root, "AccountRequest", {**attrs, "op": options.account_op})
    entries = _element(_element(root, "Attributes", {}), "Map", {})
    _element(entries, "entry", {"key": "source", "value": options.source})
    _element(entries, "entry", {"key": "leaverCorrelationId", "value": key})
    return ET.tostring(root, encoding="unicode")


def _need(item: AccessItem, field: str) -> str:
    value = item.extra.get(field)
    if not value:
        raise IgaPermanentError(f"item {item.id} ({item.name}): no {field} to name it in a plan")
    return str(value)


def launch_inputs(
    user: IgaUser, plan: str, key: str, options: SailPointIiqOptions, launcher: str | None
) -> list[dict[str, str]]:
    """The LCM Provisioning inputs, in the order of the contract's example."""
    name = identity_name(user)
    inputs = [
        {"key": "identityName", "value": name},
        {"key": "plan", "value": plan, "type": "application/xml"},
        {"key": "flow", "value": options.flow},
        {"key": "source", "value": options.source},
    ]
    if launcher:
        inputs.append({"key": "launcher", "value": launcher})
    inputs += [
        {"key": "targetClass", "value": "Identity"},
        {"key": "targetName", "value": name},
        {"key": "approvalScheme", "value": options.approval_scheme},
        {"key": "notificationScheme", "value": options.notification_scheme},
        {"key": "policyScheme", "value": options.policy_scheme},
        {"key": "foregroundProvisioning", "value": "true" if options.foreground_provisioning else "false"},
        {"key": "leaverCorrelationId", "value": key},
    ]
    return inputs


def launch_body(workflow: str, inputs: list[dict[str, str]], form: str) -> dict[str, Any]:
    """The POST /LaunchedWorkflows body, `nested` (the guide's form) or `top-level` (the spec's)."""
    launch = {"workflowName": workflow, "input": inputs}
    body: dict[str, Any] = {"schemas": [LAUNCHED_WORKFLOW, TASK_RESULT]}
    if form == "nested":
        body[LAUNCHED_WORKFLOW] = launch
    else:
        body.update(launch)
    return body
