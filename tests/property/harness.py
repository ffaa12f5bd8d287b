"""The harness that plays a scenario against the real pipeline, the real adapter and a real
database, in one event loop, with the IGA simulator of one registered system mounted in-process
(no sockets): crashes at named points or in the middle of an IGA call, stalled workers, expired
leases, time passing, IGA faults, and at the end the settling that lets every job finish.

It knows no IGA system: which calls a fault is aimed at comes from the simulator's `endpoints`,
its test settings from `simulator_spec`, and what the IGA did from the simulator's probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import itertools
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text, update

from app.main import create_app as create_api
from app.runtime import Runtime, build_runtime
from app.settings import TargetSettings
from app.simulator import simulator_spec
from app.simulator.base import FaultRule, Faults, Submission
from app.store.models import Case, Job, PlanItem, utcnow
from app.store.queue import Claim, LeaseLost, claim_jobs
from app.worker.loop import run_case
from tests.conftest import OPS_TOKEN, PG_URL, make_settings
from tests.property.scenarios import (
    Advance,
    ClearFaults,
    Deliver,
    ExpireLeases,
    Fault,
    Kill,
    Op,
    Run,
    Scenario,
    Stall,
    Tick,
)
from tests.support import endpoints_of, signed, with_http

TARGET = "iga"
LEASE_SECONDS = 60.0
#: Settling: rounds of "expire leases, let time pass, run every due job".
SETTLE_ROUNDS = 80
SETTLE_SECONDS = 45.0
#: The IGA acts at once, unless the scenario wants it slow.
INSTANT_IGA: dict[str, Any] = {"approval_delay": 0, "fulfil_delay": 0, "verify_delay": 0, "token_lifetime": 3600}
SLOW_IGA: dict[str, Any] = {"approval_delay": 5, "fulfil_delay": 5}


# ---------------------------------------------------------------- crashes, stalls and timeouts


class Crash(BaseException):
    """A simulated SIGKILL: unwinds the worker without any `except Exception` handler running, so
    the open transaction rolls back and the job's lease is left to expire."""


@dataclasses.dataclass
class Control:
    """Per worker task: where it dies (or, `stall`, freezes)."""

    at: str
    nth: int
    stall: bool = False
    seen: int = 0
    frozen: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def hit(self, point: str) -> bool:
        if point != self.at:
            return False
        self.seen += 1
        return self.seen == self.nth


CONTROL: ContextVar[Control | None] = ContextVar("leaver_property_control", default=None)


def crash_point(name: str) -> None:
    control = CONTROL.get()
    if control is not None and not control.stall and control.hit(name):
        raise Crash(name)


@contextlib.contextmanager
def patched_crash_points() -> Iterator[None]:
    """Every module reaches its crash points through `app.faults.crash_point`: replace it there."""
    with mock.patch("app.faults.crash_point", crash_point):
        yield


@dataclasses.dataclass
class TimeoutRule:
    method: str | None
    path: str
    when: str
    count: int


class ChaosTransport(httpx.AsyncBaseTransport):
    """The simulator in-process, plus timeouts (the request never arrives, or its answer never
    comes back), and the per-task crash or stall of the worker in the middle of an IGA call."""

    def __init__(self, app: FastAPI, token_path: str) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.token_path = token_path
        self.timeouts: list[TimeoutRule] = []

    def _timeout(self, request: httpx.Request) -> TimeoutRule | None:
        for rule in self.timeouts:
            if (
                rule.count > 0
                and rule.method in (None, request.method)
                and fnmatch.fnmatchcase(request.url.path, rule.path)
            ):
                rule.count -= 1
                return rule
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        control = CONTROL.get()
        if fnmatch.fnmatchcase(request.url.path, self.token_path):
            # Not a worker's own call: one token serves every worker of the process (a worker frozen
            # while holding the token lock would freeze the others, which separate processes are not).
            control = None
        if control is not None and control.hit("http-before"):
            raise Crash("http-before")
        rule = self._timeout(request)
        if rule is not None and rule.when == "before":
            raise httpx.ReadTimeout("simulated timeout: the request never arrived", request=request)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if rule is not None:
            raise httpx.ReadTimeout("simulated timeout: the IGA acted, the answer was lost", request=request)
        if control is not None and control.hit("http-after"):
            if not control.stall:
                raise Crash("http-after")
            control.frozen.set()
            await control.wake.wait()
        return response


# ---------------------------------------------------------------- the harness


