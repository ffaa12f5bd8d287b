"""`IiqSimulator`: the state of one simulated IdentityIQ (directory, launches, sign-in) and the
probes every shared test reads. The HTTP routes are in `app`."""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.simulator.base import Simulator, Submission, Withdrawal
from app.simulator.demo_users import DemoPerson, demo_people
from app.simulator.sailpoint_iiq.config import IiqConfig
from app.simulator.sailpoint_iiq.directory import Directory, Identity
from app.simulator.sailpoint_iiq.launches import REMOVES, ROLE_ATTRIBUTES, Launch
from app.simulator.sailpoint_iiq.plan import IIQ_APP, PlanError, PlanOp, parse_plan
from app.simulator.sailpoint_iiq.scim import LAUNCHED_WORKFLOW, ScimError, hex_id

SYSTEM = "sailpoint-iiq"
ROOT = "/identityiq"
SCIM = f"{ROOT}/scim/v2"
WORKFLOW = "LCM Provisioning"
#: The service account (Basic, and the OAuth client's proxy user) and a SCIM reader without the
#: right to launch workflows (contract A7: SCIMExecutor alone may not be enough).
SERVICE_USER, SERVICE_PASSWORD = "svc-leaver", "iiq-demo-password"
READER_USER, READER_PASSWORD = "scim-reader", "iiq-reader-password"
CLIENT_ID, CLIENT_SECRET = "leaver-oauth-client", "iiq-demo-client-secret"
LAUNCH_RIGHT = "WorkflowLauncher"


@dataclass
class Token:
    user: str
    expires_at: float


