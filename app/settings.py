"""All configuration in one validated class: `LEAVER_*` environment variables, an optional YAML
file (`LEAVER_CONFIG_FILE`), and `LEAVER_<NAME>_FILE` variables that point at secret files.

A bad value stops the start with one message that names the setting; secrets are `SecretStr`
and never printed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

SYSTEMS = ("netiq-ig", "sailpoint-isc", "pingone-aic", "sailpoint-iiq", "idhub")
DEMO_POLICY = Path(__file__).parent / "policy" / "demo_policy.yaml"


class ConfigError(Exception):
    """A configuration problem, worded for the operator."""


class HttpSettings(BaseModel):
    """Per-target HTTP behaviour; defaults follow each backend contract's assumptions."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    attempts: int = Field(5, ge=1, le=50)
    retry_budget_seconds: float = Field(60.0, gt=0)
    requests_per_second: float | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, ge=1, le=64)
    verify_tls: bool = True


def positive_window(value: timedelta | None) -> timedelta | None:
    if value is not None and value <= timedelta(0):
        raise ValueError("must be a positive duration, e.g. PT1H")
    return value


class TargetSettings(BaseModel):
    """One IGA target: which system, where, and the service account it signs in with.

    `client_secret_file` / `password_file` read a credential from a mounted secret file, so the
    rest of the target list can live in a ConfigMap."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    system: Literal["netiq-ig", "sailpoint-isc", "pingone-aic", "sailpoint-iiq", "idhub"]
    base_url: str
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    #: How long the IGA may take, after accepting a request, to list it where recovery looks
    #: (assumed; the resend grace must cover it).
    listing_lag_seconds: float = Field(30.0, ge=0)
    #: Plan and record this target's cases without submitting (beside the global `dry_run`).
    dry_run: bool = False
    #: Blast-radius guard overrides for this target (see `Settings.guard_max_leavers`).
    guard_max_leavers: int | None = Field(None, ge=0)
    guard_window: timedelta | None = None
    #: Evidence report SLA override for this target (see `Settings.sla_seconds`).
    sla_seconds: float | None = Field(None, gt=0)
    #: System-specific knobs, including every value a backend contract marks as assumed.
    options: dict[str, Any] = Field(default_factory=dict)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("client_secret", "password"):
            path = data.pop(f"{key}_file", None)
            if path and data.get(key) is None:
                try:
                    data[key] = Path(path).read_text().strip()
                except OSError as exc:
                    raise ValueError(f"{key}_file: cannot read {path}: {exc.strerror}") from None
        return data

    @field_validator("guard_window")
    @classmethod
    def _positive_window(cls, value: timedelta | None) -> timedelta | None:
        return positive_window(value)

    @field_validator("base_url", "token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


class IntakeSource(BaseModel):
    """One sender of events besides the generic webhook (SSF, SCIM, Okta, Entra, mapped JSON; see
    docs/intake.md). `options` are the format's own, checked by its module in `app/intake/`.

    `secrets_file` reads the secrets, one a line, from a mounted secret file."""

    model_config = ConfigDict(extra="forbid")

    #: The events' `source`; also how the sender is named in logs and in `/status`.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    format: Literal["ssf", "scim", "okta", "entra", "mapped"]
    #: What the sender authenticates with (bearer tokens, Okta header values, `whsec_` keys); several while rotating.
    secrets: list[SecretStr] = Field(default_factory=list, max_length=10)
    #: Event user field (`username`, `email`, `employee_id`, `dn`, `ids.<target>`) -> sender field path(s).
    user: dict[str, str | list[str]] = Field(default_factory=dict)
    #: The one IGA target this sender's events go to (default: every target).
    target: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _secrets_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("secrets_file"):
            data = dict(data)
            path = data.pop("secrets_file")
            try:
                data.setdefault("secrets", Path(path).read_text().split())
            except OSError as exc:
                raise ValueError(f"secrets_file: cannot read {path}: {exc.strerror}") from None
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEAVER_", env_nested_delimiter="__", extra="forbid")

    config_file: Path | None = None
    data_dir: Path = Path("leaver-data")
    database_url: str | None = None
    #: One `whsec_...` secret, or several separated by spaces while a key is rotated.
    webhook_secret: SecretStr | None = None
    #: Bearer token for `/status`, `/ops` and the web page. Generated for the demo if unset.
    ops_token: SecretStr | None = None
    policy_file: Path | None = None
    targets: list[TargetSettings] = Field(default_factory=list)
    #: Intake sources besides the generic webhook (docs/intake.md).
    sources: list[IntakeSource] = Field(default_factory=list)

    workers: int = Field(4, ge=0, le=256)
    lease_seconds: float = Field(60.0, ge=1)
    idle_poll_seconds: float = Field(0.5, gt=0)
    #: Attempts a step gets (with backoff) before its case goes to the dead letters.
    max_step_attempts: int = Field(8, ge=1)
    #: How long a removal the IGA reported done may still show in the access list.
    verify_grace_seconds: float = Field(3600.0, ge=0)
    #: A held item no operator has decided on after this long is escalated (flagged, counted, logged).
    hold_escalate_after_seconds: float | None = Field(None, gt=0)
    #: Tracking polls: first wait, then doubled up to the maximum.
    track_initial_seconds: float = Field(2.0, gt=0)
    track_max_seconds: float = Field(900.0, gt=0)
    #: Wait before resending a batch whose first send left no trace in the IGA.
    resend_grace_seconds: float = Field(120.0, ge=0)
    #: On SIGTERM a worker lets running steps finish this long, then hands the rest back.
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    #: Plan and record every case without submitting; the per-target setting and an event's own
    #: `dry_run` flag do the same for fewer cases. Every view labels such cases.
    dry_run: bool = False
    #: Blast-radius guard: more leavers than this on one target within `guard_window` (ISO 8601
    #: duration, e.g. `PT1H`) hold the further cases before any submission until an operator
    #: confirms or cancels them. 0 turns the guard off.
    guard_max_leavers: int = Field(50, ge=0)
    guard_window: timedelta = timedelta(hours=1)
    #: Evidence report: a removal slower than this (seconds from receipt) is a breach; a target's
    #: `sla_seconds` and `sla_rules` (policy rule name -> seconds) override it, the rule first.
    sla_seconds: float = Field(86400.0, gt=0)
    sla_rules: dict[str, float] = Field(default_factory=dict)
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    #: Requests in flight per API process; beyond it the API answers 503 + Retry-After at once.
    max_inflight_requests: int = Field(256, ge=1)
    #: Seconds a client connection may take to send a request's head before it is closed.
    request_head_timeout_seconds: float = Field(10.0, gt=0)
    webhook_tolerance_seconds: int = Field(300, ge=1)
    #: Run migrations at start. Default: yes on SQLite, no on PostgreSQL (use `leaver migrate`).
    auto_migrate: bool | None = None
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: The embedded demo (what `leaver serve --demo` sets): built-in simulators as targets, open
    #: reads, generated secrets. Never chosen implicitly.
    demo: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _FileVariables(settings_cls),
            env_settings,
        ]
        config_file = os.environ.get("LEAVER_CONFIG_FILE")
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigError(f"LEAVER_CONFIG_FILE: no such file: {config_file}")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @field_validator("guard_window")
    @classmethod
    def _positive_window(cls, value: timedelta) -> timedelta:
        return positive_window(value) or value

    @model_validator(mode="after")
    def _unique_targets(self) -> Settings:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'leaver.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.auto_migrate if self.auto_migrate is not None else self.is_sqlite

    @property
    def resolved_policy_file(self) -> Path:
        return self.policy_file or DEMO_POLICY

    @property
    def webhook_secrets(self) -> list[str]:
        raw = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        return raw.split()

    def target(self, name: str) -> TargetSettings | None:
        return next((t for t in self.targets if t.name == name), None)


class _FileVariables(PydanticBaseSettingsSource):
    """`LEAVER_X_FILE=/run/secrets/x` reads the value of `x` from that file (Docker/K8s secrets)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            path = os.environ.get(f"LEAVER_{name.upper()}_FILE")
            if not path:
                continue
            try:
                text = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"LEAVER_{name.upper()}_FILE: cannot read {path}: {exc.strerror}") from exc
            values[name] = _structured(name, path, text) if name in STRUCTURED else text
        return values


#: Settings whose file holds a document (JSON or YAML), not a plain value.
STRUCTURED = frozenset({"targets"})


def _structured(name: str, path: str, text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"LEAVER_{name.upper()}_FILE: {path} is neither JSON nor YAML ({exc})") from None
    if isinstance(value, dict) and name in value:  # a file with `targets:` at the top is fine too
        value = value[name]
    return value
