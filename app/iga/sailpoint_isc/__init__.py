"""SailPoint Identity Security Cloud (IdentityNow) adapter, API v3 (contract `backends/sailpoint-isc.md`).

Users are found with the search API, access is read from the identity's search document, and
removals are REVOKE_ACCESS access requests tracked through `access-request-status`. Each request
carries the correlation key in `clientMetadata`, which ISC echoes on every status row: that is
how an interrupted submission is found again instead of being sent twice.

`RequestRef.tracking_id` is `"<accessRequestId>:<TYPE>:<item id>"`: the request to poll and the
item whose row to read from it (rows carry our `leaverItem` metadata; see `wire.pick_row`).

The package: `options` (the knobs), `wire` (ISC's JSON to and from the domain), `client` (the calls).
"""

from app.iga.sailpoint_isc.client import REQUESTS_PER_SECOND, SYSTEM, TOKEN_RENEW_EARLY, SailPointIscClient
from app.iga.sailpoint_isc.options import DEFAULT_ORDER, LIST_LIMIT_MAX, SEARCH_WINDOW, Lookup, SailPointIscOptions
from app.iga.sailpoint_isc.wire import ISC_TYPES, LEAVER_TYPES, STATES

__all__ = [
    "DEFAULT_ORDER",
    "ISC_TYPES",
    "LEAVER_TYPES",
    "LIST_LIMIT_MAX",
    "REQUESTS_PER_SECOND",
    "SEARCH_WINDOW",
    "STATES",
    "SYSTEM",
    "TOKEN_RENEW_EARLY",
    "Lookup",
    "SailPointIscClient",
    "SailPointIscOptions",
]
