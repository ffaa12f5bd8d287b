"""Every IDHub value leaver had to assume, in one place: `target.options` for system `idhub`.

IDHub's public API document prints bodies and fields but no paths or methods, so every route,
the tenant header, the revoke type and the paging parameters default to the contract's
assumptions (`backends/idhub.md` §10) and can be corrected per target from the tenant's own
OpenAPI file, without a code change. Unknown option names are refused at start.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

ROUTE_PATTERN = r"^(GET|POST|PUT|PATCH|DELETE) /\S*$"
Outcome = Literal["completed", "cancelled", "rejected", "failed"]

#: Contract §6: `Success` and `cancelled` are confirmed; `Rejected`, `Failed`, `Withdrawn` assumed.
DEFAULT_RESOLUTIONS: dict[str, Outcome] = {
    "success": "completed",
    "cancelled": "cancelled",
    "withdrawn": "cancelled",
    "rejected": "rejected",
    "failed": "failed",
}
DEFAULT_STATUSES: dict[str, Outcome] = {"request rejected": "rejected", "request failed": "failed"}


class Route(BaseModel):
    """One call: HTTP method and path relative to `base_url` (`{id}` is filled in where used)."""

    model_config = ConfigDict(frozen=True)

    method: str
    path: str

    @classmethod
    def parse(cls, value: str) -> Route:
        if not re.fullmatch(ROUTE_PATTERN, value):
            raise ValueError(f"{value!r}: expected 'METHOD /path', e.g. 'POST /api/v1/request/cart'")
        method, path = value.split(" ", 1)
        return cls(method=method, path=path)


class IdHubRoutes(BaseModel):
    """The calls the adapter makes, each `"METHOD /path"` (contract §10, all assumed). `{id}` in
    `request_by_id` is the request's `_id`; `{cart}` in `cart_submit`, if present, the cart's id
    (the create answer's `correlationId`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    catalog_search: str = "GET /api/v1/request/search"
    user_accounts: str = "GET /api/v1/user/account"
    cart_create: str = "POST /api/v1/request/cart"
    cart_submit: str = "POST /api/v1/request/cart/submit"
    requests_by_type: str = "GET /api/v1/request"
    request_by_id: str = "GET /api/v1/request/{id}"

    @field_validator("*")
    @classmethod
    def _route(cls, value: str, info: ValidationInfo) -> str:
        Route.parse(value)
        if info.field_name == "request_by_id" and "{id}" not in value:
            raise ValueError("request_by_id needs an {id} placeholder in its path")
        return value

    def get(self, name: str) -> Route:
        return Route.parse(str(getattr(self, name)))


class Requester(BaseModel):
    """The IDHub service user leaver submits as (contract §2): carts name it as requester and owner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    login: str = Field(min_length=1)
    employee_number: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    #: The service user's User `_id` (24 hex): the cart `owner` is `User/<user_id>`.
    user_id: str = Field(pattern=r"^[0-9a-fA-F]{24}$")


class TokenExchange(BaseModel):
    """RFC 8693 exchange of the tenant-realm token for one the API accepts (contract §2: Sath's
    connectors exchange for an "IDHUB realm" token; off unless the API refuses the direct one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://")
    audience: str | None = None
    #: Client of the exchange, when it is not the target's `client_id` / `client_secret`.
    client_id: str | None = None


class IdHubOptions(BaseModel):
    """`target.options` for idhub. Each default is the contract's assumption (marked [A] in
    docs/idhub.md) or a tenant-specific choice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The tenant ID sent on every API call (e.g. `vc3`), and the header that carries it [A].
    tenant: str = Field(min_length=1)
    tenant_header: str = Field("tenant", pattern=r"^[A-Za-z0-9-]+$")
    requester: Requester
    routes: IdHubRoutes = Field(default_factory=IdHubRoutes)

    #: Keycloak realm of the default token URL (`{base_url}/auth/realms/<realm>/protocol/openid-connect/token`),
    #: used when the target has no `token_url`; default: the tenant [A].
    realm: str | None = None
    token_scope: str | None = None
    token_exchange: TokenExchange | None = None

    #: Beneficiary `type` of a removal, and the `filter` of the request listing [A].
    revoke_type: str = Field("revoke", min_length=1)
    #: Cart `entityType` per leaver item type [A for entitlements].
    entity_type_role: str = "Role"
    entity_type_application: str = "TargetSystem"
    entity_type_entitlement: str = "Entitlement"
    #: Submit with the cart's `_etag` (read from the create answer's `_etag` or `ETag`) [A: not needed].
    send_etag: bool = False
    #: Key inside the submitted `_etag` object: the seed's sample writes `oid`, RESTHeart `$oid`.
    etag_key: Literal["oid", "$oid"] = "oid"
    #: Items per cart (one beneficiary per cart) [A].
    batch_size: int = Field(20, ge=1, le=500)

    #: Request listing: page size, the page parameter and its first value, and the order [A].
    page_size: int = Field(100, ge=1, le=1000)
    page_param: str = Field("page", pattern=r"^[A-Za-z0-9_]+$")
    first_page: int = Field(1, ge=0)
    newest_first: bool = True
    lookup_max_pages: int = Field(50, ge=1)
    #: How far back `find_existing` looks, and the clock skew allowed around a submit.
    lookup_window_seconds: float = Field(7 * 86400.0, gt=0)
    clock_skew_seconds: float = Field(3600.0, ge=0)
    #: After a submit, looks for its requests (creation may be asynchronous) [A: 6 tries, 5 s apart].
    resolve_attempts: int = Field(6, ge=1, le=60)
    resolve_interval_seconds: float = Field(5.0, ge=0)
    #: Also require a request's `correlationId` to equal the submit's (off: the formats differ).
    match_submit_correlation_id: bool = False

    #: Inventory: `riskLevel` values that mark privileged access [A], the `provisionMechanism`
    #: values meaning "granted by a role", and whether a role with rule conditions is birthright [A].
    privileged_risk_levels: tuple[str, ...] = ("high",)
    role_mechanisms: tuple[str, ...] = ("Role",)
    birthright_rule: bool = True
    #: Applications as items: accounts without entitlements only (revoking an account takes every
    #: entitlement on it, whatever the policy decided for them), every account, or none.
    application_items: Literal["account_only", "all", "none"] = "account_only"
    #: When keyword searches cannot name the user (employee number, strict keyword matching),
    #: search with an empty keyword (every user) and match exactly.
    scan_users: bool = True

    #: Status mapping (contract §6), applied case-insensitively in this order [A for the
    #: resolutions Rejected, Failed, Withdrawn].
    resolution_map: dict[str, Outcome] = Field(default_factory=lambda: dict(DEFAULT_RESOLUTIONS))
    status_map: dict[str, Outcome] = Field(default_factory=lambda: dict(DEFAULT_STATUSES))
    #: Statuses (prefixes) that end a request; without a known resolution it counts as completed
    #: and the verify step decides.
    completed_status_prefixes: tuple[str, ...] = ("complete", "request complete")

    @field_validator("resolution_map", "status_map")
    @classmethod
    def _lower_keys(cls, value: dict[str, Outcome]) -> dict[str, Outcome]:
        return {k.casefold(): v for k, v in value.items()}

    @field_validator("privileged_risk_levels", "completed_status_prefixes")
    @classmethod
    def _lower_items(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.casefold() for v in value)

    def entity_type(self, item_type: str) -> str | None:
        """The cart `entityType` for a leaver item type; None for types IDHub has no request for."""
        return {
            "role": self.entity_type_role,
            "application": self.entity_type_application,
            "account": self.entity_type_application,
            "entitlement": self.entity_type_entitlement,
        }.get(item_type)
