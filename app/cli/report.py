"""`leaver report`: the evidence report for auditors, fetched from a running leaver like
`leaver status`, streamed to a file or standard output as it arrives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import httpx
import typer

from app.cli.common import fail, ops_token, settings_or_exit

report_app = typer.Typer()


@report_app.command("report")
def report_cmd(
    since: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD) or ISO 8601 time, by event receipt.")],
    until: Annotated[str, typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD), or ISO 8601 time, excluded.")],
    target: Annotated[str | None, typer.Option(help="Only this IGA target.")] = None,
    format: Annotated[Literal["csv", "json", "html"], typer.Option("--format", help="csv, json or html.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    url: Annotated[str, typer.Option(help="Base URL of leaver.")] = "http://127.0.0.1:8000",
) -> None:
    """Evidence for auditors: every leaver of the period, each item's fate and time-to-revoke, SLA
    breaches and totals (docs/report.md)."""
    token = ops_token(settings_or_exit())
    headers = {"authorization": f"Bearer {token}"} if token else {}
    params = {"from": since, "to": until, "format": format} | ({"target": target} if target else {})
    out = output.open("wb") if output else sys.stdout.buffer
    try:
        with httpx.stream(
            "GET", f"{url.rstrip('/')}/status/report", params=params, headers=headers, timeout=300
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                detail = resp.json().get("detail") if "json" in resp.headers.get("content-type", "") else resp.text
                typer.echo(f"leaver: {resp.status_code} {detail}", err=True)
                raise typer.Exit(1)
            for chunk in resp.iter_bytes():
                out.write(chunk)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}")
    finally:
        if output:
            out.close()
        else:
            out.flush()
