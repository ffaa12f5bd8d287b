"""`leaver`: serve, worker, migrate, simulate, policy, events send, status, users, attention,
approve, keep, retry, cancel, tokens, guard, report."""

from __future__ import annotations

import sys

import typer

from app.cli.client import client_app, events_app, guard_app
from app.cli.policy import policy_app
from app.cli.report import report_app
from app.cli.run import run_app
from app.cli.tokens import tokens_app
from app.settings import ConfigError

cli = typer.Typer(
    help="leaver: closes the leaver gap in identity governance.", no_args_is_help=True, add_completion=False
)
for group in (run_app, client_app, report_app):
    cli.registered_commands.extend(group.registered_commands)
cli.add_typer(policy_app, name="policy", help="Check and explain policy files.")
cli.add_typer(events_app, name="events")
cli.add_typer(tokens_app, name="tokens", help="Named ops tokens: create, list, revoke.")
cli.add_typer(guard_app, name="guard")


def main() -> None:
    try:
        cli()
    except ConfigError as exc:
        typer.echo(f"leaver: {exc}", err=True)
        sys.exit(2)
