"""Loading and checking the configuration at start: every problem becomes one line that names the
setting the way the operator wrote it (an environment variable, a `_FILE` variable, or a place in
the YAML file) and says how to fix it. Nothing here prints a secret.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.settings import ConfigError, Settings, TargetSettings

#: Variables the project reads itself that are not settings (tests, crash and pause points, CI).
NOT_SETTINGS = frozenset(
    {
        "LEAVER_CONFIG_FILE",
        "LEAVER_CRASH_AT",
        "LEAVER_PAUSE_AT",
        "LEAVER_TEST_DATABASE_URL",
        "LEAVER_CI_PG_URL",
        "LEAVER_CHAOS_REPORT",
        "LEAVER_PROPERTY_EXAMPLES",
    }
)
DRIVERS = {
    "sqlite+aiosqlite": "sqlite+aiosqlite:///path/leaver.db",
    "postgresql+asyncpg": "postgresql+asyncpg://user@host/db",
}
MIN_WEBHOOK_KEY_BYTES = 24
MIN_OPS_TOKEN_CHARS = 20


def setting_name(field: str, path: Sequence[str | int] = ()) -> str:
    """Where the operator set `field`: its variable, its `_FILE` variable, or its YAML key."""
    env = f"LEAVER_{field.upper()}"
    inner = "".join(f"[{p}]" if isinstance(p, int) or str(p).isdigit() else f".{p}" for p in path)
    if env in os.environ:
        return env + inner
    if f"{env}_FILE" in os.environ:
        return f"{env}_FILE ({os.environ[env + '_FILE']})" + inner
    config_file = os.environ.get("LEAVER_CONFIG_FILE")
    if config_file and field in _yaml_keys(config_file):
        return f"{config_file}: {field}{inner}"
    return env + inner


def _yaml_keys(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def check_variables(environ: dict[str, str] | None = None) -> None:
    """Refuse `LEAVER_*` variables that are no setting: a typo would silently be ignored."""
    environ = dict(os.environ if environ is None else environ)
    fields = [f"LEAVER_{f.upper()}" for f in Settings.model_fields]
    known = {*fields, *(f"{f}_FILE" for f in fields), *NOT_SETTINGS}
    for name in sorted(environ):
        if not name.startswith("LEAVER_") or name in known:
            continue
        if "__" in name and name.split("__", 1)[0] in fields:  # a nested value, LEAVER_TARGETS__0__...
            continue
        raise ConfigError(f"{name}: unknown setting{_did_you_mean(name, sorted(known))}")


def check_config_file() -> None:
    config_file = os.environ.get("LEAVER_CONFIG_FILE")
    if not config_file:
        return
    if not Path(config_file).is_file():
        raise ConfigError(f"LEAVER_CONFIG_FILE: no such file: {config_file}")
    try:
        data = yaml.safe_load(Path(config_file).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"LEAVER_CONFIG_FILE: {config_file} is not valid YAML ({exc})".replace("\n", " ")) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{config_file}: expected a mapping of settings at the top level")
    for key in data or {}:
        if key not in Settings.model_fields or key == "config_file":
            hint = _did_you_mean(str(key), [k for k in Settings.model_fields if k != "config_file"])
            raise ConfigError(f"{config_file}: {key}: unknown setting{hint}")


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, named where the operator set it."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    name = setting_name(str(loc[0]), loc[1:]) if loc else "settings"
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "unknown setting"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{name}: {message}{more}"


def check_secrets(settings: Settings) -> None:
    """Webhook secrets must be real HMAC keys and the ops token long enough to resist guessing."""
    for secret in settings.webhook_secrets:
        name = setting_name("webhook_secret")
        if not secret.startswith("whsec_"):
            raise ConfigError(f"{name}: each secret must be 'whsec_' followed by base64 (Standard Webhooks)")
        try:
            key = base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{name}: the part after 'whsec_' is not valid base64") from None
        if len(key) < MIN_WEBHOOK_KEY_BYTES:
            raise ConfigError(
                f"{name}: the key is {len(key)} bytes; use at least {MIN_WEBHOOK_KEY_BYTES} random bytes "
                "(e.g. 'whsec_' + `openssl rand -base64 32`)"
            )
    token = settings.ops_token.get_secret_value() if settings.ops_token else None
    if token is not None and len(token) < MIN_OPS_TOKEN_CHARS:
        raise ConfigError(
            f"{setting_name('ops_token')}: {len(token)} characters; use at least {MIN_OPS_TOKEN_CHARS} "
            "(e.g. `openssl rand -base64 24`)"
        )


def check_database_url(settings: Settings) -> None:
    if settings.database_url is None:
        return
    name = setting_name("database_url")
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise ConfigError(f"{name}: not a database URL; use {' or '.join(DRIVERS.values())}") from None
    if url.drivername not in DRIVERS:
        raise ConfigError(f"{name}: driver {url.drivername!r} is not supported; use {' or '.join(DRIVERS.values())}")
    if url.drivername.startswith("postgresql") and not url.host:
        raise ConfigError(f"{name}: no host; use {DRIVERS['postgresql+asyncpg']}")


def load_settings(**overrides: Any) -> Settings:
    """Build and check the settings, turning any problem into a one-line ConfigError."""
    check_variables()
    check_config_file()
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None
    except SettingsError as exc:  # a variable that should hold JSON does not
        field = str(exc).split('"')[1] if '"' in str(exc) else "settings"
        raise ConfigError(f"{setting_name(field)}: not valid JSON") from None
    check_secrets(settings)
    check_database_url(settings)
    if not settings.resolved_policy_file.is_file():
        raise ConfigError(f"{setting_name('policy_file')}: no such file: {settings.resolved_policy_file}")
    return settings


def check_resend_grace(settings: Settings, targets: list[TargetSettings]) -> None:
    """Exactly-once needs the resend grace to outlast any send still in flight plus the time the
    IGA takes to list it: a send lasts at most the read timeout, and never past 4/5 of the lease."""
    for t in targets:
        longest = min(t.http.read_timeout, settings.lease_seconds * 0.8)
        needed = longest + t.listing_lag_seconds
        if settings.resend_grace_seconds < needed:
            raise ConfigError(
                f"{setting_name('resend_grace_seconds')}: {settings.resend_grace_seconds:g}s is shorter than "
                f"target {t.name!r}'s longest send ({longest:g}s) plus its listing lag "
                f"({t.listing_lag_seconds:g}s); set it to at least {needed:g}"
            )


async def check_targets(targets: list[TargetSettings]) -> None:
    """Build every target's client once, so an unknown system or option stops the start instead
    of turning every event into a dead letter."""
    from app.iga.registry import build_client

    for n, target in enumerate(targets):
        where = setting_name("targets", [n])
        try:
            client = build_client(target)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            message = "unknown option" if err["type"] == "extra_forbidden" else str(err["msg"])
            raise ConfigError(f"{where}.options.{loc} (target {target.name!r}): {message}") from None
        except (ValueError, TypeError) as exc:
            detail = str(exc).removeprefix(f"target {target.name!r}: ").replace("\n", " ")
            raise ConfigError(f"{where} (target {target.name!r}): {detail}") from None
        await client.aclose()


def safe_database_url(url: str) -> str:
    """The database URL without its password, for banners and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(invalid URL)"
