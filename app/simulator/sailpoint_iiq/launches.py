"""Launches of LCM Provisioning: each one a TaskResult that moves over the simulator clock from
running (no `completionStatus`) through its approval work items to its outcome, and applies its
plan to the identity when provisioning runs. Renders the launch answer, the TaskResult and the
approval set as IdentityIQ does."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from app.simulator.sailpoint_iiq.directory import Directory, Identity
from app.simulator.sailpoint_iiq.plan import IIQ_APP, Plan, PlanOp
from app.simulator.sailpoint_iiq.scim import LAUNCHED_WORKFLOW, TASK_RESULT, iso, meta

REMOVES = {"Remove", "Revoke"}
ROLE_ATTRIBUTES = {"assignedRoles", "detectedRoles"}
FINAL = {"completed": "Success", "warning": "Warning", "rejected": "Success", "failed": "Error"}
FINAL |= {"temp_error": "TempError", "cancelled": "Terminated"}


@dataclass
class Launch:
    """One launch and its TaskResult. Times are simulator-clock seconds."""

    id: str
    number: int
    case_id: str
    identity: Identity | None
    target_name: str
    launcher: str
    workflow: str
    form: str
    inputs: list[dict[str, Any]]
    plan_xml: str
    plan: Plan
    created: float
    outcome: str  # one of IiqConfig.outcomes, fixed at launch
    approvals: bool
    approval_wait: float
    #: Provisioning the workflow still waits for once decided (background, or after an approval).
    provisioning_wait: float
    #: A foreground launch completes inside the call; a connector that queues the change makes it
    #: land this much later (IIQ then still lists the access).
    effect_wait: float
    fail_items: list[str]
    #: The access item each operation names, as the adapter lists it (what the probe records).
    item_of: dict[PlanOp, str] = field(default_factory=dict)
    applied: bool = False

    @property
    def name(self) -> str:
        return f"{self.workflow} - {self.number}"

    @property
    def identity_request_id(self) -> str:
        return f"{self.number:010d}"

    @property
    def decided_at(self) -> float:
        return self.created + self.approval_wait

    @property
    def done_at(self) -> float:
        if self.outcome in ("rejected", "cancelled"):
            return self.decided_at
        return self.decided_at + self.provisioning_wait

    @property
    def effect_at(self) -> float:
        return self.done_at + self.effect_wait

    def done(self, now: float) -> bool:
        return now >= self.done_at

    def failing(self) -> list[PlanOp]:
        return [op for op in self.plan.ops if self.fails(op, self.item_of.get(op, ""))]

    def status(self, now: float) -> str | None:
        """`completionStatus` at `now`: none while running; Error when an item's provisioning failed."""
        if not self.done(now):
            return None
        if self.identity is None or (self.outcome in ("completed", "warning") and self.failing()):
            return "Error"
        return FINAL[self.outcome]

    def messages(self) -> list[str]:
        """The TaskResult's messages once it completed."""
        if self.identity is None:
            return [f"Could not find identity: {self.target_name}"]
        texts = {
            "failed": ["An unexpected error occurred: sailpoint.connector.ConnectorException: simulated outage"],
            "temp_error": ["Connector temporarily unavailable: the request will be retried"],
            "warning": ["Some requests were queued for manual provisioning"],
        }.get(self.outcome, [])
        if self.outcome in ("completed", "warning"):
            texts += [
                f"Failed to {op.op.lower()} {op.value or op.native} on {op.application}: simulated"
                for op in self.failing()
            ]
        return texts

    # ---- provisioning

    def fails(self, op: PlanOp, item_id: str) -> bool:
        names = {item_id, op.value or "", op.native}
        return bool(names & set(self.fail_items))

    def apply(self, directory: Directory, now: float) -> None:
        """Run the plan once its effect is due: what the outcome lets through is applied."""
        if self.applied or now < self.effect_at:
            return
        self.applied = True
        if self.outcome not in ("completed", "warning") or self.identity is None:
            return
        failing = self.failing()
        for op in self.plan.ops:
            if op not in failing:
                apply_op(directory, self.identity, op, self.effect_at)

    # ---- renderings

    def approval_set(self, now: float) -> str | None:
        if not self.approvals:
            return None
        root = ET.Element("ApprovalSet")
        for n, op in enumerate(self.plan.ops, 1):
            attrs = {"application": op.application, "approver": "Access Approver", "id": f"{self.id[:24]}{n:08x}"}
            if op.account_level:
                attrs.update(nativeIdentity=op.native, operation=op.op)
            else:
                attrs.update(name=op.name or "", operation=op.op, value=op.value or "")
                if op.application != IIQ_APP:
                    attrs["nativeIdentity"] = op.native
                if op.assignment_id:
                    attrs["assignmentId"] = op.assignment_id
            if now >= self.decided_at:
                attrs["state"] = "Rejected" if self.outcome == "rejected" else "Finished"
            ET.SubElement(root, "ApprovalItem", dict(sorted(attrs.items())))
        return ET.tostring(root, encoding="unicode")

    def attributes(self, as_object: bool) -> Any:
        pairs = {"identityRequestId": self.identity_request_id, "workflowCaseId": self.case_id}
        return pairs if as_object else [{"key": k, "value": v} for k, v in pairs.items()]

    def task_result(self, base: str, now: float, as_object: bool) -> dict[str, Any]:
        """GET /TaskResults/{id}: no `completionStatus` or `completed` while it runs."""
        status = self.status(now)
        doc: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": "LCM",
            "taskDefinition": "Workflow Launcher",
            "launcher": self.launcher,
            "targetClass": "Identity",
            "targetName": self.target_name,
            "launched": iso(self.created),
            "terminated": status == "Terminated",
            "partitioned": False,
            "pendingSignoffs": 0 if now >= self.decided_at or not self.approvals else len(self.plan.ops),
            "messages": self.messages() if status else [],
        }
        if status:
            doc.update(completed=iso(self.done_at), verified=iso(self.done_at), completionStatus=status)
        doc["Attributes" if as_object else "attributes"] = self.attributes(as_object)
        doc["schemas"] = [TASK_RESULT]
        doc["meta"] = meta("TaskResult", f"{base}/TaskResults/{self.id}", self.created, min(now, self.done_at))
        return doc

    def launched(self, base: str, now: float, as_object: bool) -> dict[str, Any]:
        """The 201 answer and GET /LaunchedWorkflows/{id}: the TaskResult plus the extension, whose
        `workflowName` is the TaskResult's name and whose `input` is not echoed."""
        doc = self.task_result(base, now, as_object)
        summary = '<WorkflowSummary step="end"/>\n' if self.status(now) else '<WorkflowSummary step="approve"/>\n'
        extension: dict[str, Any] = {
            "workflowName": self.name,
            "identityRequestId": self.identity_request_id,
            "workflowCaseId": self.case_id,
            "retries": 0,
            "input": [{}],
            "output": [
                {"key": "identityRequestId", "value": self.identity_request_id},
                {"key": "workflowSummary", "type": "application/xml", "value": summary},
            ],
            "workflowSummary": summary,
        }
        approvals = self.approval_set(now)
        if approvals:
            extension["approvalSet"] = approvals
        doc[LAUNCHED_WORKFLOW] = extension
        doc["schemas"] = [LAUNCHED_WORKFLOW, TASK_RESULT]
        doc["meta"]["resourceType"] = "LaunchedWorkflow"
        return doc


