"""Engine and session setup for SQLite (embedded, one process) and PostgreSQL (many replicas)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.store.models import Base


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An engine tuned per dialect: SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE`
    (so a write never fails half-way on a lock upgrade); PostgreSQL gets a pool without a
    pre-ping per checkout (a round trip on every request): a dropped connection fails its statement
    once, is invalidated, and is answered 503 or retried (intake) by the caller."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_pre_ping=False,
        pool_size=10,
        max_overflow=10,
        pool_timeout=10,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


__all__ = ["Base", "is_postgres", "make_engine", "make_sessionmaker"]


_WRITE_SLOTS: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_slot(sessions: async_sessionmaker[AsyncSession]) -> AbstractAsyncContextManager[Any]:
    """On SQLite, one of this process's write transactions at a time (per engine and event loop):
    waiting in an asyncio queue is cheaper and fairer than many pooled connections retrying
    `BEGIN IMMEDIATE` under the busy timeout. PostgreSQL writers run concurrently."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    per_loop = _WRITE_SLOTS.setdefault(engine.sync_engine, weakref.WeakKeyDictionary())
    return per_loop.setdefault(asyncio.get_running_loop(), asyncio.Lock())
