"""A harness for replaying exact sequences against the real pipeline, in one event loop: the IGA
simulator of each registered system mounted in-process, the real adapter, the real database, and
workers driven one step at a time. A worker stops at a named crash point (as SIGKILL would leave
it), and the IGA can be made to act on a submission only when the test says so, after the
worker's call has already timed out. Submissions are counted at the simulator, through its probes.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.domain import LeaverEvent
from app.iga.registry import ADAPTERS
from app.runtime import Runtime, build_runtime
from app.simulator import SIMULATORS, simulator_spec
from app.store.intake import store_event
from app.store.models import Case, Job, PlanItem, utcnow
from app.store.queue import Claim
from app.worker.loop import run_case
from tests.conftest import make_settings

SYSTEMS = sorted(set(SIMULATORS) & set(ADAPTERS))
TARGET = "iga"


class Stopped(BaseException):
    """The worker stops dead at a named point: its open transaction rolls back, nothing else runs."""


_stop_at: ContextVar[str | None] = ContextVar("leaver_stop_at", default=None)


def _crash_point(name: str) -> None:
    if _stop_at.get() == name:
        raise Stopped(name)


@dataclasses.dataclass
class Held:
    request: httpx.Request
    body: bytes


class HoldingTransport(httpx.AsyncBaseTransport):
    """The simulator in-process. With `hold_submits`, a submission never answers (the caller's
    read times out) and reaches the IGA only when the test calls `release()`: an IGA slower than
    the read timeout."""

    def __init__(self, app: FastAPI, submit: tuple[str | None, str]) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.submit = submit
        self.hold_submits = False
        #: With `hold_submits`, this many more submissions still reach the IGA before the holding starts.
        self.let_through = 0
        self.held: list[Held] = []
        self.submit_calls = 0

    def _is_submit(self, request: httpx.Request) -> bool:
        method, path = self.submit
        return method in (None, request.method) and fnmatch.fnmatchcase(request.url.path, path)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._is_submit(request):
            self.submit_calls += 1
            if self.hold_submits and self.let_through > 0:
                self.let_through -= 1
            elif self.hold_submits:
                self.held.append(Held(request, await request.aread()))
                raise httpx.ReadTimeout("held: the IGA has not answered yet", request=request)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        return response

    async def release(self) -> None:
        """The IGA acts on every held submission now."""
        held, self.held = self.held, []
        for h in held:
            copy = httpx.Request(h.request.method, h.request.url, headers=h.request.headers, content=h.body)
            await (await self.inner.handle_async_request(copy)).aread()


@dataclasses.dataclass
class Stack:
    system: str
    rt: Runtime
    sim: Any  # the simulator's state, with its probes
    transport: HoldingTransport

    async def deliver(self, body: dict[str, Any]) -> int:
        """Store an event as intake would; its case ID."""
        stored = await store_event(
            self.rt.sessions, LeaverEvent.model_validate(body), targets=[TARGET], webhook_id=None
        )
        return stored.case_ids[0]

    async def work(self, case_id: int, *, stop_at: str | None = None) -> None:
        """A worker claims this case's job (due now, whatever its schedule) and runs it as far
        as it goes now, or until `stop_at`."""
        async with self.rt.sessions() as session, session.begin():
            job = await session.scalar(select(Job).where(Job.case_id == case_id))
            if job is None:
                return
            job.claims += 1
            job.lease_owner, job.lease_until, job.run_at = "test", None, utcnow()
            claim = Claim(job.id, case_id, job.claims)
        token = _stop_at.set(stop_at)
        try:
            await run_case(self.rt, claim)
        except Stopped:
            pass
        finally:
            _stop_at.reset(token)

    async def work_until_finished(self, case_id: int, rounds: int = 40) -> None:
        """Let time pass for this case (and the IGA's clock) until its job is gone."""
        for _ in range(rounds):
            async with self.rt.sessions() as session:
                if await session.scalar(select(Job.id).where(Job.case_id == case_id)) is None:
                    return
            self.sim.clock.advance(60)
            await self.work(case_id)
        async with self.rt.sessions() as session:
            case = await session.get(Case, case_id)
            items = list(await session.scalars(select(PlanItem).where(PlanItem.case_id == case_id)))
        detail = [(i.name, i.state, i.iga_status, i.note) for i in items]
        raise AssertionError(f"case {case_id} did not finish: {case and case.state} {case and case.error} {detail}")

    def submissions(self) -> Counter[tuple[str, str]]:
        """(IGA user, item) of every removal the IGA acted on."""
        return Counter((s.user, s.item) for s in self.sim.submissions())


@pytest.fixture
def crash_points() -> Iterator[None]:
    with mock.patch("app.faults.crash_point", _crash_point):
        yield


@pytest.fixture
async def make_stack(database_url: str, tmp_path: Path, crash_points: None) -> AsyncIterator[Any]:
    opened: list[Runtime] = []

    async def start(system: str, options: dict[str, Any] | None = None, **overrides: Any) -> Stack:
        spec = simulator_spec(system)
        sim_app = spec.create_app()
        sim = sim_app.state.sim
        transport = HoldingTransport(sim_app, type(sim).endpoints["submit"])
        async with httpx.AsyncClient(transport=transport.inner, base_url="http://iga.test") as control:
            config = {**spec.test_config, "approval_delay": 0, "fulfil_delay": 30, "verify_delay": 0}
            (await control.post("/_config", json=config)).raise_for_status()
        target = spec.demo_target("http://iga.test", TARGET)
        target = target.model_copy(
            update={
                "listing_lag_seconds": 0,
                "options": {**target.options, **(options or {})},
                "http": target.http.model_copy(
                    update={"attempts": 2, "retry_budget_seconds": 2.0, "read_timeout": 5.0, "requests_per_second": 1e6}
                ),
            }
        )
        settings = make_settings(
            database_url,
            tmp_path,
            [target],
            resend_grace_seconds=60.0,
            track_initial_seconds=5.0,
            verify_grace_seconds=0.0,
            lease_seconds=60.0,
            **overrides,
        )
        rt = build_runtime(settings, transports={TARGET: transport})
        opened.append(rt)
        return Stack(system, rt, sim, transport)

    yield start
    for rt in opened:
        await rt.aclose()