def apply_op(directory: Directory, ident: Identity, op: PlanOp, when: float) -> None:
    """One operation on the identity; removing what is not held changes nothing. Leaver never
    asks for Add/Set/Retain, and the simulator leaves them without effect."""
    if op.account_level:
        account = ident.account(op.application, op.native)
        if account is not None:
            if op.op == "Disable" and account.disabled_at is None:
                account.disabled_at = when
            elif op.op == "Delete":
                account.deleted_at = when
            elif op.op == "Enable":
                account.disabled_at = None
        return
    if op.op not in REMOVES:
        return
    if op.application == IIQ_APP and op.name in ROLE_ATTRIBUTES:
        role = directory.role_named(op.value or "")
        if role is None:
            return
        if op.name == "detectedRoles":
            _deprovision(ident, set(role.profile), when)
            return
        held = [a for a in ident.assignments if a.role.id == role.id]
        chosen = next((a for a in held if a.assignment_id == op.assignment_id), None) if op.assignment_id else None
        chosen = chosen or (held[0] if held and not op.assignment_id else None)
        if chosen is None:
            return
        ident.assignments.remove(chosen)
        ident.modified = when
        # What only this assignment's required roles granted goes with it.
        kept = {e for a in ident.assignments for r in a.role.requirements for e in directory.roles[r].profile}
        granted = {e for r in role.requirements for e in directory.roles[r].profile}
        _deprovision(ident, granted - kept, when)
        return
    account = ident.account(op.application, op.native)
    ent = directory.entitlement_of(op.application, op.name or "", op.value or "")
    holding = account.held(ent.id) if account is not None and ent is not None else None
    if holding is not None:
        holding.removed_at = when


def _deprovision(ident: Identity, entitlement_ids: set[str], when: float) -> None:
    for account in ident.accounts:
        for holding in account.holdings:
            if holding.removed_at is None and holding.entitlement.id in entitlement_ids:
                holding.removed_at = when
