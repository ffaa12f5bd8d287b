"""Intake throughput and latency: a real `leaver serve` against a bare ASGI floor doing the same
work (parse the JSON, verify the Standard Webhooks signature, insert the event, its case and its
job in one transaction), both on loopback, driven by the same small keep-alive HTTP client.

    .venv/bin/python bench/intake.py [--database-url postgresql+asyncpg://...] [--connections 16]

Each server gets a fresh database (a SQLite file, or a scratch PostgreSQL database created next to
the one given and dropped at the end). Two phases per server: a closed loop at `--connections`
(peak events/s, p50/p99), then an open loop at half that peak (p50/p99 measured from each
request's scheduled send time, so queueing counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "bench-ops-token-0123456789"
TARGET = {
    "name": "iga",
    "system": "netiq-ig",
    "base_url": "http://127.0.0.1:9/unused",
    "client_id": "iac",
    "client_secret": "x",
    "username": "svc",
    "password": "y",
}


# ------------------------------------------------------------------ the floor


def floor_app(database_url: str) -> Callable[..., Awaitable[None]]:
    """The least an intake can do: a raw ASGI callable, no framework, three Core inserts."""
    from sqlalchemy import insert

    from app.intake.signature import verify
    from app.store.db import make_engine
    from app.store.intake import new_event_id
    from app.store.models import Case, Event, Job, utcnow

    engine = make_engine(database_url)
    lock = asyncio.Lock() if database_url.startswith("sqlite") else None

    async def store(body: dict[str, Any], webhook_id: str) -> str:
        now, event_id = utcnow(), new_event_id()
        event = {
            "id": event_id,
            "webhook_id": webhook_id,
            "source": body["source"],
            "external_id": body["id"],
            "type": body["type"],
            "occurred_at": now,
            "effective_at": now,
            "received_at": now,
            "payload": body,
        }
        async with engine.begin() as conn:
            await conn.execute(insert(Event.__table__).values(event))
            case_id = await conn.scalar(
                insert(Case.__table__).values(event_id=event_id, target="iga", state="received").returning(Case.id)
            )
            await conn.execute(insert(Job.__table__).values(case_id=case_id, run_at=now))
        return event_id

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        webhook_id = verify([SECRET], headers, raw)
        if lock is None:
            event_id = await store(json.loads(raw), webhook_id)
        else:
            async with lock:
                event_id = await store(json.loads(raw), webhook_id)
        out = json.dumps({"event_id": event_id, "duplicate": False}).encode()
        headers_out = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 202, "headers": headers_out})
        await send({"type": "http.response.body", "body": out})

    return app


def run_floor(database_url: str, port: int) -> None:
    import uvicorn

    uvicorn.run(floor_app(database_url), host="127.0.0.1", port=port, log_level="warning", backlog=2048)


# ------------------------------------------------------------------ the client


def request_bytes(port: int) -> bytes:
    from app.intake.signature import sign

    body = json.dumps(
        {
            "id": f"evt-{uuid.uuid4().hex}",
            "type": "user.terminated",
            "occurred_at": "2026-11-20T17:00:00Z",
            "source": "bench",
            "user": {"username": f"u{uuid.uuid4().hex[:10]}"},
        }
    ).encode()
    msg_id, ts = f"msg_{uuid.uuid4().hex}", int(time.time())
    head = (
        f"POST /webhooks/events HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nwebhook-id: {msg_id}\r\nwebhook-timestamp: {ts}\r\n"
        f"webhook-signature: {sign(SECRET, msg_id, ts, body)}\r\n\r\n"
    )
    return head.encode() + body


async def one_connection(port: int, next_slot: Callable[[], Awaitable[float | None]], out: list[float]) -> None:
    """Send requests on one keep-alive connection while `next_slot` gives a start time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (start := await next_slot()) is not None:
            writer.write(request_bytes(port))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            if status != 202:
                raise RuntimeError(f"answered {status}")
            out.append(time.perf_counter() - start)
    finally:
        writer.close()


