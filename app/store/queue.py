"""The job queue on our own table: claim with a lease, fence every write with the claim token.

PostgreSQL: `FOR UPDATE SKIP LOCKED`, so many workers claim disjoint jobs without waiting.
SQLite: every transaction is `BEGIN IMMEDIATE`, so claims serialise within the one process.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store.models import Job, utcnow


@dataclass(frozen=True)
class Claim:
    """A job this worker holds; `token` fences writes against a worker that lost the lease."""

    job_id: int
    case_id: int
    token: int


class LeaseLost(Exception):
    """Another worker claimed the job after our lease expired: drop our result."""


async def claim_jobs(
    sessions: async_sessionmaker[AsyncSession], owner: str, lease: float, limit: int, *, postgres: bool
) -> list[Claim]:
    now = utcnow()
    stmt = (
        select(Job)
        .where(Job.run_at <= now, or_(Job.lease_until.is_(None), Job.lease_until < now))
        .order_by(Job.run_at, Job.id)
        .limit(limit)
    )
    if postgres:
        stmt = stmt.with_for_update(skip_locked=True)
    async with sessions() as session, session.begin():
        jobs = list((await session.scalars(stmt)).all())
        for job in jobs:
            job.lease_owner = owner
            job.lease_until = now + timedelta(seconds=lease)
            job.claims += 1
        claims = [Claim(j.id, j.case_id, j.claims) for j in jobs]
    return claims


async def fence(session: AsyncSession, claim: Claim, lease: float) -> None:
    """Inside a write transaction: prove we still hold the job (and extend the lease)."""
    result = await session.execute(
        update(Job)
        .where(Job.id == claim.job_id, Job.case_id == claim.case_id, Job.claims == claim.token)
        .values(lease_until=utcnow() + timedelta(seconds=lease))
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"job {claim.job_id} was claimed by another worker")


class Renewal(enum.Enum):
    RENEWED = "renewed"
    FREED = "freed"  # we gave the job up ourselves (scheduled for later, or finished): stop renewing
    LOST = "lost"  # another worker claimed it since: our work must stop


async def renew(sessions: async_sessionmaker[AsyncSession], claim: Claim, lease: float) -> Renewal:
    """Extend a lease we still hold. A job its worker has already freed (scheduled for later,
    `lease_until` NULL, or done and deleted) stays free: a late renewal must not lease it again to
    nobody. Only a job claimed by someone else since is lost."""
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(Job)
            .where(
                Job.id == claim.job_id,
                Job.case_id == claim.case_id,
                Job.claims == claim.token,
                Job.lease_until.is_not(None),
            )
            .values(lease_until=utcnow() + timedelta(seconds=lease))
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return Renewal.RENEWED
        claims = await session.scalar(select(Job.claims).where(Job.id == claim.job_id, Job.case_id == claim.case_id))
    return Renewal.FREED if claims is None or claims == claim.token else Renewal.LOST


async def release(sessions: async_sessionmaker[AsyncSession], claim: Claim, run_at: datetime | None = None) -> None:
    """Give a job back unfinished (shutdown), due again at once or at `run_at`."""
    async with sessions() as session, session.begin():
        values: dict[str, object] = {"lease_owner": None, "lease_until": None}
        if run_at is not None:
            values["run_at"] = run_at
        await session.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.case_id == claim.case_id, Job.claims == claim.token)
            .values(**values)
        )
