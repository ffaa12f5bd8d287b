"""Idle workers hear about new work at once: through the runtime's event within one process, and
through PostgreSQL's NOTIFY from another process, instead of waiting out their poll interval."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from app.domain import LeaverEvent
from app.runtime import build_runtime
from app.settings import TargetSettings
from app.store.intake import store_event
from app.store.models import Job
from app.worker.loop import Worker
from tests.conftest import make_settings

TARGETS = [
    TargetSettings(
        name="iga",
        system="netiq-ig",
        base_url="http://127.0.0.1:9/unused",
        client_id="c",
        client_secret="s",  # type: ignore[arg-type]
        username="u",
        password="p",  # type: ignore[arg-type]
    )
]
EVENT = LeaverEvent.model_validate(
    {"id": "e1", "type": "user.terminated", "occurred_at": "2026-11-20T17:00:00Z", "user": {"username": "jdoe"}}
)
#: Far longer than the test waits: a claim within the wait can only come from a wakeup.
POLL = 60.0


async def claimed(rt_sessions: object, timeout: float = 15.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with rt_sessions() as session:  # type: ignore[operator]
            job = await session.scalar(select(Job))
            if job is not None and job.claims > 0:
                return True
        await asyncio.sleep(0.05)
    return False


async def run_idle_worker(database_url: str, tmp_path: Path, store_from_another_runtime: bool) -> bool:
    settings = make_settings(database_url, tmp_path, TARGETS, idle_poll_seconds=POLL, workers=1)
    rt = build_runtime(settings)
    other = build_runtime(settings) if store_from_another_runtime else rt
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(rt, 1).run(stop))
    try:
        await asyncio.sleep(0.5)  # the worker has polled once, found nothing, and is idle
        await store_event(other.sessions, EVENT, targets=["iga"], webhook_id=None)
        if not store_from_another_runtime:
            rt.wakeup.set()  # what intake does after its commit
        return await claimed(rt.sessions)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=POLL)
        await rt.aclose()
        if other is not rt:
            await other.aclose()


async def test_work_stored_in_the_same_process_wakes_an_idle_worker(database_url: str, tmp_path: Path) -> None:
    assert await run_idle_worker(database_url, tmp_path, store_from_another_runtime=False)


@pytest.mark.postgres
async def test_work_stored_by_another_process_wakes_an_idle_worker(database_url: str, tmp_path: Path) -> None:
    assert await run_idle_worker(database_url, tmp_path, store_from_another_runtime=True)
