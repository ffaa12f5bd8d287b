"""Named ops tokens, straight in the database: created with a role and shown once, listed without
their value, revoked (with their console sessions)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from app.cli.common import fail, settings_or_exit
from app.store.db import make_engine, make_sessionmaker
from app.store.operators import ROLES, Role, create_token, list_tokens, revoke_token

tokens_app = typer.Typer(no_args_is_help=True)


def _database_url() -> str:
    return settings_or_exit().resolved_database_url


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who holds it (goes into the audit), e.g. alice or siem-export.")],
    role: Annotated[str, typer.Option(help="reader (sees) or operator (also acts).")] = "reader",
) -> None:
    """Create a token and print it once; only its SHA-256 is kept."""
    if role not in ROLES:
        fail(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    if not name.strip() or len(name) > 100:
        fail("NAME: 1 to 100 characters")
    chosen: Role = "operator" if role == "operator" else "reader"

    async def run() -> str:
        engine = make_engine(_database_url())
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await create_token(session, name.strip(), chosen)
        finally:
            await engine.dispose()

    try:
        raw = asyncio.run(run())
    except ValueError as exc:
        fail(str(exc))
    typer.echo(raw)
    typer.echo(f"token {name!r} ({chosen}) created: store it now, it is not shown again", err=True)


@tokens_app.command("list")
def list_() -> None:
    """Every token: name, role, created, revoked."""

    async def run() -> list[tuple[str, str, str, str]]:
        engine = make_engine(_database_url())
        try:
            async with make_sessionmaker(engine)() as session:
                return [
                    (t.name, t.role, t.created_at.isoformat(), t.revoked_at.isoformat() if t.revoked_at else "-")
                    for t in await list_tokens(session)
                ]
        finally:
            await engine.dispose()

    rows = asyncio.run(run())
    typer.echo(f"{'name':<24} {'role':<9} {'created':<33} revoked")
    for name, role, created, revoked in rows:
        typer.echo(f"{name:<24} {role:<9} {created:<33} {revoked}")


@tokens_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token at once; its console sessions end too."""

    async def run() -> bool:
        engine = make_engine(_database_url())
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await revoke_token(session, name)
        finally:
            await engine.dispose()

    if not asyncio.run(run()):
        fail(f"no active token named {name!r}")
    typer.echo(f"token {name!r} revoked")
