"""ISC's wire: the API's constants and credentials, its ID and time formats, the error bodies
(ErrorResponseDto, the gateway's 401 and 429), paging, the synchronous checks of an access
request, and the removals an access request carries."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from app.simulator.base import LogEntry, Paging, SimError, Submission

SYSTEM = "sailpoint-isc"
API_VERSIONS = ("v3", "v2024", "v2025", "v2026")

#: Client credentials of a personal access token owned by an ORG_ADMIN service identity.
PAT_CLIENT_ID = "5d6f3b0c9a1e4f7b8c2d4e6f8a0b1c3d"
PAT_CLIENT_SECRET = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d"
#: Client credentials of an API client (no user behind it: authority API, may not request access).
API_CLIENT_ID = "0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d"
API_CLIENT_SECRET = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"

#: Adapter options that make it ask for pages of 3 (used by the shared contract suite).
CONTRACT_SMALL_PAGES = {"search_page_size": 3, "status_page_size": 3}

TENANT = "example"
POD = "stg01-useast1"
LIST_LIMIT_MAX = 250
SEARCH_LIMIT_MAX = 10000
RATE_WINDOW = 10.0

TERMINAL = frozenset(
    {
        "REQUEST_COMPLETED",
        "NOT_ALL_ITEMS_PROVISIONED",
        "PROVISIONING_FAILED",
        "ERROR",
        "REJECTED",
        "CANCELLED",
        "TERMINATED",
    }
)
FINAL_STATE = {
    "completed": "REQUEST_COMPLETED",
    "failed": "PROVISIONING_FAILED",
    "error": "ERROR",
    "not_all_items_provisioned": "NOT_ALL_ITEMS_PROVISIONED",
    "terminated": "TERMINATED",
}
ITEM_TYPES = ("ROLE", "ACCESS_PROFILE", "ENTITLEMENT")
NULLABLE_REFS = frozenset(
    {"cancelledRequestDetails", "provisioningDetails", "preApprovalTriggerDetails", "sodViolationContext"}
)
DETAIL_CODES = {
    400: (
        "400.1 Bad Request Content",
        "The request was syntactically correct but its content is semantically invalid.",
    ),
    403: ("403 Forbidden", "The server understood the request but refuses to authorize it."),
    404: ("404 Not found", "The server did not find a current representation for the target resource."),
    405: ("405 Method Not Allowed", "The request method is not supported for the target resource."),
    500: ("500.0 Internal Fault", "An internal fault occurred."),
    503: ("503 Service Unavailable", "The service is temporarily unavailable."),
}


def hex_id(*parts: str) -> str:
    """A stable 32-hex lowercase ID, as ISC uses for every object."""
    return hashlib.md5("|".join(parts).encode()).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


def iso(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def signed_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def error_body(status: int, cause: str | None = None) -> dict[str, Any]:
    """ISC's error body for `status` (§8): ErrorResponseDto, or the gateway's 401/429 shapes."""
    if status == 401:
        return {"error": cause or "JWT validation failed: JWT is invalid"}
    if status == 429:
        return {"message": " Rate Limit Exceeded "}
    code, text = DETAIL_CODES.get(status, (f"{status} Error", "The request failed."))
    causes = [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": cause}] if cause else []
    return {
        "detailCode": code,
        "trackingId": new_id(),
        "messages": [{"locale": "en-US", "localeOrigin": "DEFAULT", "text": text}],
        "causes": causes,
    }


class IscError(SimError):
    """Raised by a route; rendered with `error_body`."""

    def __init__(self, status: int, cause: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, cause, headers)


def bad(cause: str) -> IscError:
    return IscError(400, cause)


_CREATED = re.compile(r'\bcreated\s+(?:eq|ne|gt|ge|lt|le)\s+(")?')


def check_date_form(flt: str, form: str) -> None:
    """A `created` comparison in the date form the tenant does not take is a 400 (which form
    the real endpoint takes is undocumented: `created_date_form` picks)."""
    for m in _CREATED.finditer(flt):
        quoted = m.group(1) is not None
        if form != "both" and quoted != (form == "quoted"):
            shape = "a quoted" if quoted else "an unquoted"
            raise bad(f"filter 'created' does not accept {shape} date-time")


#: `offset` and `limit` (at most 250 on lists; the search takes up to 10000).
PAGING = Paging("offset", "limit", default=LIST_LIMIT_MAX, maximum=LIST_LIMIT_MAX, refuse=bad)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise bad("A request body is required")
    try:
        return json.loads(raw)
    except ValueError:
        raise bad("The request body is not valid JSON") from None


STATUS_FILTERS = {
    "accessRequestId": {"eq", "ne", "in", "sw", "gt", "ge", "lt", "le"},
    "accountActivityItemId": {"eq", "in", "ne", "sw", "gt", "ge", "le"},
    "created": {"eq", "ne", "gt", "ge", "lt", "le"},
}
STATUS_SORTERS = {"created", "modified", "accountActivityItemId", "name"}
ACCOUNT_FILTERS = {
    "id": {"eq", "in", "sw"},
    "identityId": {"eq", "in", "sw"},
    "name": {"eq", "in", "sw"},
    "nativeIdentity": {"eq", "in", "sw"},
    "sourceId": {"eq", "in", "sw"},
}
ACCOUNT_SORTERS = {"id", "name", "created", "modified", "sourceId", "identityId", "nativeIdentity"}


ADMIN = {"type": "IDENTITY", "id": hex_id("identity", "svc-leaver"), "name": "svc-leaver"}
APPROVER = {"type": "IDENTITY", "id": hex_id("identity", "approver"), "name": "Access Approver"}
OWNER = {"id": hex_id("identity", "owner"), "name": "catalog.owner", "displayName": "Catalog Owner"}


def validate_access_request(body: Any, now: float) -> list[dict[str, Any]]:
    """The synchronous checks ISC makes on `POST /access-requests`; each failure is a 400."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object")
    kind = body.get("requestType") or "GRANT_ACCESS"
    if kind not in ("GRANT_ACCESS", "REVOKE_ACCESS", "MODIFY_ACCESS"):
        raise bad(f"Unknown requestType '{kind}'")
    targets = body.get("requestedFor")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise bad("requestedFor is required and must list identity IDs")
    items = body.get("requestedItems")
    if not isinstance(items, list) or not items:
        raise bad("requestedItems is required and must not be empty")
    for item in items:
        if not isinstance(item, dict) or item.get("type") not in ITEM_TYPES or not isinstance(item.get("id"), str):
            raise bad("each requested item needs a type (ROLE, ACCESS_PROFILE, ENTITLEMENT) and an id")
        meta = item.get("clientMetadata")
        if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
            raise bad("clientMetadata must map strings to strings")
    if kind != "REVOKE_ACCESS":
        raise bad(f"{kind} is not simulated; this simulator handles REVOKE_ACCESS")
    if len(targets) != 1:
        raise bad("REVOKE_ACCESS can only be requested for a single identity")
    if body.get("requestedForWithRequestedItems"):
        raise bad("requestedForWithRequestedItems is not supported for REVOKE_ACCESS")
    if sum(1 for i in items if i["type"] == "ENTITLEMENT") > 1:
        raise bad("Revoke requests for entitlements are limited to 1 entitlement per access request")
    if len({(i["type"], i["id"]) for i in items}) != len(items):
        raise bad("requestedItems lists the same item twice")
    for item in items:
        if not isinstance(item.get("comment"), str) or not item["comment"].strip():
            raise bad("Comment is required for REVOKE_ACCESS requests")
        if item.get("startDate") is not None:
            raise bad("startDate cannot be specified in a REVOKE_ACCESS request")
        if item.get("removeDate") is not None:
            try:
                when = parse_time(str(item["removeDate"]))
            except ValueError:
                raise bad(f"removeDate '{item['removeDate']}' is not an ISO-8601 date-time") from None
            if when <= now:
                raise bad("removeDate must be in the future")
    return items


def submissions(entry: LogEntry) -> list[Submission]:
    """The removals one accepted `POST /access-requests` carried: one per requested item, for the
    one identity, under leaver's key in the request's `clientMetadata`."""
    body = entry.body if isinstance(entry.body, dict) else {}
    meta = body.get("clientMetadata") or {}
    key = str(meta["leaverKey"]) if isinstance(meta, dict) and "leaverKey" in meta else None
    identity = str((body.get("requestedFor") or [""])[0])
    items = [i for i in body.get("requestedItems") or [] if isinstance(i, dict)]
    return [Submission(entry.at, identity, str(i.get("id")), key, None) for i in items]
