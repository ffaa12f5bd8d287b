"""`leaver`: serve, worker, migrate, simulate, policy, events send, status."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvicorn

from app.cli.policy import policy_app
from app.logs import configure_logging
from app.settings import ConfigError, Settings, check_resend_grace, load_settings

cli = typer.Typer(
    help="leaver: closes the leaver gap in identity governance.", no_args_is_help=True, add_completion=False
)
events_app = typer.Typer(help="Send events to a running leaver.", no_args_is_help=True)
cli.add_typer(policy_app, name="policy", help="Check and explain policy files.")
cli.add_typer(events_app, name="events")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.echo(f"leaver: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _fail(message: str) -> None:
    typer.echo(f"leaver: {message}", err=True)
    raise typer.Exit(2)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int | None, typer.Option(help="In-process worker concurrency (0: API only).")] = None,
) -> None:
    """Run the API with in-process workers. With no IGA target configured: the embedded demo."""
    from app.demo import demo_simulators, demo_targets, prepare_demo
    from app.main import create_app
    from app.runtime import build_runtime
    from app.store.migrate import upgrade

    settings = _settings()
    simulators = None
    targets = settings.targets
    if settings.demo:
        settings = prepare_demo(settings)
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        targets = demo_targets(f"http://{local}:{port}")
        simulators = demo_simulators()
    if not settings.webhook_secrets:
        _fail("LEAVER_WEBHOOK_SECRET is required when IGA targets are configured")
    if not settings.ops_token:
        _fail("LEAVER_OPS_TOKEN is required when IGA targets are configured")
    try:
        check_resend_grace(settings, targets)
    except ConfigError as exc:
        _fail(str(exc))
    if settings.should_auto_migrate:
        upgrade(settings.resolved_database_url)
    try:
        rt = build_runtime(settings, targets=targets)
    except Exception as exc:
        _fail(str(exc))
    app = create_app(rt, workers=workers, simulators=simulators, open_reads=settings.demo)
    if settings.demo:
        _print_demo_help(settings, host, port, [t.name for t in targets])
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=20,
        proxy_headers=True,
        server_header=False,
    )


def _print_demo_help(settings: Settings, host: str, port: int, targets: list[str]) -> None:
    data = settings.data_dir
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    typer.echo(f"""
leaver demo: SQLite at {settings.resolved_database_url.split("///")[-1]}, IGA simulators for {", ".join(targets)}
  web page       {url}/
  webhook secret {secret}   (kept in {data / "webhook-secret"})
  ops token      kept in {data / "ops-token"} (needed for /ops actions)

Send a first event (jdoe is terminated) from another terminal:
  leaver events send {data / "demo-event.json"} --url {url}
then:
  leaver status <event_id> --url {url}
""")


@cli.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Cases worked at once (default LEAVER_WORKERS).")] = None,
) -> None:
    """Run workers only (scale-out: any number of these share one PostgreSQL)."""
    from app.runtime import build_runtime
    from app.worker.loop import Worker

    settings = _settings()
    if settings.demo:
        _fail("`leaver worker` needs IGA targets (LEAVER_TARGETS or LEAVER_CONFIG_FILE); the demo runs in `serve`")
    try:
        check_resend_grace(settings, settings.targets)
    except ConfigError as exc:
        _fail(str(exc))

    async def main() -> None:
        rt = build_runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await Worker(rt, concurrency or settings.workers or 1).run(stop)
        finally:
            await rt.aclose()

    asyncio.run(main())


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run from several replicas at once)."""
    from app.store.migrate import head_revision, upgrade

    settings = _settings()
    upgrade(settings.resolved_database_url)
    typer.echo(f"database at revision {head_revision()}")


@cli.command()
def simulate(
    system: Annotated[str, typer.Argument(help="IGA system: netiq-ig, sailpoint-isc, ...")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 9000,
) -> None:
    """Run one IGA simulator with its demo users."""
    from app.simulator import create_simulator

    try:
        app = create_simulator(system)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"{system} simulator on http://{host}:{port} (control: /_log /_faults /_config /_clock /_reset)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _secret_for_cli(settings: Settings) -> str:
    from app.demo import demo_secret_from_disk

    if settings.webhook_secrets:
        return settings.webhook_secrets[0]
    secret = demo_secret_from_disk(settings.data_dir, "webhook-secret")
    if not secret:
        _fail("no webhook secret: set LEAVER_WEBHOOK_SECRET or start the demo once (`leaver serve`)")
    return str(secret)


def _token_for_cli(settings: Settings) -> str | None:
    from app.demo import demo_secret_from_disk

    if settings.ops_token:
        return settings.ops_token.get_secret_value()
    return demo_secret_from_disk(settings.data_dir, "ops-token")


@events_app.command("send")
def events_send(
    file: Annotated[Path, typer.Argument(help="JSON file with the generic event.", exists=True, dir_okay=False)],
    url: Annotated[str, typer.Option(help="Base URL of leaver.")] = "http://127.0.0.1:8000",
    message_id: Annotated[str | None, typer.Option("--id", help="webhook-id (default: derived from the body).")] = None,
) -> None:
    """Sign (Standard Webhooks) and post an event; sending the same file again is a redelivery."""
    from app.intake.signature import sign

    settings = _settings()
    body = file.read_bytes()
    try:
        json.loads(body)
    except ValueError:
        _fail(f"{file} is not valid JSON")
    msg_id = message_id or "msg_" + hashlib.sha256(body).hexdigest()[:32]
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(_secret_for_cli(settings), msg_id, stamp, body),
    }
    try:
        resp = httpx.post(f"{url.rstrip('/')}/webhooks/events", content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}")
    typer.echo(f"{resp.status_code} {resp.text}")
    if resp.status_code >= 400:
        raise typer.Exit(1)


@cli.command("status")
def status_cmd(
    event_id: Annotated[str, typer.Argument(help="Event ID returned by the webhook.")],
    url: Annotated[str, typer.Option(help="Base URL of leaver.")] = "http://127.0.0.1:8000",
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """Show what happened to one event: cases, items, request IDs."""
    settings = _settings()
    token = _token_for_cli(settings)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.get(f"{url.rstrip('/')}/status/events/{event_id}", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}")
    if resp.status_code != 200:
        _fail(f"{resp.status_code} {resp.text}")
    data: dict[str, Any] = resp.json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"event {data['event_id']} ({data['type']}, {data['source']}/{data['external_id']})")
    for case in data["cases"]:
        typer.echo(
            f"  case {case['case_id']} on {case['target']}: {case['state']}"
            + (f" — {case['error']}" if case["error"] else "")
        )
        for item in case["items"]:
            typer.echo(
                f"    {item['state']:<10} {item['type']:<14} {item['name']:<28} rule={item['rule']:<20} "
                f"request={item['iga_request_id'] or '-'} iga={item['iga_status'] or '-'}"
            )


def main() -> None:
    try:
        cli()
    except ConfigError as exc:
        typer.echo(f"leaver: {exc}", err=True)
        sys.exit(2)
