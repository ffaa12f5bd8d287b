"""`SailPointIiqOptions`: every value the IdentityIQ contract marks assumed [A], and every site
choice, in one place: `target.options` for system `sailpoint-iiq`. Unknown names are refused at start."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: SCIM `count` ceiling: IIQ's `filter.maxResults` in ServiceProviderConfig (1000 unless changed).
MAX_PAGE = 1000

Lookup = Literal["employee_id", "username", "dn", "email"]
#: Employee number and username first: an email address can be shared (and then is ambiguous).
DEFAULT_ORDER: tuple[Lookup, ...] = ("employee_id", "username", "dn", "email")


class SailPointIiqOptions(BaseModel):
    """`target.options` for sailpoint-iiq. Defaults follow `backends/sailpoint-iiq.md`."""

    model_config = ConfigDict(extra="forbid")

    # ---- sign-in
    #: `auto`: OAuth2 client credentials when the target has `client_id`, else Basic.
    auth: Literal["auto", "basic", "oauth2"] = "auto"

    # ---- finding the identity (§3)
    #: Identifiers tried in this order; the first that names exactly one identity wins.
    lookup_order: list[Lookup] = Field(default_factory=lambda: list(DEFAULT_ORDER))
    #: The SailPoint User extension attribute holding the employee number (site-specific, [A]).
    employee_id_attribute: str = Field("empId", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: Only accounts of this application (its `application.value`) count for a DN lookup.
    dn_application_id: str | None = None

    # ---- access (§4)
    #: The Accounts filter attribute naming the owner (`identity.value` is [A]).
    account_owner_attribute: str = Field("identity.value", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    #: SCIM `count` per page of `/Accounts` and `/LaunchedWorkflows`.
    page_size: int = Field(MAX_PAGE, ge=1, le=MAX_PAGE)
    #: List the identity's active accounts as items, so a policy can disable (or delete) them.
    list_accounts: bool = True
    #: What removing an account item does (§5: Disable or Delete, never both with a Modify).
    account_op: Literal["Disable", "Delete"] = "Disable"
    #: Entitlement and role classifications that make an item privileged ([A]).
    privileged_classifications: list[str] = Field(default_factory=lambda: ["Privileged"])

    # ---- removal (§5)
    workflow_name: str = Field("LCM Provisioning", min_length=1)
    #: Where `workflowName` and `input` sit: inside the LaunchedWorkflow extension or at the top.
    body_form: Literal["nested", "top-level"] = "nested"
    #: After a 400 to the first launches, try the other form once (nothing was launched, [A]).
    body_form_fallback: bool = True
    approval_scheme: str = Field("none", min_length=1)
    notification_scheme: str = Field("none", min_length=1)
    policy_scheme: str = Field("none", min_length=1)
    #: `true`: IIQ provisions inside the call, so the 201 usually reports the outcome already.
    foreground_provisioning: bool = True
    flow: str = Field("AccessRequest", min_length=1)
    #: The plan's and the launch's `source` ([A]: alternatives WebService, Workflow).
    source: str = Field("LCM", min_length=1)
    #: The IIQ identity launches run as (Basic user or the OAuth client's proxy user); default:
    #: the target's `username`. Needed to recognise our own running launches.
    launcher: str | None = None
    #: Items per launch; large foreground plans are slow ([A9]).
    batch_max: int = Field(50, ge=1, le=500)

    # ---- tracking (§6)
    #: On `Success`, read the launch's approvalSet, so a rejected approval is reported as such.
    check_approvals: bool = True
    #: The single-launch path: `/LaunchedWorkflow/{id}` in the 8.3 spec, plural in 9.0.
    launched_workflow_path: str = Field("/LaunchedWorkflow/{id}", pattern=r"^/\S*\{id\}\S*$")

    # ---- recovery (§7)
    #: After an interrupted launch, look for our own launches of the identity still running
    #: (`targetName`/`launcher` filters are [A]; a 400 switches this off for the process).
    find_running_launches: bool = True
    #: Only launches this recent count as candidates.
    running_launch_window_hours: float = Field(24.0, gt=0)
