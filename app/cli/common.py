"""What every `leaver` command shares: the checked settings, one-line failures, credentials."""

from __future__ import annotations

from typing import NoReturn

import typer

from app.config import load_settings
from app.logs import configure_logging
from app.settings import ConfigError, Settings


def settings_or_exit(*, demo: bool = False) -> Settings:
    try:
        settings = load_settings(**({"demo": True} if demo else {}))
    except ConfigError as exc:
        fail(str(exc))
    configure_logging(settings.log_format, settings.log_level)
    return settings


def fail(message: str) -> NoReturn:
    typer.echo(f"leaver: {message}", err=True)
    raise typer.Exit(2)


def webhook_secret(settings: Settings) -> str:
    from app.demo import demo_secret_from_disk

    if settings.webhook_secrets:
        return settings.webhook_secrets[0]
    secret = demo_secret_from_disk(settings.data_dir, "webhook-secret")
    if not secret:
        fail("no webhook secret: set LEAVER_WEBHOOK_SECRET or start the demo once (`leaver serve --demo`)")
    return str(secret)


def ops_token(settings: Settings) -> str | None:
    from app.demo import demo_secret_from_disk

    if settings.ops_token:
        return settings.ops_token.get_secret_value()
    return demo_secret_from_disk(settings.data_dir, "ops-token")
