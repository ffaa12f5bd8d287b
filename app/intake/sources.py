"""The configured senders (`LEAVER_SOURCES`): each format's options, checked once, and the
credential each sender proves itself with.

A sender is found by what it proves, never by what it claims: a bearer token, an Okta header
value or a signing key picks the source, so several senders of one format share a route."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from app.domain import EventType
from app.intake.mapping import Choice, Expr, MappingError, compile_choice, compile_expr, compile_user_map
from app.runtime import Runtime
from app.settings import ConfigError, IntakeSource

Format = Literal["ssf", "scim", "okta", "entra", "mapped"]
MIN_SECRET_CHARS = 16
#: Where each format finds the user when a source sets no `user` mapping (docs/intake.md).
DEFAULT_USER: dict[str, dict[str, str | list[str]]] = {
    "ssf": {"email": "$.email", "username": ["$.sub", "$.opaque"]},
    "scim": {"username": "$.userName", "email": "$.email", "employee_id": "$.employeeNumber"},
    "okta": {"username": "$.login", "email": "$.email"},
    "entra": {"username": "$.userPrincipalName", "email": "$.email"},
    "mapped": {k: f"$.user.{k}" for k in ("dn", "username", "email", "employee_id")},
}
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class SsfOptions(_Options):
    """An SSF transmitter: who it is, who we are to it, and how fresh its SETs must be."""

    issuer: str
    audience: list[str] = Field(min_length=1)
    #: The transmitter's keys; default: `jwks_uri` of its `/.well-known/ssf-configuration`.
    jwks_uri: str | None = None
    algorithms: list[Algorithm] = Field(["RS256", "PS256", "ES256"], min_length=1)
    #: SETs older than this are refused; older ones are legitimate after a paused stream.
    max_age_seconds: int = Field(7 * 86400, ge=60)
    future_skew_seconds: int = Field(300, ge=0, le=3600)
    jwks_cache_seconds: float = Field(3600.0, ge=0)
    #: At most one refetch per this many seconds when a SET names an unknown `kid`.
    jwks_refetch_seconds: float = Field(60.0, ge=0)

    _audience = field_validator("audience", mode="before")(_listed)


class ScimOptions(_Options):
    max_results: int = Field(200, ge=1, le=1000)


class OktaOptions(_Options):
    #: The header Okta's hook is configured to send; its value is one of the source's secrets.
    header: str = Field("authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    deactivate_as: Literal["user.disabled", "user.terminated"] = "user.disabled"


class JwtOptions(_Options):
    """Tokens issued by Entra ID to the Logic App's managed identity for leaver's app."""

    issuer: list[str] = Field(min_length=1)
    audience: list[str] = Field(min_length=1)
    jwks_uri: str
    #: `appid`/`azp`/`oid` values allowed to call (the Logic App's identity); empty: any.
    allowed_apps: list[str] = Field(default_factory=list)
    algorithms: list[Algorithm] = Field(["RS256"], min_length=1)
    jwks_cache_seconds: float = Field(3600.0, ge=0)
    jwks_refetch_seconds: float = Field(60.0, ge=0)

    _lists = field_validator("issuer", "audience", mode="before")(_listed)


class EntraOptions(_Options):
    """A Lifecycle Workflows custom task extension, and the Graph app that resumes the workflow."""

    type: EventType = "user.terminated"
    #: When the workflow is resumed: once every case of the event ended, at once, or never.
    resume: Literal["done", "accepted", "never"] = "done"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    graph_url: str = "https://graph.microsoft.com/v1.0"
    token_url: str | None = None
    #: Events older than this are no longer resumed (a workflow waits at most three hours).
    resume_window_seconds: float = Field(4 * 3600.0, gt=0)
    resume_poll_seconds: float = Field(30.0, gt=0)
    jwt: JwtOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _secret_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("client_secret_file"):
            data = dict(data)
            path = data.pop("client_secret_file")
            try:
                data.setdefault("client_secret", Path(path).read_text().strip())
            except OSError as exc:
                raise ValueError(f"client_secret_file: cannot read {path}: {exc.strerror}") from None
        return data

    @model_validator(mode="after")
    def _graph_app(self) -> EntraOptions:
        app = self.client_id and self.client_secret and (self.tenant_id or self.token_url)
        if self.resume != "never" and not app:
            raise ValueError("resume needs tenant_id (or token_url), client_id and client_secret; or resume: never")
        return self

    @property
    def resolved_token_url(self) -> str:
        return self.token_url or f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/v2.0/token"


class TypeRule(_Options):
    """`when` the value at a path equals one of `equals` (case-insensitive), the event is `type`."""

    when: str
    equals: list[str] = Field(min_length=1)
    type: EventType

    _equals = field_validator("equals", mode="before")(_listed)


class MappedOptions(_Options):
    """Where each event field is in the sender's JSON (paths or templates, see `mapping`)."""

    id: str
    #: A path to a field holding `user.disabled`/`user.terminated`/`user.enabled`, or rules.
    type: str | list[TypeRule]
    occurred_at: str | None = None  # default: when leaver received it
    effective_at: str | None = None
    target: str | None = None
    #: A path to an object kept verbatim, or `{name: path}`.
    attributes: str | dict[str, str] | None = None


OPTIONS: dict[str, type[_Options]] = {
    "ssf": SsfOptions,
    "scim": ScimOptions,
    "okta": OktaOptions,
    "entra": EntraOptions,
    "mapped": MappedOptions,
}


