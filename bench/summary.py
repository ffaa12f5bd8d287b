"""Reads against a long history: fills a fresh database with `--cases` finished cases of
`--items-per-case` removed items each (bulk Core inserts, spread over `--days` days), starts a real
`leaver serve` on it, and times `/status/summary` and the console overview `/`, with the server's
RSS before and after.

    .venv/bin/python bench/summary.py [--database-url postgresql+asyncpg://...] [--cases 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.intake import TOKEN, free_port, fresh_database, pg_admin, start

BATCH = 5_000


async def fill(url: str, cases: int, per_case: int, days: float) -> None:
    """Events, done cases and removed items, as the worker would have left them."""
    from sqlalchemy import insert

    from app.store.db import make_engine
    from app.store.models import Audit, Case, Event, PlanItem

    rng = random.Random(1)
    now = datetime.now(UTC)
    engine = make_engine(url)
    events, rows, items, audit = [], [], [], []
    for n in range(1, cases + 1):
        received = now - timedelta(days=rng.uniform(0, days))
        finished = received + timedelta(seconds=rng.uniform(1, 3600))
        event_id = f"ev_bench_{n:07d}"
        events.append(
            {
                "id": event_id,
                "source": "bench",
                "external_id": str(n),
                "type": "user.terminated",
                "occurred_at": received,
                "effective_at": received,
                "received_at": received,
                "user_username": f"u{n}",
                "payload": {"id": str(n), "user": {"username": f"u{n}"}, "type": "user.terminated"},
            }
        )
        rows.append(
            {
                "id": n,
                "event_id": event_id,
                "target": "iga",
                "state": "done",
                "created_at": received,
                "updated_at": finished,
                "finished_at": finished,
            }
        )
        audit.append({"actor": "intake", "entity": "event", "entity_id": event_id, "event_id": event_id, "why": "x"})
        for k in range(per_case):
            done = received + timedelta(seconds=rng.uniform(1, 3600))
            items.append(
                {
                    "case_id": n,
                    "item_id": f"g{k}",
                    "item_type": "group",
                    "name": f"Group {k}",
                    "action": "remove",
                    "rule": "default",
                    "reason": "leaver",
                    "state": "removed",
                    "iga_done_at": done,
                    "finished_at": done,
                    "updated_at": done,
                }
            )
    async with engine.begin() as conn:
        for table, data in ((Event, events), (Case, rows), (PlanItem, items), (Audit, audit)):
            for i in range(0, len(data), BATCH):
                await conn.execute(insert(table.__table__), data[i : i + BATCH])
    await engine.dispose()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(client: httpx.Client, path: str, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        began = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL URL (a scratch database is made next to it)")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--items-per-case", type=int, default=10)
    parser.add_argument("--days", type=float, default=14.0, help="finish times spread over this many days")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leaver-bench-") as tmp:
        url = fresh_database(args.database_url, Path(tmp), "summary")
        began = time.perf_counter()
        asyncio.run(fill(url, args.cases, args.items_per_case, args.days))
        filled = time.perf_counter() - began
        port = free_port()
        proc = start("leaver", url, port, Path(tmp))
        try:
            headers = {"authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
                client.get("/healthz")
                idle = rss_mb(proc.pid)
                first = {path: timed(client, path, 1)[0] for path in ("/status/summary", "/")}
                before = rss_mb(proc.pid)  # after one of each: imports, templates and statement caches are warm
                results = {path: timed(client, path, args.rounds) for path in ("/status/summary", "/")}
                after = rss_mb(proc.pid)
                summary = client.get("/status/summary").json()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if args.database_url:
                pg_admin(args.database_url, f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    db = "postgresql" if args.database_url else "sqlite"
    items = args.cases * args.items_per_case
    print(
        f"database {db}: {args.cases} done cases, {items} removed items over {args.days:g} days "
        f"(filled in {filled:.0f} s)"
    )
    for path, ms in results.items():
        print(
            f"GET {path:16} first {first[path]:7.1f} ms  then median {statistics.median(ms):7.1f} ms"
            f"  max {max(ms):7.1f} ms  ({args.rounds} rounds)"
        )
    print(f"server RSS {idle:.1f} MB idle, {before:.1f} MB after the first of each, {after:.1f} MB after all")
    print(f"time_to_revoke_seconds: {summary['time_to_revoke_seconds']}")


if __name__ == "__main__":
    main()
