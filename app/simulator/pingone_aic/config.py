"""The simulator's `/_config`: the keys every simulator shares, then one switch per assumption of
the PingOne AIC contract (`backends/pingone-aic.md` §10), so a test can make the simulator behave
like a tenant that differs and show what the adapter does about it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: What becomes of a removal request: the shared outcomes, then AIC's own scenarios (§9.5).
Outcome = Literal["completed", "rejected", "failed", "cancelled", "stuck", "suspended"]
SCOPES = ("fr:am:*", "fr:idm:*", "fr:iga:*")
#: The largest useful page (`_pageSize`) of the IGA and IDM APIs (contract §8).
PAGE_MAX = 10000


class SimConfig(BaseModel):
    """`POST /_config` (partial updates; unknown keys refused). Switches default to the contract."""

    model_config = ConfigDict(extra="forbid")

    #: Seconds until a request is decided (by the auto-approval of `context.type: admin`, or by an
    #: owner), from approval to provisioned, and that a removed grant still lists.
    approval_delay: float = Field(0.0, ge=0)
    fulfil_delay: float = Field(1.0, ge=0)
    verify_delay: float = Field(0.0, ge=0)
    outcome: Outcome = "completed"
    #: Per request item id (`entitlementId`, `roleId`, `applicationId`), overriding `outcome`.
    item_outcomes: dict[str, Outcome] = Field(default_factory=dict)
    #: Access token lifetime, seconds (A1: about 899, the service account's 15-minute session).
    token_lifetime: float = Field(899.0, gt=0)
    #: The largest `_pageSize` the APIs take; a larger one is refused with 400.
    page_size_max: int = Field(PAGE_MAX, ge=1, le=PAGE_MAX)

    #: The scopes the service account was given (the console's checkboxes).
    service_account_scopes: list[str] = Field(default_factory=lambda: list(SCOPES))
    #: Mode B (A1): a client-credentials token is accepted by `/iga` only once the tenant has the
    #: token-modification script and provider overrides; off, `/iga` answers 403 to such tokens.
    client_token_accepted_by_iga: bool = True
    #: A6: `context.type: admin` makes the OOTB remove workflows skip approval.
    admin_context_allowed: bool = True
    #: The tenant's `requireRequestJustification`.
    require_justification: bool = False
    #: A8: `common.accountId` is a property of the remove request types (newer tenants).
    accept_account_id: bool = False
    #: A4: a second open request for the same user and item is refused as a 200 with `errors[]`
    #: (inferred from the vendor UI) or as a 400 with the existing `requestId`.
    duplicate_as: Literal["errors", "http400"] = "errors"
    #: A3: `request.common.externalRequestId` works as a `targetName` of the request search; off,
    #: the search ignores that filter term (recovery must not depend on it).
    external_id_searchable: bool = True
    #: Answer `totalCount: 0` beside full pages, as the seed's samples do (§4).
    zero_total_count: bool = False
