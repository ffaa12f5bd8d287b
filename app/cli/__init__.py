"""`leaver`: serve, worker, migrate, simulate, policy, events send, status."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import structlog
import typer
import uvicorn

from app.cli.policy import policy_app
from app.config import check_resend_grace, check_targets, load_settings, safe_database_url
from app.logs import configure_logging
from app.settings import ConfigError, Settings, TargetSettings

log = structlog.get_logger("leaver")

cli = typer.Typer(
    help="leaver: closes the leaver gap in identity governance.", no_args_is_help=True, add_completion=False
)
events_app = typer.Typer(help="Send events to a running leaver.", no_args_is_help=True)
cli.add_typer(policy_app, name="policy", help="Check and explain policy files.")
cli.add_typer(events_app, name="events")


def _settings(*, demo: bool = False) -> Settings:
    try:
        settings = load_settings(**({"demo": True} if demo else {}))
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _fail(message: str) -> NoReturn:
    typer.echo(f"leaver: {message}", err=True)
    raise typer.Exit(2)


def _configured_targets(settings: Settings, command: str) -> list[TargetSettings]:
    """The targets of a real deployment, checked; never the demo by accident."""
    if settings.demo:
        if settings.targets:
            _fail("LEAVER_DEMO: the demo runs the built-in simulators; unset LEAVER_TARGETS, or drop --demo")
        return []
    if not settings.targets:
        _fail(
            "no IGA target configured: set LEAVER_TARGETS (or LEAVER_TARGETS_FILE, or targets: in "
            f"LEAVER_CONFIG_FILE), or run `leaver {command} --demo` for the embedded demo"
        )
    try:
        check_resend_grace(settings, settings.targets)
        asyncio.run(check_targets(settings.targets))
    except ConfigError as exc:
        _fail(str(exc))
    return settings.targets


def _port_free(host: str, port: int) -> None:
    """Fail before any banner when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port} ({exc.strerror}); choose another port with --port")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int | None, typer.Option(help="In-process worker concurrency (0: API only).")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="The embedded demo: SQLite, built-in simulators.")] = False,
    check_config: Annotated[bool, typer.Option("--check-config", help="Check the configuration, then exit.")] = False,
) -> None:
    """Run the API with in-process workers (`--demo`: the embedded demo with the built-in simulators)."""
    from app.demo import demo_simulators, demo_targets, prepare_demo
    from app.main import create_app
    from app.runtime import build_runtime
    from app.serving import GuardedHttpProtocol, raise_file_limit
    from app.store.migrate import upgrade

    settings = _settings(demo=demo)
    targets = _configured_targets(settings, "serve")
    simulators = None
    if settings.demo:
        settings = prepare_demo(settings)
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        targets = demo_targets(f"http://{local}:{port}")
        simulators = demo_simulators()
    else:
        if not settings.webhook_secrets:
            _fail("LEAVER_WEBHOOK_SECRET is required: the webhook refuses every event without it")
        if not settings.ops_token:
            _fail("LEAVER_OPS_TOKEN is required: /status and /ops need it")
    if check_config:
        _print_config_ok(settings, targets)
        return
    _port_free(host, port)
    if settings.should_auto_migrate:
        upgrade(settings.resolved_database_url)
    rt = build_runtime(settings, targets=targets)
    app = create_app(rt, workers=workers, simulators=simulators, open_reads=settings.demo)
    if settings.demo:
        _print_demo_help(settings, host, port, [t.name for t in targets])
    log.info(
        "leaver.start",
        address=f"http://{host}:{port}",
        demo=settings.demo,
        targets=[f"{t.name} ({t.system})" for t in targets],
        policy=str(settings.resolved_policy_file),
        database=safe_database_url(settings.resolved_database_url),
        workers=settings.workers if workers is None else workers,
    )
    raise_file_limit()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=20,
        proxy_headers=True,
        server_header=False,
        http=GuardedHttpProtocol.with_head_timeout(settings.request_head_timeout_seconds),
        timeout_keep_alive=5,
        backlog=2048,
    )


def _print_config_ok(settings: Settings, targets: list[TargetSettings]) -> None:
    names = ", ".join(f"{t.name} ({t.system})" for t in targets) or "none"
    typer.echo(
        f"configuration OK: targets {names}; policy {settings.resolved_policy_file}; "
        f"database {safe_database_url(settings.resolved_database_url)}"
    )


def _print_demo_help(settings: Settings, host: str, port: int, targets: list[str]) -> None:
    data = settings.data_dir
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    from app.demo import demo_secret_from_disk

    kept = demo_secret_from_disk(data, "webhook-secret")
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    # Print only the secret the demo generated itself, never one the operator set.
    shown = f"{secret}   (kept in {data / 'webhook-secret'})" if kept and kept == secret else "set by you (not shown)"
    typer.echo(f"""
leaver demo: database {safe_database_url(settings.resolved_database_url)}; IGA simulators for {", ".join(targets)}
  web page       {url}/
  webhook secret {shown}
  ops token      kept in {data / "ops-token"} (needed for /ops actions)
  start over     stop, then `rm -rf {data}` (or `make demo-reset`)

Send a first event (jdoe is terminated) from another terminal:
  leaver events send {data / "demo-event.json"} --url {url}
then:
  leaver status <event_id> --url {url}
A disable that holds privileged access for you to approve or keep in the console (sign in with the token):
  leaver events send {data / "demo-disable.json"} --url {url}
""")


@cli.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Cases worked at once (default LEAVER_WORKERS).")] = None,
    check_config: Annotated[bool, typer.Option("--check-config", help="Check the configuration, then exit.")] = False,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve this process's Prometheus counters on this port.", min=1, max=65535)
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port.")] = "0.0.0.0",
) -> None:
    """Run workers only (scale-out: any number of these share one PostgreSQL)."""
    from app.runtime import build_runtime
    from app.worker.loop import Worker

    settings = _settings()
    if settings.demo:
        _fail("LEAVER_DEMO: `leaver worker` needs IGA targets; the demo runs in `leaver serve --demo`")
    targets = _configured_targets(settings, "worker")
    if check_config:
        _print_config_ok(settings, targets)
        return
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
    log.info(
        "leaver.worker_start",
        targets=[f"{t.name} ({t.system})" for t in targets],
        policy=str(settings.resolved_policy_file),
        database=safe_database_url(settings.resolved_database_url),
    )

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
        _fail("no webhook secret: set LEAVER_WEBHOOK_SECRET or start the demo once (`leaver serve --demo`)")
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