#: A compiled type rule: where to look, the values that match (lower case), the type they mean.
TypeMatch = tuple[Choice, frozenset[str], EventType]


@dataclass(frozen=True)
class CompiledMapping:
    """`MappedOptions` with every path compiled."""

    id: Expr
    type: Expr | tuple[TypeMatch, ...]
    occurred_at: Expr | None
    effective_at: Expr | None
    target: Expr | None
    attributes: Expr | dict[str, Choice] | None


@dataclass(frozen=True)
class Source:
    """One configured sender, ready to use."""

    name: str
    format: Format
    secrets: tuple[str, ...] = field(repr=False)
    user_map: dict[str, Choice]
    target: str | None
    options: Any
    mapping: CompiledMapping | None = None

    def matches(self, offered: Sequence[str]) -> bool:
        """Whether any offered credential is one of this source's secrets (constant time)."""
        hit = False
        for secret in self.secrets:
            for value in offered:
                hit |= hmac.compare_digest(secret.encode(), value.encode())
        return hit


@dataclass(frozen=True)
class Sources:
    all: tuple[Source, ...]

    def of(self, fmt: Format) -> list[Source]:
        return [s for s in self.all if s.format == fmt]

    def named(self, name: str, fmt: Format) -> Source | None:
        return next((s for s in self.all if s.name == name and s.format == fmt), None)

    def by_credential(self, fmt: Format, offered: Sequence[str]) -> Source | None:
        """The source of `fmt` holding one of the `offered` secrets. Every one is compared."""
        found = [s for s in self.of(fmt) if s.matches(offered)]
        return found[0] if found else None


def offered_credentials(header: str | None) -> list[str]:
    """What an `Authorization`-style value may prove: itself, a bearer token, a Basic password."""
    if not header:
        return []
    value = header.strip()
    offered = [value]
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        offered.append(rest.strip())
    elif scheme.lower() == "basic" and rest.strip():
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return offered
        offered.append(decoded.partition(":")[2])
    return offered


def build_sources(settings_sources: Sequence[IntakeSource], targets: Sequence[str]) -> Sources:
    """Check every source and compile its mappings; a problem is one line naming the setting."""
    built: list[Source] = []
    seen: set[str] = set()
    for n, raw in enumerate(settings_sources):
        where = f"LEAVER_SOURCES[{n}] ({raw.name})"
        if raw.name in seen:
            raise ConfigError(f"{where}: the source name is used twice")
        seen.add(raw.name)
        built.append(_build(raw, targets, where))
    return Sources(tuple(built))


def _build(raw: IntakeSource, targets: Sequence[str], where: str) -> Source:
    if raw.target is not None and raw.target not in targets:
        known = ", ".join(targets) or "none"
        raise ConfigError(f"{where}.target: no IGA target named {raw.target!r}; targets: {known}")
    try:
        options = OPTIONS[raw.format].model_validate(raw.options)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}.options.{loc}: {first['msg']}") from None
    secrets = tuple(s.get_secret_value() for s in raw.secrets)
    for i, secret in enumerate(secrets):
        _check_secret(secret, f"{where}.secrets[{i}]")
    if not secrets and not (isinstance(options, EntraOptions) and options.jwt):
        raise ConfigError(f"{where}.secrets: a source needs at least one secret to authenticate its sender")
    try:
        user_map = compile_user_map(raw.user or DEFAULT_USER[raw.format], targets)
        mapping = _compile_mapping(options) if isinstance(options, MappedOptions) else None
    except MappingError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Source(raw.name, raw.format, secrets, user_map, raw.target, options, mapping)


def _check_secret(secret: str, where: str) -> None:
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: not valid base64 after 'whsec_'") from None
        if len(key) < 24:
            raise ConfigError(f"{where}: a whsec_ key needs at least 24 random bytes")
    elif len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"{where}: at least {MIN_SECRET_CHARS} characters, better 32 random ones")


def _compile_mapping(o: MappedOptions) -> CompiledMapping:
    def expr(spec: str | None, name: str) -> Expr | None:
        try:
            return compile_expr(spec) if spec else None
        except MappingError as exc:
            raise MappingError(f"options.{name}: {exc}") from None

    if isinstance(o.type, str):
        type_: Expr | tuple[TypeMatch, ...] = expr(o.type, "type") or compile_expr("$.type")
    else:
        type_ = tuple((compile_choice(r.when), frozenset(v.lower() for v in r.equals), r.type) for r in o.type)
    attributes: Expr | dict[str, Choice] | None
    if isinstance(o.attributes, dict):
        attributes = {k: compile_choice(v) for k, v in o.attributes.items()}
    else:
        attributes = expr(o.attributes, "attributes")
    return CompiledMapping(
        id=expr(o.id, "id") or compile_expr("$.id"),
        type=type_,
        occurred_at=expr(o.occurred_at, "occurred_at"),
        effective_at=expr(o.effective_at, "effective_at"),
        target=expr(o.target, "target"),
        attributes=attributes,
    )


def sources_of(state: Any, rt: Runtime) -> Sources:
    """The app's sources, built once (`state` is the app's state; settings do not change while it runs)."""
    found: Sources | None = getattr(state, "intake_sources", None)
    if found is None:
        found = build_sources(rt.settings.sources, rt.target_names())
        state.intake_sources = found
    return found


def get_sources(request: Request) -> Sources:
    return sources_of(request.app.state, request.app.state.runtime)


SourcesDep = Annotated[Sources, Depends(get_sources)]


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """The credentials a named header offers."""
    return offered_credentials(headers.get(name))
