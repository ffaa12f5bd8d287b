"""The simulator's `/_config`: the keys every simulator shares (`app.simulator.base.SimConfig`),
with IdentityIQ's defaults, then one switch per assumption of the contract, so a test can make it
behave like a site that differs."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from app.simulator.base import OUTCOMES, SimConfig

Form = Literal["nested", "top-level"]


class IiqConfig(SimConfig):
    """`POST /_config` (partial updates; unknown keys refused).

    The shared keys, as IIQ reads them: `approval_delay` is how long a launch waits on approval
    work items (0: none are made unless the caller's approvalScheme asks for them, or the outcome
    is a rejection); `fulfil_delay` is the connector's time: a launch provisioning in the background
    or after an approval runs that much longer, while a foreground launch with no approval wait
    answers complete and its change lands that much later (a connector that queues; IIQ's default
    is 0: the change is made inside the call); `verify_delay` is how long a removed
    entitlement or disabled account stays listed (a connector that queues); `token_lifetime` is
    the OAuth2 `expires_in` (1200); `page_size_max` is `filter.maxResults` (1000)."""

    #: Besides the shared outcomes: `warning` (applied, with messages) and `temp_error`.
    outcomes: ClassVar[tuple[str, ...]] = (*OUTCOMES, "warning", "temp_error")

    fulfil_delay: float = Field(0.0, ge=0)
    verify_delay: float = Field(0.0, ge=0)
    token_lifetime: float = Field(1200.0, gt=0)
    page_size_max: int = Field(1000, ge=1, le=1000)

    #: Body forms of POST /LaunchedWorkflows this site reads (the other is refused with 400).
    accepted_forms: list[Form] = Field(default_factory=lambda: list[Form](["nested", "top-level"]), min_length=1)
    #: Filters on LaunchedWorkflows `targetName`, `launcher`, `launched`, and Accounts
    #: `identity.value` are [A4]: off, they answer 400 invalidFilter.
    launch_filters: bool = True
    account_owner_filter: bool = True
    #: The answer's TaskResult attributes: an array of {key, value} (real), or the spec's object.
    attributes_as_object: bool = False
    #: Status of a plan that is not well-formed XML or not a plan ([A6]: 400 or 500).
    malformed_plan_status: Literal[400, 500] = 400
    #: Provisioning of these items fails (entitlement value, role name, account nativeIdentity,
    #: or resource id); the launch ends Error with a message per item, the rest is applied.
    fail_items: list[str] = Field(default_factory=list)
    #: TaskResults are pruned (404) this many seconds after they complete.
    prune_after: float | None = Field(None, ge=0)
    #: Role entries carry `assignmentId` (a site that added it to its SCIM mapping).
    expose_assignment_ids: bool = False
