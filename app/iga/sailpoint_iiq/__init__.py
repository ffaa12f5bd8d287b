"""SailPoint IdentityIQ 8.x adapter over its SCIM 2.0 API (contract `backends/sailpoint-iiq.md`).

Identities are found with SCIM filters on `/Users` (or by their directory account on `/Accounts`),
access is read from the SailPoint User extension (roles and entitlements) and `/Accounts`, and
removals are one launch of the `LCM Provisioning` workflow per batch, carrying a ProvisioningPlan,
tracked through `GET /TaskResults/{id}`.

`RequestRef.tracking_id` is `"<TaskResult id>:<item id>"`: the launch to poll and the item;
`request_id` is the identity request number (the "Access Request" shown in IIQ's UI).

The package: `options` (every assumed value), `plan` (plan XML and launch body), `wire` (SCIM
JSON to and from the domain), `reader` (identity lookup and access listing), `client` (the calls).
"""

from app.iga.sailpoint_iiq.client import MAX_CONCURRENCY, REQUESTS_PER_SECOND, SYSTEM, SailPointIiqClient
from app.iga.sailpoint_iiq.options import DEFAULT_ORDER, MAX_PAGE, Lookup, SailPointIiqOptions
from app.iga.sailpoint_iiq.wire import STATES, task_state

__all__ = [
    "DEFAULT_ORDER",
    "MAX_CONCURRENCY",
    "MAX_PAGE",
    "REQUESTS_PER_SECOND",
    "STATES",
    "SYSTEM",
    "Lookup",
    "SailPointIiqClient",
    "SailPointIiqOptions",
    "task_state",
]
