"""One request budget per IGA target, shared by every worker process through the database.

Virtual scheduling: each call takes the next free slot in one UPDATE (the row is the schedule,
the database clock the only clock) and sleeps until it. Bursts of up to `burst` calls go at once.
On SQLite (one process) the in-process pacer of the HTTP layer does the same job.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store.models import RateBudget


class SharedPacer:
    """Spaces the calls of all processes to `target` at `rate` per second."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], target: str, rate: float, burst: int = 1) -> None:
        self._sessions, self._target = sessions, target
        self._interval = timedelta(seconds=1.0 / rate)
        self._burst = max(1, burst)
        self._ready = False

    async def wait(self) -> None:
        slot, now = await self._take_slot()
        delay = (slot - now).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _take_slot(self) -> tuple[datetime, datetime]:
        async with self._sessions() as session, session.begin():
            if not self._ready:
                await session.execute(
                    insert(RateBudget)
                    .values(target=self._target, next_free_at=func.clock_timestamp())
                    .on_conflict_do_nothing()
                )
                self._ready = True
            now = select(func.clock_timestamp()).scalar_subquery()
            earliest = now - self._interval * (self._burst - 1)
            row = (
                await session.execute(
                    update(RateBudget)
                    .where(RateBudget.target == self._target)
                    .values(next_free_at=func.greatest(RateBudget.next_free_at, earliest) + self._interval)
                    .returning(RateBudget.next_free_at, func.clock_timestamp())
                )
            ).one()
        next_free, db_now = row
        return next_free - self._interval, db_now
