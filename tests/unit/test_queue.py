"""A claim names its job by ID: a job that ended must never lend its ID, or a worker still holding
the old claim would pass the fence on another case's job (and could end it). Found when a finished
case's worker deleted the job intake had just created, with the freed ID, for the next case."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete

from app.domain import LeaverEvent
from app.runtime import Runtime, build_runtime
from app.settings import Settings
from app.store.intake import store_event
from app.store.models import Job
from app.store.queue import Claim, LeaseLost, claim_jobs, fence


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    yield runtime
    await runtime.aclose()


async def arrive(rt: Runtime, k: int) -> None:
    body = {"id": f"q{k}", "type": "user.terminated", "occurred_at": "2026-11-20T17:00:00Z", "user": {"username": "u"}}
    await store_event(rt.sessions, LeaverEvent.model_validate(body), targets=["iga"], webhook_id=None)


async def test_a_finished_jobs_id_is_never_given_to_the_next_job(rt: Runtime) -> None:
    await arrive(rt, 1)
    (old,) = await claim_jobs(rt.sessions, "w1", 60, 10, postgres=rt.postgres)
    async with rt.sessions() as session, session.begin():
        await session.execute(delete(Job).where(Job.id == old.job_id))  # its case finished
    await arrive(rt, 2)
    (new,) = await claim_jobs(rt.sessions, "w1", 60, 10, postgres=rt.postgres)
    assert new.job_id != old.job_id

    async with rt.sessions() as session, session.begin():  # the old claim no longer proves anything
        with pytest.raises(LeaseLost):
            await fence(session, Claim(new.job_id, old.case_id, new.token), 60)
        await fence(session, new, 60)