async def drive(port: int, connections: int, seconds: float, rate: float | None) -> tuple[float, list[float]]:
    """Closed loop (`rate` None: each connection sends as fast as answered) or open loop at `rate`
    events/s (latency from the scheduled time). Returns events/s and the latencies."""
    end = time.perf_counter() + seconds
    begin = time.perf_counter()
    count = 0

    async def closed() -> float | None:
        now = time.perf_counter()
        return now if now < end else None

    async def opened() -> float | None:
        nonlocal count
        assert rate is not None
        at = begin + count / rate
        count += 1
        if at >= end:
            return None
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return at

    latencies: list[float] = []
    await asyncio.gather(*(one_connection(port, opened if rate else closed, latencies) for _ in range(connections)))
    return len(latencies) / (time.perf_counter() - begin), latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


# ------------------------------------------------------------------ servers and databases


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database(base: str | None, workdir: Path, name: str) -> str:
    from app.store.migrate import upgrade

    if base is None:
        url = f"sqlite+aiosqlite:///{workdir / name}.db"
    else:
        url = f"{base.rpartition('/')[0]}/leaver_bench_{name}_{uuid.uuid4().hex[:8]}"
        pg_admin(base, f'CREATE DATABASE "{url.rpartition("/")[2]}"')
    upgrade(url)
    return url


def pg_admin(base: str, sql: str) -> None:
    from sqlalchemy import text

    from app.store.db import make_engine

    async def run() -> None:
        engine = make_engine(f"{base.rpartition('/')[0]}/postgres")
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run())


def start(kind: str, url: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")}
    env |= {
        "LEAVER_DATABASE_URL": url,
        "LEAVER_DATA_DIR": str(workdir / f"data-{port}"),
        "LEAVER_TARGETS": json.dumps([TARGET]),
        "LEAVER_WEBHOOK_SECRET": SECRET,
        "LEAVER_OPS_TOKEN": TOKEN,
        "LEAVER_LOG_LEVEL": "warning",
    }
    if kind == "leaver":
        args = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "0"]
    else:
        args = [sys.executable, __file__, "--floor", url, "--port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.1)
    raise RuntimeError(f"{kind} did not start")


def measure(kind: str, base: str | None, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    url, port = fresh_database(base, workdir, kind), free_port()
    proc = start(kind, url, port, workdir)
    try:
        asyncio.run(drive(port, args.connections, args.warmup, None))
        peak, closed = asyncio.run(drive(port, args.connections, args.seconds, None))
        half, opened = asyncio.run(drive(port, args.connections, args.seconds, peak / 2))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if base is not None:
            pg_admin(base, f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    return {
        "peak": peak,
        "p50": pct(closed, 0.5),
        "p99": pct(closed, 0.99),
        "half": half,
        "half_p50": pct(opened, 0.5),
        "half_p99": pct(opened, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (a scratch database is made next to it)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--floor", help=argparse.SUPPRESS)  # internal: run the floor app on this URL
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        run_floor(args.floor, args.port)
        return
    with tempfile.TemporaryDirectory(prefix="leaver-bench-") as tmp:
        db = "postgresql" if args.database_url else "sqlite"
        results = {kind: measure(kind, args.database_url, args, Path(tmp)) for kind in ("floor", "leaver")}
    print(f"database {db}, {args.connections} connections, {args.seconds:.0f} s per phase")
    print(f"{'server':8} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} | {'half rate':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, r in results.items():
        print(
            f"{kind:8} {r['peak']:9.0f} {r['p50']:8.1f} {r['p99']:8.1f} | "
            f"{r['half']:9.0f} {r['half_p50']:8.1f} {r['half_p99']:8.1f}"
        )
    print(f"ratio leaver/floor: {results['leaver']['peak'] / results['floor']['peak']:.2f}")


if __name__ == "__main__":
    main()