class Harness:
    """One scenario against one system: the operations, settling, and what the IGA did."""

    def __init__(self, system: str, scenario: Scenario, rt: Runtime, sim_app: FastAPI, transport: ChaosTransport):
        self.system = system
        self.scenario = scenario
        self.rt = rt
        self.sim: Any = sim_app.state.sim  # the simulator, read through its probes
        self.endpoints = endpoints_of(sim_app)
        self.transport = transport
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api(rt, workers=0)), base_url="http://leaver.test"
        )
        self.delivered: dict[int, str] = {}  # event index -> leaver event ID
        self.first_webhook_id: dict[int, str] = {}
        self.delivery_order: list[int] = []
        self.unexpected: list[str] = []
        self.crashes = 0
        self.retried = 0
        self.worker_names = (f"w{n}" for n in itertools.count())

    async def aclose(self) -> None:
        await self.api.aclose()

    # ------------------------------------------------------------ what the IGA did

    def submissions(self) -> list[Submission]:
        """Every removal submission the IGA acted on."""
        with self.sim.lock:
            return list(self.sim.submissions())

    def withdrawn(self) -> Counter[tuple[str, str]]:
        """(user, item) of every request the IGA withdrew."""
        with self.sim.lock:
            return Counter((w.user, w.item) for w in self.sim.withdrawn())

    def user_id(self, username: str) -> str:
        with self.sim.lock:
            return str(self.sim.user_id(username))

    # ------------------------------------------------------------ the whole run

    async def play(self) -> None:
        """Every operation, then settle; dead letters retried as an operator would, and settled again."""
        for op in self.scenario.ops:
            await self.apply(op)
        await self.settle()
        for _ in range(2):
            retried = await self.retry_dead_letters()
            if not retried:
                break
            self.retried += len(retried)
            await self.settle()

    async def stats(self) -> list[str]:
        """What the run went through, for Hypothesis's statistics."""
        async with self.rt.sessions() as session:
            states = set(await session.scalars(select(PlanItem.state)))
        n = len(self.submissions())
        return [
            f"submissions: {n if n < 10 else '10+'}",
            f"withdrawn by the IGA: {sum(self.withdrawn().values()) > 0}",
            f"crashes: {min(self.crashes, 3)}",
            f"dead letters retried: {self.retried > 0}",
            *(f"item state seen: {state}" for state in sorted(states)),
        ]

    # ------------------------------------------------------------ operations

    async def apply(self, op: Op) -> None:
        match op:
            case Deliver(k, same, twice):
                if twice:
                    await self.deliver_twice(k, same)
                else:
                    await self.deliver(k, same)
            case Run(n, concurrent):
                claims = await self.claim(n)
                if concurrent:
                    await asyncio.gather(*(self.work(c) for c in claims))
                else:
                    for c in claims:
                        await self.work(c)
            case Kill(at, nth):
                claims = await self.claim(1)
                if not claims:  # nothing due: let time pass so that the kill has a victim
                    await self.tick()
                    claims = await self.claim(1)
                for c in claims:
                    await self.work(c, Control(at, nth))
            case Stall(nth):
                await self.stall(nth)
            case ExpireLeases():
                await self.expire_leases()
            case Tick():
                await self.tick()
            case Fault(endpoint, kind, when, count):
                self.add_fault(endpoint, kind, when, count)
            case ClearFaults():
                self.clear_faults()
            case Advance(seconds):
                self.sim.clock.advance(seconds)

    async def deliver(self, k: int, same_webhook_id: bool) -> None:
        body = self.scenario.events[k].body(k)
        msg_id = self.first_webhook_id.get(k) if same_webhook_id else None
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        raw, headers = signed(body, msg_id=msg_id)
        resp = await self.api.post("/webhooks/events", content=raw, headers=headers)
        if k in self.delivered:
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"event_id": self.delivered[k], "duplicate": True}
        else:
            assert resp.status_code == 202, resp.text
            assert resp.json()["duplicate"] is False
            self.delivered[k] = resp.json()["event_id"]
            self.first_webhook_id[k] = msg_id
            self.delivery_order.append(k)

    async def deliver_twice(self, k: int, same_webhook_id: bool) -> None:
        body = self.scenario.events[k].body(k)
        first = self.first_webhook_id.get(k) or f"msg_{uuid.uuid4().hex}"
        ids = [first, first] if same_webhook_id else [f"msg_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"]
        sends = [signed(body, msg_id=msg_id) for msg_id in ids]
        answers = await asyncio.gather(
            *(self.api.post("/webhooks/events", content=raw, headers=headers) for raw, headers in sends)
        )
        codes = sorted(a.status_code for a in answers)
        event_ids = {a.json().get("event_id") for a in answers}
        expected = [200, 200] if k in self.delivered else [200, 202]
        assert codes == expected and len(event_ids) == 1, [(a.status_code, a.text) for a in answers]
        if k not in self.delivered:
            self.delivered[k] = event_ids.pop()
            self.first_webhook_id[k] = ids[[a.status_code for a in answers].index(202)]
            self.delivery_order.append(k)

    async def claim(self, n: int) -> list[Claim]:
        return await claim_jobs(self.rt.sessions, next(self.worker_names), LEASE_SECONDS, n, postgres=self.rt.postgres)

    async def work(self, claim: Claim, control: Control | None = None) -> None:
        """What `Worker._work` does with a claim (without the lease renewer: leases only expire
        when an operation says so)."""
        token = CONTROL.set(control)
        try:
            await run_case(self.rt, claim)
        except Crash:
            self.crashes += 1
        except LeaseLost:
            pass
        except Exception as exc:  # the worker would log it and let the lease lapse
            self.unexpected.append(f"case {claim.case_id}: {type(exc).__name__}: {exc}")
        finally:
            CONTROL.reset(token)

    async def stall(self, nth: int) -> None:
        claims = await self.claim(1)
        if not claims:
            return
        control = Control("http-after", nth, stall=True)
        frozen = asyncio.create_task(self.work(claims[0], control))
        waiter = asyncio.create_task(control.frozen.wait())
        await asyncio.wait({frozen, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not frozen.done():
            await self.expire_leases()
            for c in await self.claim(4):
                await self.work(c)
            control.wake.set()
        await frozen

    async def expire_leases(self) -> None:
        async with self.rt.sessions() as session, session.begin():
            await session.execute(
                update(Job).where(Job.lease_until.is_not(None)).values(lease_until=utcnow() - timedelta(seconds=1))
            )

    async def tick(self) -> None:
        async with self.rt.sessions() as session, session.begin():
            now = utcnow()
            await session.execute(update(Job).where(Job.run_at > now).values(run_at=now))

    def add_fault(self, endpoint: str, kind: str, when: str, count: int) -> None:
        method, path = self.endpoints[endpoint]
        if kind == "timeout":
            self.transport.timeouts.append(TimeoutRule(method, path, when, count))
            return
        status = int(kind)
        rule = FaultRule(
            method=method,
            path=path,
            status=status,
            retry_after=0 if status == 429 else None,
            # An IGA throttles before it acts.
            when="before" if status == 429 else when,
            count=count,
        )
        with self.sim.lock:
            self.sim.faults.rules.append(rule)

    def clear_faults(self) -> None:
        with self.sim.lock:
            self.sim.faults = Faults()
        self.transport.timeouts.clear()

    # ------------------------------------------------------------ settling

    async def settle(self) -> None:
        """Faults gone; leases lapse and time passes until no job is left."""
        self.clear_faults()
        deadline = time.monotonic() + SETTLE_SECONDS
        for _ in range(SETTLE_ROUNDS):
            await self.expire_leases()
            await self.tick()
            self.sim.clock.advance(10)
            claims = await self.claim(16)
            if not claims:
                return
            for c in claims:  # one after another: a failure found here shrinks reproducibly
                await self.work(c)
            if time.monotonic() > deadline:
                break
        async with self.rt.sessions() as session:
            left = list(await session.scalars(select(Job)))
        raise AssertionError(f"not settled: jobs left {[(j.case_id, j.run_at, j.lease_until) for j in left]}")

    async def retry_dead_letters(self) -> list[int]:
        async with self.rt.sessions() as session:
            failed = list(await session.scalars(select(Case.id).where(Case.state == "failed")))
        for case_id in failed:
            resp = await self.api.post(f"/ops/cases/{case_id}/retry", headers={"authorization": f"Bearer {OPS_TOKEN}"})
            assert resp.status_code == 200, resp.text
        return failed


# ---------------------------------------------------------------- wiring


@contextlib.asynccontextmanager
async def database(template: str) -> AsyncIterator[str]:
    """A clean migrated database for one example."""
    if PG_URL:
        yield template  # truncated by `reset_postgres` once the runtime's engine exists
        return
    with tempfile.TemporaryDirectory(prefix="leaver-prop-") as tmp:
        path = Path(tmp) / "leaver.db"
        shutil.copy(template, path)
        yield f"sqlite+aiosqlite:///{path}"


async def reset_postgres(rt: Runtime) -> None:
    from app.store.models import Base

    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with rt.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def target_for(system: str) -> TargetSettings:
    target = simulator_spec(system).demo_target("http://iga.test", TARGET)
    return with_http(target, attempts=2, retry_budget_seconds=2.0, read_timeout=5.0, requests_per_second=1e6)


async def configure_simulator(app: FastAPI, changes: dict[str, Any]) -> None:
    """`POST /_config` on a simulator mounted in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://iga.test") as control:
        (await control.post("/_config", json=changes)).raise_for_status()


@contextlib.asynccontextmanager
async def harness(system: str, scenario: Scenario, template: str, data_dir: Path) -> AsyncIterator[Harness]:
    """A fresh simulator of `system` and a fresh database, wired for `scenario`."""
    spec = simulator_spec(system)
    sim_app = spec.create_app()
    await configure_simulator(sim_app, {**spec.test_config, **INSTANT_IGA, **(SLOW_IGA if scenario.slow_iga else {})})
    transport = ChaosTransport(sim_app, endpoints_of(sim_app)["token"][1])
    async with database(template) as url:
        settings = make_settings(
            url,
            data_dir,
            [target_for(system)],
            # Long enough that a worker never polls twice on its own; `Tick` makes the next poll due.
            track_initial_seconds=5.0,
            track_max_seconds=10.0,
            resend_grace_seconds=0.0,
            verify_grace_seconds=0.5,
            max_step_attempts=3,
            lease_seconds=LEASE_SECONDS,
        )
        rt = build_runtime(settings, transports={TARGET: transport})
        h = Harness(system, scenario, rt, sim_app, transport)
        try:
            if rt.postgres:
                await reset_postgres(rt)
            yield h
        finally:
            await h.aclose()
            await rt.aclose()
