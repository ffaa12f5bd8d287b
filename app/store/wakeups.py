"""Waking idle workers when work arrives instead of letting them find it at their next poll: within
one process an asyncio event; across processes on PostgreSQL a `NOTIFY` sent in the transaction
that stores the work (delivered at commit) and a `LISTEN` per worker process. Polling stays as the
fallback, so a lost notification only costs the poll interval."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "leaver_work"
log = structlog.get_logger(__name__)


async def notify_work(session: AsyncSession) -> None:
    """Inside the storing transaction: tell every listening worker process once it commits."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


async def listen_for_work(database_url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set `wake` on every notification until `stop`; reconnect after a lost connection."""
    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    backoff = 1.0
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("wakeups.listen_failed", error=type(exc).__name__, retry_in=backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(30.0, backoff * 2)
            continue
        backoff = 1.0
        try:
            await _listen(conn, wake, stop)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)


async def _listen(conn: asyncpg.Connection, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Until `stop`, or until the connection is lost (then the caller connects again)."""
    lost = asyncio.Event()
    await conn.add_listener(CHANNEL, lambda *_: wake.set())
    conn.add_termination_listener(lambda *_: lost.set())
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
