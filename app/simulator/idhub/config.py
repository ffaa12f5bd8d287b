"""The simulator's `/_config`: the keys every simulator shares (`app.simulator.base.SimConfig`)
with IDHub's defaults, then one switch per assumption of the IDHub contract, so a test can make the
simulator behave like a tenant that differs and show that the matching adapter option repairs it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from app.simulator.base import SimConfig

Outcome = Literal["completed", "rejected", "failed", "cancelled"]
TENANT = "demo"
#: The realm whose tokens the API accepts when `require_token_exchange` is on.
EXCHANGE_REALM = "IDHUB"
#: Token endpoint (Keycloak pattern, contract §2); any realm, the exchange realm included.
TOKEN_ROUTE = "POST /auth/realms/{realm}/protocol/openid-connect/token"
#: The API as the contract assumes it (§10); `routes` in the config replaces any of them.
ROUTES: dict[str, str] = {
    "catalog_search": "GET /api/v1/request/search",
    "request_by_id": "GET /api/v1/request/{id}",
    "requests_by_type": "GET /api/v1/request",
    "cart_create": "POST /api/v1/request/cart",
    "cart_submit": "POST /api/v1/request/cart/submit",
    "tasks": "GET /api/v1/task",
    "task_action": "POST /api/v1/task/{id}/{action}",
    "user_accounts": "GET /api/v1/user/account",
}
RESOLUTIONS: dict[str, str] = {
    "completed": "Success",
    "rejected": "Rejected",
    "failed": "Failed",
    "cancelled": "cancelled",
}


class IdHubConfig(SimConfig):
    """`POST /_config` (partial updates; unknown keys refused). IDHub switches default to the
    contract's assumptions."""

    #: The shared keys, as IDHub reads them: `approval_delay` is how long a request waits with an
    #: open ApprovalTask; `verify_delay` how long a completed removal stays visible (none by
    #: default); the token lifetime is Keycloak's 300 s; RESTHeart takes `pagesize` up to 1000.
    outcome: Outcome = "completed"
    verify_delay: float = Field(0.0, ge=0)
    page_size_max: int = Field(1000, ge=1, le=1000)

    #: The tenant every API call must name, and the header that names it (missing: 400, other: 403).
    tenant: str = TENANT
    tenant_header: str = "tenant"
    #: Replacements for entries of `ROUTES` ("METHOD /path"), as another tenant's OpenAPI file would say.
    routes: dict[str, str] = Field(default_factory=dict)
    #: The beneficiary `type` that means revoke, and the listing `filter` that finds those requests.
    revoke_type: str = "revoke"
    #: Submit refuses a cart without its `_etag` (409) or with a stale one (412); create then
    #: answers the etag (body `_etag` and `ETag` header).
    require_etag: bool = False
    #: Catalog `keyword` matches display names only (the documented behaviour); off, it also
    #: matches logins and emails.
    strict_keyword: bool = False
    #: Listing order (RESTHeart's default `_id` descending) and the name of its page parameter.
    newest_first: bool = True
    page_param: str = "page"
    #: Submitted requests are listed and fetchable only this many seconds later (asynchronous creation).
    request_lag: float = Field(0.0, ge=0)
    #: Requests carry the submit's `correlationId` instead of a fresh 32-hex one.
    request_correlation_is_submit_id: bool = False
    #: A rejection as status `Request Rejected`, or as `Request Completed` with a rejecting resolution.
    rejected_as: Literal["status", "resolution"] = "status"
    #: The resolution word of each outcome.
    resolutions: dict[str, str] = Field(default_factory=lambda: dict(RESOLUTIONS))
    #: Outcome per entity id, overriding `outcome` for that item.
    item_outcomes: dict[str, Outcome] = Field(default_factory=dict)
    #: A completed revoke leaves the access in place ("completed but still held").
    still_held: bool = False
    #: The API accepts only tokens from an RFC 8693 exchange at the `IDHUB` realm.
    require_token_exchange: bool = False

    @field_validator("routes")
    @classmethod
    def _known_routes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, route in value.items():
            if name not in ROUTES:
                raise ValueError(f"unknown route {name!r}; known: {', '.join(ROUTES)}")
            if not re.fullmatch(r"(GET|POST|PUT|PATCH|DELETE) /\S*", route):
                raise ValueError(f"route {name!r}: expected 'METHOD /path', got {route!r}")
        return value

    def route(self, name: str) -> tuple[str, str]:
        method, path = self.routes.get(name, ROUTES[name]).split(" ", 1)
        return method, path
