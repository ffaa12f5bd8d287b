"""The unit of work of a step: a snapshot read before the IGA is called, and one fenced write
transaction after it. A step never holds a transaction open across an IGA call.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import CaseState, IgaUser, LeaverEvent
from app.runtime import Runtime
from app.store.models import Case, IgaRequest, Job, PlanItem
from app.store.queries import Person, load_case
from app.store.queue import Claim, fence
from app.store.transitions import Transitions

ACTOR = "worker"


class Tx:
    """One fenced write transaction of a step on its case (loaded fresh, with items and event)."""

    def __init__(self, session: AsyncSession, claim: Claim, case: Case) -> None:
        self.session, self.claim, self.case = session, claim, case
        self.changes = Transitions(session, ACTOR)
        self.now = self.changes.now

    async def schedule(self, at: datetime | None) -> None:
        """Next run of this case's job; None ends the job (the case is terminal)."""
        if at is None:
            await self.session.execute(delete(Job).where(Job.id == self.claim.job_id))
            return
        job = await self.session.get(Job, self.claim.job_id)
        if job is None:  # the fence proved we hold it in this very transaction
            raise RuntimeError(f"job {self.claim.job_id} vanished under its lease")
        if job.nudged:  # an operator acted on the case meanwhile: look at it again now
            at, job.nudged = min(at, self.now), False
        job.run_at = at
        if at > self.now:
            # Nothing more to do now: free the job so whichever worker is idle then takes it.
            job.lease_owner = job.lease_until = None


@asynccontextmanager
async def write(rt: Runtime, claim: Claim) -> AsyncIterator[Tx]:
    """A fenced transaction with the case and its items loaded fresh."""
    async with rt.sessions() as session, session.begin():
        await fence(session, claim, rt.settings.lease_seconds)
        yield Tx(session, claim, await load_case(session, claim.case_id))


async def lease_deadline(rt: Runtime, claim: Claim) -> float:
    """Prove the job is still ours (raises LeaseLost) and return, as `time.monotonic()`, when an
    IGA write must be answered by: before the lease could pass to another worker. A fifth of the
    lease is kept back for clocks that disagree and for committing the answer."""
    start = time.monotonic()
    async with rt.sessions() as session, session.begin():
        await fence(session, claim, rt.settings.lease_seconds)
    return start + rt.settings.lease_seconds * 0.8


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A case as a step reads it before talking to the IGA (detached: plain values only)."""

    case_id: int
    state: CaseState
    target: str
    event: LeaverEvent
    event_id: str
    user: IgaUser | None
    items: list[PlanItem]
    requests: list[IgaRequest]
    created_at: datetime
    dry_run: bool
    guard_batch_id: int | None

    def resolved(self) -> Resolved | None:
        """The same snapshot with its user, once resolve has found them."""
        if self.user is None:
            return None
        return Resolved(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


@dataclasses.dataclass(frozen=True)
class Resolved(Snapshot):
    """A snapshot past resolve: the user is known."""

    user: IgaUser

    @property
    def person(self) -> Person:
        return Person(self.target, self.user.id, self.case_id, self.event)


async def snapshot(rt: Runtime, case_id: int) -> Snapshot:
    async with rt.sessions() as session:
        case = await load_case(session, case_id)
        requests = list(await session.scalars(select(IgaRequest).where(IgaRequest.case_id == case_id)))
        return Snapshot(
            case_id=case.id,
            state=CaseState(case.state),
            target=case.target,
            event=case.event.leaver_event(),
            event_id=case.event_id,
            user=case.user(),
            items=list(case.items),
            requests=requests,
            created_at=case.created_at,
            dry_run=case.dry_run,
            guard_batch_id=case.guard_batch_id,
        )
