"""Running leaver: the API with in-process workers (or the embedded demo), workers alone,
migrations, and one IGA simulator."""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import Annotated

import structlog
import typer
import uvicorn

from app.cli.common import fail, settings_or_exit
from app.config import check_resend_grace, check_targets, safe_database_url
from app.settings import ConfigError, Settings, TargetSettings

log = structlog.get_logger("leaver")
run_app = typer.Typer()


def _configured_targets(settings: Settings, command: str) -> list[TargetSettings]:
    """The targets of a real deployment, checked; never the demo by accident."""
    if settings.demo:
        if settings.targets:
            fail("LEAVER_DEMO: the demo runs the built-in simulators; unset LEAVER_TARGETS, or drop --demo")
        return []
    if not settings.targets:
        fail(
            "no IGA target configured: set LEAVER_TARGETS (or LEAVER_TARGETS_FILE, or targets: in "
            f"LEAVER_CONFIG_FILE), or run `leaver {command} --demo` for the embedded demo"
        )
    try:
        check_resend_grace(settings, settings.targets)
        asyncio.run(check_targets(settings.targets))
    except ConfigError as exc:
        fail(str(exc))
    return settings.targets


def _port_free(host: str, port: int) -> None:
    """Fail before any banner when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} ({exc.strerror}); choose another port with --port")


@run_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int | None, typer.Option(help="In-process worker concurrency (0: API only).")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="The embedded demo: SQLite, built-in simulators.")] = False,
    check_config: Annotated[bool, typer.Option("--check-config", help="Check the configuration, then exit.")] = False,
) -> None:
    """Run the API with in-process workers (`--demo`: the embedded demo with the built-in simulators)."""
    from app.demo import demo_simulators, demo_targets, prepare_demo
    from app.intake.sources import build_sources
    from app.main import create_app
    from app.runtime import build_runtime
    from app.serving import GuardedHttpProtocol, raise_file_limit
    from app.store.migrate import upgrade

    settings = settings_or_exit(demo=demo)
    targets = _configured_targets(settings, "serve")
    simulators = None
    if settings.demo:
        settings = prepare_demo(settings)
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        targets = demo_targets(f"http://{local}:{port}")
        simulators = demo_simulators()
    else:
        if not settings.webhook_secrets:
            fail("LEAVER_WEBHOOK_SECRET is required: the webhook refuses every event without it")
        if not settings.ops_token:
            fail("LEAVER_OPS_TOKEN is required: /status and /ops need it")
    try:  # the intake sources (docs/intake.md): a bad one stops the start like a bad target
        build_sources(settings.sources, [t.name for t in targets])
    except ConfigError as exc:
        fail(str(exc))
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


@run_app.command()
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

    settings = settings_or_exit()
    if settings.demo:
        fail("LEAVER_DEMO: `leaver worker` needs IGA targets; the demo runs in `leaver serve --demo`")
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


@run_app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run from several replicas at once)."""
    from app.store.migrate import head_revision, upgrade

    settings = settings_or_exit()
    upgrade(settings.resolved_database_url)
    typer.echo(f"database at revision {head_revision()}")


@run_app.command()
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
        fail(str(exc))
    typer.echo(f"{system} simulator on http://{host}:{port} (control: /_log /_faults /_config /_clock /_reset)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