class IiqSimulator(Simulator):
    """One IdentityIQ; every public method expects `lock` to be held. Removals are recorded by
    the launch handler (`record`): which access item a plan's request names depends on what the
    identity held when it arrived."""

    endpoints = {
        "submit": ("POST", f"{SCIM}/LaunchedWorkflows"),
        "lookup": ("GET", f"{SCIM}/LaunchedWorkflows"),
        "status": ("GET", f"{SCIM}/TaskResults/*"),
        "withdraw": ("POST", f"{SCIM}/LaunchedWorkflows/*/terminate"),  # SCIM has none: never called
        "inventory": ("GET", f"{SCIM}/Users/*"),
        "search": ("GET", f"{SCIM}/Users"),
        "token": ("POST", f"{ROOT}/oauth2/token"),
        "any": (None, f"{SCIM}/*"),
    }
    users = {
        SERVICE_USER: (SERVICE_PASSWORD, {"SCIMExecutor", LAUNCH_RIGHT}),
        READER_USER: (READER_PASSWORD, {"SCIMExecutor"}),
    }
    clients = {CLIENT_ID: (CLIENT_SECRET, SERVICE_USER)}
    config_error_status = 400
    config: IiqConfig

    def __init__(self) -> None:
        super().__init__(SYSTEM)
        self.reset()

    # ---- control

    def reset(self) -> None:
        self.config = IiqConfig()
        self.tokens: dict[str, Token] = {}
        self.directory = Directory()
        self.launches: dict[str, Launch] = {}
        #: Every plan received, raw: {form, workflowName, inputs, plan, key, status}.
        self.plans: list[dict[str, Any]] = []
        self.seeded = self.clock.now() - 86400
        for person in demo_people():
            self.directory.add_person(person, self.seeded)

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # ---- probes

    def withdrawn(self) -> list[Withdrawal]:
        return []  # IIQ's SCIM API cannot terminate a launched workflow

    def user_id(self, username: str) -> str:
        ident = self.directory.identity_named(username)
        if ident is None:
            raise KeyError(username)
        return ident.id

    def add_people(self, people: list[DemoPerson]) -> None:
        for person in people:
            self.directory.add_person(person, self.clock.now() - 86400)

    @property
    def lag(self) -> float:
        return self.config.verify_delay

    def tick(self) -> float:
        """Provision every launch whose time has come; the current time."""
        now = self.clock.now()
        for launch in self.launches.values():
            launch.apply(self.directory, now)
        return now

    # ---- sign-in

    def issue_token(self, client_id: str, secret: str) -> dict[str, Any] | None:
        known = self.clients.get(client_id)
        if known is None or not hmac.compare_digest(known[0].encode(), secret.encode()):
            return None
        now = self.clock.now()
        for stale in [t for t, info in self.tokens.items() if info.expires_at <= now]:
            del self.tokens[stale]
        token = base64.b64encode(secrets.token_bytes(24)).decode()
        lifetime = self.config.token_lifetime
        self.tokens[token] = Token(known[1], now + lifetime)
        return {"expires_in": int(lifetime), "token_type": "bearer", "access_token": token}

    def authenticate(self, header: str | None) -> str:
        """The IIQ user a call runs as; 401 for missing, wrong or expired credentials."""
        scheme, _, value = (header or "").partition(" ")
        if scheme.casefold() == "bearer":
            token = self.tokens.get(value.strip())
            if token is not None and token.expires_at > self.clock.now():
                return token.user
        elif scheme.casefold() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            known = self.users.get(user)
            if known is not None and hmac.compare_digest(known[0].encode(), password.encode()):
                return user
        raise ScimError(401, "Unauthorized")

    def require(self, user: str, right: str) -> None:
        if right not in self.users.get(user, ("", set()))[1]:
            raise ScimError(403, f"User {user} does not have the right {right}")

    # ---- launches

    def launch(self, body: Any, launcher: str, base: str) -> dict[str, Any]:
        """POST /LaunchedWorkflows: validate as IIQ would, record what it acts on, run it. Every
        body is kept in `plans`, with the status it was answered."""
        record: dict[str, Any] = {"form": None, "workflowName": None, "inputs": None, "plan": None, "key": None}
        self.plans.append(record)
        try:
            answer = self._launch(body, launcher, base, record)
        except ScimError as exc:
            record["status"] = exc.status
            raise
        record["status"] = 201
        return answer

    def _launch(self, body: Any, launcher: str, base: str, record: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ScimError(400, "Request body must be a JSON object", "invalidSyntax")
        nested = body.get(LAUNCHED_WORKFLOW)
        form, data = ("nested", nested) if isinstance(nested, dict) else ("top-level", body)
        record["form"] = form
        if form not in self.config.accepted_forms or "workflowName" not in data:
            raise ScimError(400, "Required attribute workflowName is missing", "invalidValue")
        workflow, inputs = data.get("workflowName"), data.get("input") or []
        if (
            not isinstance(workflow, str)
            or not isinstance(inputs, list)
            or not all(isinstance(i, dict) for i in inputs)
        ):
            raise ScimError(400, "workflowName must be a string and input a list of key/value objects", "invalidSyntax")
        values = {str(i.get("key")): i for i in inputs}
        record.update(form=form, workflowName=workflow, inputs=inputs)
        if workflow != WORKFLOW:
            raise ScimError(500, f"sailpoint.tools.GeneralException: Unable to find workflow: {workflow}")
        for name in ("identityName", "plan"):
            if not values.get(name, {}).get("value"):
                raise ScimError(400, f"Missing required input: {name}", "invalidValue")
        plan_input = values["plan"]
        record["plan"] = plan_xml = str(plan_input["value"])
        if plan_input.get("type") != "application/xml":
            raise ScimError(400, "Input plan must have type application/xml", "invalidValue")
        try:
            plan = parse_plan(plan_xml)
        except PlanError as exc:
            status = self.config.malformed_plan_status if exc.malformed else 400
            raise ScimError(status, str(exc), "invalidSyntax" if status == 400 else None) from None
        key = plan.attributes.get("leaverCorrelationId") or str(
            values.get("leaverCorrelationId", {}).get("value") or ""
        )
        record["key"] = key or None
        ident = self.directory.identity_named(str(values["identityName"]["value"]))
        scheme = str(values.get("approvalScheme", {}).get("value") or "manager")  # LCM Provisioning's default
        foreground = str(values.get("foregroundProvisioning", {}).get("value")).casefold() == "true"
        cfg, now = self.config, self.clock.now()
        approvals = scheme != "none" or cfg.approval_delay > 0 or cfg.outcome == "rejected"
        approval_wait = cfg.approval_delay if approvals else 0.0
        # Background provisioning, or provisioning resumed after an approval, keeps the TaskResult
        # running; a foreground launch answers complete and the change lands `fulfil_delay` later.
        waits = not foreground or approval_wait > 0
        number = len(self.launches) + 4711
        launch = Launch(
            id=secrets.token_hex(16),
            number=number,
            case_id=hex_id("workflowcase", str(number), str(now)),
            identity=ident,
            target_name=str(values.get("targetName", values["identityName"]).get("value")),
            launcher=launcher,
            workflow=workflow,
            form=form,
            inputs=inputs,
            plan_xml=plan_xml,
            plan=plan,
            created=now,
            outcome=cfg.outcome if ident is not None else "failed",
            approvals=approvals,
            approval_wait=approval_wait,
            provisioning_wait=cfg.fulfil_delay if waits else 0.0,
            effect_wait=0.0 if waits else cfg.fulfil_delay,
            fail_items=list(cfg.fail_items),
        )
        if ident is not None:
            launch.item_of = self._items(ident, plan.ops)
            self.record(
                [Submission(time.time(), ident.id, item, key or None, None) for item in launch.item_of.values()]
            )
        self.launches[launch.id] = launch
        launch.apply(self.directory, now)
        return launch.launched(base, now, cfg.attributes_as_object)

    def _items(self, ident: Identity, ops: list[PlanOp]) -> dict[PlanOp, str]:
        """The access item each removal names, in the adapter's terms (its item IDs)."""
        out: dict[PlanOp, str] = {}
        occurrences: dict[str, int] = {}
        for op in ops:
            if op.account_level:
                if op.op in ("Disable", "Delete"):
                    account = ident.account(op.application, op.native)
                    out[op] = account.id if account else f"account:{op.application}:{op.native}"
                continue
            if op.op not in REMOVES:
                continue
            if op.application == IIQ_APP and op.name in ROLE_ATTRIBUTES:
                role = self.directory.role_named(op.value or "")
                if role is None:
                    out[op] = f"role:{op.value}"
                    continue
                occurrences[role.id] = occurrences.get(role.id, 0) + 1
                held = sum(1 for a in ident.assignments if a.role.id == role.id)
                if op.name == "assignedRoles" and held > 1:
                    suffix = op.assignment_id if op.assignment_id and self.config.expose_assignment_ids else None
                    out[op] = f"{role.id}~{suffix or occurrences[role.id]}"
                else:
                    out[op] = role.id
                continue
            ent = self.directory.entitlement_of(op.application, op.name or "", op.value or "")
            out[op] = ent.id if ent else f"{op.application}|{op.value}|{op.native}"
        return out

    def launch_of(self, launch_id: str, now: float) -> Launch:
        """A launch by its TaskResult id; 404 once Perform Maintenance pruned it."""
        launch = self.launches.get(launch_id)
        prune = self.config.prune_after
        if launch is None or (prune is not None and launch.done(now) and now >= launch.done_at + prune):
            raise ScimError(404, f"Resource {launch_id} not found")
        return launch

    def identity(self, key: str, by_name: bool) -> Identity:
        ident = self.directory.identity_named(key) if by_name else self.directory.identities.get(key)
        if ident is None:
            raise ScimError(404, f"Resource {key} not found")
        return ident

    def account_fields(self) -> Mapping[str, Any]:
        """Filterable Account attributes (contract §3)."""
        return {
            "nativeIdentity": lambda d: [d.get("nativeIdentity")],
            "displayName": lambda d: [d.get("displayName")],
            "application.value": lambda d: [d["application"]["value"]],
            "application": lambda d: [d["application"]["value"]],
            "identity": lambda d: [d["identity"]["value"]],
            "identity.value": lambda d: [d["identity"]["value"]],
        }

    def refuse_unsupported(self, text: str, names: tuple[str, ...]) -> None:
        """400 invalidFilter for a filter on an attribute this site cannot filter on ([A4] switches)."""
        if any(f"{name} " in text for name in names):
            raise ScimError(400, f"Invalid filter: {text}", "invalidFilter")
