"""Every PingOne AIC value leaver had to assume or a tenant may set differently, in one place:
`target.options` for system `pingone-aic` (contract `backends/pingone-aic.md` §10; listed with
their tags in docs/pingone-aic.md). Unknown option names are refused at start.

The service account's private key is a secret: `private_key` (the JWK file's text or a PEM) or
`private_key_file` (a mounted file). It is held as `SecretStr` and never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Lookup = Literal["employee_id", "username", "dn", "email"]
#: Employee number and username first: an email address can be shared (and then is ambiguous).
DEFAULT_ORDER: tuple[Lookup, ...] = ("employee_id", "username", "dn", "email")
FIELD_NAME = r"^[A-Za-z0-9_./-]+$"


class RequestTypes(BaseModel):
    """The request type per kind of item [C: the OOTB remove types; a tenant may add its own]."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entitlement: str = Field("entitlementRemove", pattern=r"^[A-Za-z0-9_-]+$")
    role: str = Field("roleRemove", pattern=r"^[A-Za-z0-9_-]+$")
    account: str = Field("applicationRemove", pattern=r"^[A-Za-z0-9_-]+$")


class PingOneAicOptions(BaseModel):
    """`target.options` for pingone-aic. Each default is the contract's value ([C]), inference
    ([I]) or assumption ([A]); docs/pingone-aic.md says which."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The realm of the managed users (`alpha` by default, `bravo` on some tenants) [C].
    realm: str = Field("alpha", pattern=r"^[A-Za-z0-9_-]+$")

    # ---- sign-in (contract §2)
    #: `jwt_bearer`: a service account (mode A, the documented way); `client_credentials`: an OAuth2
    #: client of the realm (mode B; the target's `client_id` / `client_secret`).
    auth: Literal["jwt_bearer", "client_credentials"] = "jwt_bearer"
    #: The service account's ID (a UUID): `iss` and `sub` of each assertion.
    service_account_id: str | None = Field(None, min_length=1, max_length=200)
    private_key: SecretStr | None = None
    private_key_file: Path | None = None
    #: The assertion's `aud`; default: the token URL with its port written out (`:443`) [C].
    jwt_audience: str | None = Field(None, pattern=r"^https?://")
    #: Assertion lifetime, seconds [C: 180].
    jwt_lifetime_seconds: int = Field(180, ge=30, le=600)
    #: Scopes asked for; default `fr:am:* fr:idm:* fr:iga:*` (mode A) or `fr:idm:* fr:iga:*` (mode B) [C].
    scope: str | None = Field(None, min_length=1)
    #: Renew the token this long before `expires_in` ends [C: 60].
    token_renew_early_seconds: float = Field(60.0, ge=0)

    # ---- finding the user (contract §3)
    lookup_order: tuple[Lookup, ...] = DEFAULT_ORDER
    #: Managed-user property holding the employee number; None: not looked up by it [A].
    employee_id_attribute: str | None = Field("frIndexedString1", pattern=FIELD_NAME)
    #: Managed-user property holding the source DN; None: the DN is looked up as an account's
    #: `dn_account_attribute` through the IGA account search [A].
    dn_attribute: str | None = Field(None, pattern=FIELD_NAME)
    dn_account_attribute: str = Field("account.__NAME__", pattern=FIELD_NAME)
    #: More managed-user properties read for the policy's `user:` rules. A `custom_` property is
    #: also offered without its prefix (`custom_legalHold` as `legalHold`).
    user_fields: tuple[str, ...] = ("custom_legalHold", "custom_department")

    # ---- access (contract §4)
    page_size: int = Field(100, ge=1, le=10000)
    max_pages: int = Field(1000, ge=1)
    #: Accounts as items: only accounts without entitlements (removing an account takes every
    #: entitlement on it, whatever the policy decided for them), every account, or none.
    account_items: Literal["without_entitlements", "all", "none"] = "without_entitlements"
    #: The glossary attribute marking privileged access (`glossary.idx./<kind>.<name>`) [A].
    privileged_attribute: str = Field("isPrivileged", pattern=FIELD_NAME)
    #: An item held only through a role whose membership is rule-based (conditional) counts as
    #: birthright, read from the grant type's `roleId` [A].
    birthright_from_conditional_roles: bool = True

    # ---- removals (contract §5)
    request_types: RequestTypes = Field(default_factory=RequestTypes)
    #: Items per write-ahead batch. AIC takes one request per item, so a batch of several can be
    #: half sent when a worker dies; recovery then adopts what arrived and sends the rest after the
    #: resend grace. One keeps every batch all or nothing.
    batch_size: int = Field(1, ge=1, le=50)
    #: Send `context.type: admin`, so the OOTB workflows skip approval (where the tenant allows it) [A6].
    admin_context: bool = True
    #: Send the entitlement's `accountId` (newer tenants' schema only) [A8].
    send_account_id: bool = False
    priority: Literal["low", "medium", "high"] | None = "low"
    #: Days after which a request nobody decided on is cancelled (`expiryDate`); None: never [Q].
    expiry_days: float | None = Field(None, gt=0)

    # ---- recovery (contract §7)
    #: Also filter the request search on `request.common.externalRequestId` [A3: unverified]; the
    #: key is compared on every hit either way.
    search_by_external_id: bool = False
    lookup_page_size: int = Field(100, ge=1, le=10000)
    lookup_max_pages: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _one_key(self) -> PingOneAicOptions:
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError("give private_key or private_key_file, not both")
        if not self.lookup_order or len(set(self.lookup_order)) != len(self.lookup_order):
            raise ValueError("lookup_order must name each identifier at most once")
        return self

    def request_type(self, kind: str) -> str | None:
        """The remove request type for a leaver item type (None: AIC has no request for it)."""
        return {
            "entitlement": self.request_types.entitlement,
            "role": self.request_types.role,
            "account": self.request_types.account,
            "application": self.request_types.account,
        }.get(kind)
