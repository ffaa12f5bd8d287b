"""The worker: claims due jobs, runs each case's steps, renews leases, backs off on failure.

Runs as asyncio tasks inside `leaver serve` or alone as `leaver worker`; any number of worker
processes may share one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app import faults
from app.domain import CASE_TERMINAL, FAILED_BEFORE_SUBMISSION, CaseState, ItemState
from app.iga.base import IgaNotSent, IgaPermanentError
from app.metrics import JOBS_CLAIMED
from app.runtime import Runtime
from app.store.models import Job, utcnow
from app.store.queue import Claim, LeaseLost, Renewal, claim_jobs, release, renew
from app.store.wakeups import listen_for_work
from app.worker.steps import STEPS, step_resolve
from app.worker.unit import Tx, snapshot, write

log = structlog.get_logger(__name__)
#: Items a failed case has not sent: they fail with it, and an operator retry plans them again.
ITEM_NOT_SENT = (ItemState.PLANNED, ItemState.SCHEDULED, ItemState.HELD)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def run_case(rt: Runtime, claim: Claim) -> None:
    """Advance one case as far as it can go now; every outcome is committed before returning."""
    faults.crash_point("after_claim")
    while True:
        snap = await snapshot(rt, claim.case_id)
        if snap.state in CASE_TERMINAL:
            async with write(rt, claim) as tx:
                await tx.schedule(None)
            return
        if snap.state is CaseState.RECEIVED:
            async with write(rt, claim) as tx:
                tx.changes.case(tx.case, CaseState.RESOLVING, "claimed by a worker")
        try:
            resolved = snap.resolved()
            if resolved is None:
                await step_resolve(rt, claim, snap)
            else:
                await STEPS[snap.state](rt, claim, resolved)
        except (LeaseLost, IgaNotSent) as exc:
            # The job may be another worker's now: stop, write nothing, send nothing more.
            log.warning("worker.lease_lost", case=claim.case_id, detail=str(exc))
            return
        except (DBAPIError, OSError, ConnectionError) as exc:
            if isinstance(exc, DBAPIError) and not exc.connection_invalidated and not _db_unreachable(exc):
                raise
            # The database is away: keep nothing in memory; the lease lapses and the job is claimed again.
            log.warning("worker.database_unavailable", case=claim.case_id, error=type(exc).__name__)
            return
        except IgaPermanentError as exc:
            await _dead_letter(rt, claim, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # IGA outage or a bug: bounded retries, then a dead letter
            await _retry_later(rt, claim, f"{type(exc).__name__}: {exc}")
            return
        async with rt.sessions() as session:
            job = await session.get(Job, claim.job_id)
        if job is None or job.case_id != claim.case_id or job.run_at > utcnow():
            return


def _db_unreachable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(s in text for s in ("connection", "terminat", "shutdown", "could not connect", "unable to open"))


async def _dead_letter(rt: Runtime, claim: Claim, error: str) -> None:
    async with write(rt, claim) as tx:
        await _fail_case(tx, error, f"dead letter: {error}")


async def _fail_case(tx: Tx, error: str, why: str) -> None:
    """Park the case for an operator. Items already with the IGA stay `submitted`, so an
    operator retry resumes tracking them; items never sent are failed with the reason; items whose
    send is unsettled are `uncertain`, never left looking planned."""
    log.error("worker.case_failed", case=tx.case.id, error=error)
    tx.case.error = error
    tx.changes.case(tx.case, CaseState.FAILED, why)
    for item in tx.case.items:
        if item.state not in ITEM_NOT_SENT:
            continue
        if item.request_row_id is None:
            item.note = f"{FAILED_BEFORE_SUBMISSION}: {error}"
            tx.changes.item(item, ItemState.FAILED, item.note, event_id=tx.case.event_id)
        else:  # written ahead: the IGA may have it. Retry looks it up; or an operator settles it.
            item.note = f"a send may have reached the IGA; retry looks for it, or settle the case: {error}"
            tx.changes.item(item, ItemState.UNCERTAIN, item.note, event_id=tx.case.event_id)
    await tx.schedule(None)


async def _retry_later(rt: Runtime, claim: Claim, error: str) -> None:
    async with write(rt, claim) as tx:
        case = tx.case
        case.attempts += 1
        case.error = error
        if case.attempts >= rt.settings.max_step_attempts:
            await _fail_case(tx, error, f"dead letter after {case.attempts} attempts: {error}")
            return
        delay = min(300.0, 2.0**case.attempts) * (0.5 + random.random() / 2)
        tx.changes.case_note(case, f"attempt {case.attempts} failed, retry in {delay:.0f}s: {error}")
        log.warning("worker.step_failed", case=case.id, state=case.state, attempt=case.attempts, error=error)
        await tx.schedule(tx.now + timedelta(seconds=delay))


class Worker:
    """Claims up to `concurrency` jobs at a time and works them concurrently."""

    def __init__(self, rt: Runtime, concurrency: int, name: str | None = None) -> None:
        self.rt = rt
        self.concurrency = max(1, concurrency)
        self.name = name or worker_name()
        self._running: dict[int, tuple[Claim, asyncio.Task[None]]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker.started", worker=self.name, concurrency=self.concurrency)
        listener = None
        if self.rt.postgres:  # other processes store work too: hear about it through the database
            url = self.rt.settings.resolved_database_url
            listener = asyncio.create_task(listen_for_work(url, self.rt.wakeup, stop))
        backoff = 0.0
        while not stop.is_set():
            free = self.concurrency - len(self._running)
            claims: list[Claim] = []
            if free > 0:
                try:
                    claims = await claim_jobs(
                        self.rt.sessions,
                        self.name,
                        self.rt.settings.lease_seconds,
                        free,
                        postgres=self.rt.postgres,
                    )
                    backoff = 0.0
                except (SQLAlchemyError, OSError) as exc:
                    backoff = min(30.0, max(0.5, backoff * 2))
                    log.warning("worker.database_unavailable", error=type(exc).__name__, retry_in=backoff)
            for claim in claims:
                JOBS_CLAIMED.inc()
                task = asyncio.create_task(self._work(claim))
                self._running[claim.job_id] = (claim, task)
            if not claims:
                await self._idle(stop, backoff or self.rt.settings.idle_poll_seconds)
        if listener is not None:
            await listener
        await self.drain(self.rt.settings.shutdown_grace_seconds)

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait for the next poll, unless work arrives or the worker is stopped first."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.rt.wakeup.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            self.rt.wakeup.clear()

    async def _work(self, claim: Claim) -> None:
        finished = asyncio.Event()
        work = asyncio.current_task()
        renewer = asyncio.create_task(self._renew(claim, finished, work))
        try:
            await run_case(self.rt, claim)
        except Exception:
            log.exception("worker.unexpected_error", case=claim.case_id)
        finally:
            # Stop renewing, but let a renewal in flight finish: cancelling it mid-query would
            # drop its database connection.
            finished.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(renewer, timeout=self.rt.settings.lease_seconds)
            self._running.pop(claim.job_id, None)

    async def _renew(self, claim: Claim, finished: asyncio.Event, work: asyncio.Task[None] | None) -> None:
        """Keep the lease while the case is worked; once it is lost, stop the work at once (an
        IGA call under way is abandoned: its batch is `sending`, and the next owner looks it up)."""
        interval = self.rt.settings.lease_seconds / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), timeout=interval)
                return
            try:
                renewal = await renew(self.rt.sessions, claim, self.rt.settings.lease_seconds)
                if renewal is Renewal.LOST and work is not None and not finished.is_set():
                    log.warning("worker.lease_lost", case=claim.case_id, detail="another worker holds the job")
                    work.cancel()
                if renewal is not Renewal.RENEWED:
                    return
            except (SQLAlchemyError, OSError):
                log.warning("worker.lease_renew_failed", case=claim.case_id)

    async def drain(self, grace: float) -> None:
        """Shutdown: let running cases finish their step, then hand back what is left."""
        if not self._running:
            return
        tasks = [t for _, t in self._running.values()]
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for claim, task in list(self._running.values()):
            if task in pending:
                task.cancel()
                try:
                    await release(self.rt.sessions, claim)
                except (SQLAlchemyError, OSError):
                    log.warning("worker.release_failed", case=claim.case_id)
        log.info("worker.stopped", worker=self.name, released=len(pending))


async def next_due_in(rt: Runtime) -> float | None:
    """Seconds until the next job is due (for tests and the status page)."""
    async with rt.sessions() as session:
        run_at = await session.scalar(select(Job.run_at).order_by(Job.run_at).limit(1))
    return None if run_at is None else max(0.0, (run_at - utcnow()).total_seconds())
