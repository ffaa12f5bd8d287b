"""Scale-out on one database: several `leaver worker` processes and API processes, every event
delivered twice (different webhook-ids) in random order through the APIs at once, and workers
killed mid-run. Nothing lost, nothing twice, and no job left behind once its lease has lapsed.

PostgreSQL (`LEAVER_TEST_DATABASE_URL`): the full run, 1,000 events of 10 items each, 3 workers,
2 APIs. SQLite is one writer: the same checks on a reduced run (50 events, 1 worker, 1 API).
`LEAVER_SCALE_EVENTS`, `LEAVER_SCALE_WORKERS` and `LEAVER_SCALE_APIS` override the sizes.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.domain import LeaverEvent
from app.iga.registry import build_client
from app.runtime import build_runtime
from app.settings import TargetSettings
from app.simulator import simulator_spec
from app.store.intake import store_event
from app.store.models import Job
from app.store.queue import Renewal, claim_jobs, renew
from app.worker.unit import write
from tests.chaos.conftest import (
    Row,
    all_finished,
    audit_gaps,
    audit_why,
    case_states,
    log_errors,
    people_with_items,
    record,
    simulator,
    tally,
    trail,
    wait_until,
)
from tests.conftest import make_settings
from tests.procs import leaver_env, query, spawn, stop, wait_http
from tests.servers import free_port
from tests.support import FIRST_SYSTEM, event_body, signed

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ITEMS_PER_EVENT = 10
LEASE_SECONDS = 5.0


@dataclass(frozen=True)
class Size:
    events: int
    workers: int
    apis: int
    concurrency: int  # cases each worker process works at once
    deadline: float  # seconds for the whole run to finish

    @classmethod
    def for_database(cls, kind: str) -> Size:
        full = kind == "postgresql"
        events = int(os.environ.get("LEAVER_SCALE_EVENTS") or (1000 if full else 50))
        return cls(
            events=events,
            workers=int(os.environ.get("LEAVER_SCALE_WORKERS") or (3 if full else 1)),
            apis=int(os.environ.get("LEAVER_SCALE_APIS") or (2 if full else 1)),
            concurrency=16 if full else 8,
            deadline=60 + events * 0.5,
        )


@dataclass
class Fleet:
    """The leaver processes of the run: start, kill, replace, and remember every exit."""

    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    apis: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    retired: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)

    def api(self) -> str:
        port = free_port()
        proc = spawn(["serve", "--workers", "0", "--port", str(port)], self.env, self.logs / f"api-{port}.log")
        url = f"http://127.0.0.1:{port}"
        self.apis.append((url, proc))
        return url

    def worker(self, concurrency: int, **env: str) -> subprocess.Popen[bytes]:
        n = len(self.workers) + len(self.retired)
        proc = spawn(["worker", "--concurrency", str(concurrency)], self.env | env, self.logs / f"worker-{n}.log")
        self.workers.append(proc)
        return proc

    def replace(self, proc: subprocess.Popen[bytes], concurrency: int, why: str) -> None:
        self.workers.remove(proc)
        self.retired.append(proc)
        self.kills.append(why)
        self.worker(concurrency)

    def stop_all(self) -> tuple[list[int], list[int]]:
        """SIGTERM everything; the exit codes of the workers and of the APIs."""
        return [stop(p) for p in self.workers], [stop(p) for _, p in self.apis]


@contextmanager
def fleet(env: dict[str, str], logs: Path) -> Iterator[Fleet]:
    f = Fleet(env, logs)
    try:
        yield f
    finally:
        for proc in [*f.workers, *(p for _, p in f.apis)]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@dataclass
class Delivery:
    external_id: str
    status: int
    event_id: str | None
    duplicate: bool | None


def deliver(urls: list[str], bodies: list[dict[str, Any]], results: list[Delivery], threads: int = 16) -> None:
    """Each event twice, with different webhook-ids, in random order, spread over the APIs, many
    at once. Like an IDM, retry a delivery that got no answer or a 5xx."""
    sends = [(body, f"msg_{uuid.uuid4().hex}") for body in bodies for _ in range(2)]
    random.Random(20261120).shuffle(sends)
    lock = threading.Lock()

    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=threads * 2)) as http:

        def send(n: int, body: dict[str, Any], msg_id: str) -> None:
            for attempt in range(10):
                raw, headers = signed(body, msg_id=msg_id)
                try:
                    resp = http.post(f"{urls[(n + attempt) % len(urls)]}/webhooks/events", content=raw, headers=headers)
                except httpx.TransportError:
                    time.sleep(0.2)
                    continue
                if resp.status_code >= 500:
                    time.sleep(0.2)
                    continue
                answer = resp.json() if resp.status_code < 300 else {}
                with lock:
                    results.append(
                        Delivery(body["id"], resp.status_code, answer.get("event_id"), answer.get("duplicate"))
                    )
                return
            with lock:
                results.append(Delivery(body["id"], 0, None, None))

        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(send, n, body, msg_id) for n, (body, msg_id) in enumerate(sends)]:
                future.result()


def with_lookup_window_for_the_run(target: TargetSettings) -> TargetSettings:
    """Where recovery pages through the service account's newest requests to find an interrupted
    send (an adapter with a `lookup_max_pages` option, default 20 pages of 100), a busy run
    submits more than that between a crash and its recovery: size the window to the whole run,
    or an interrupted send is past the window and cannot be proved sent or not."""
    sized = target.model_copy(update={"options": {**target.options, "lookup_max_pages": 500}})
    try:
        client = build_client(sized)
    except ValidationError:  # this system's adapter finds requests without paging through them
        return target
    asyncio.run(client.aclose())
    return sized


@pytest.mark.timeout(900)
def test_scale_out_loses_nothing_and_sends_nothing_twice(database_url: str, database_kind: str, tmp_path: Path) -> None:
    size = Size.for_database(database_kind)
    people = people_with_items(size.events, ITEMS_PER_EVENT)
    system = FIRST_SYSTEM
    sim_app = simulator_spec(system).create_app()
    state = sim_app.state.sim
    with state.lock:
        state.add_people(people)
    bodies = [event_body(p.username, event_id=f"scale-{n:04d}") for n, p in enumerate(people)]

    started = time.monotonic()
    timings: dict[str, float] = {}
    with simulator(system, sim_app) as sim, ExitStack() as stack:
        # The IGA budget of one target is shared out: each worker process gets its own limiter.
        target = with_lookup_window_for_the_run(sim.target(requests_per_second=200, read_timeout=30))
        env = leaver_env(database_url, tmp_path, [target], LEAVER_LEASE_SECONDS=str(LEASE_SECONDS))
        procs = stack.enter_context(fleet(env, tmp_path))
        urls = [procs.api() for _ in range(size.apis)]
        # One worker dies on its own at its first send (a request with the IGA, its ID not stored);
        # another is killed from outside once a third of the cases are done.
        doomed = procs.worker(size.concurrency, LEAVER_CRASH_AT="after_send")
        for _ in range(size.workers - 1):
            procs.worker(size.concurrency)
        for url in urls:
            wait_http(f"{url}/healthz")

        results: list[Delivery] = []
        sender = threading.Thread(target=deliver, args=(urls, bodies, results), daemon=True)
        sender.start()
        victim: subprocess.Popen[bytes] | None = None

        def finished() -> bool:
            nonlocal victim
            if doomed in procs.workers and doomed.poll() is not None:
                assert doomed.returncode == -signal.SIGKILL, f"crashing worker exited {doomed.returncode}"
                procs.replace(doomed, size.concurrency, "LEAVER_CRASH_AT=after_send")
            if "delivered" not in timings and not sender.is_alive():
                timings["delivered"] = time.monotonic() - started
            states = case_states(database_url)
            if victim is None and states["done"] >= size.events // 3:
                victim = next(w for w in procs.workers if w is not doomed)
                victim.kill()
                victim.wait(timeout=10)
                procs.replace(victim, size.concurrency, f"SIGKILL at {states['done']} cases done")
            for w in procs.workers:  # the doomed one may die between two looks: it is replaced next time
                assert w is doomed or w.poll() is None, f"worker {w.pid} exited {w.returncode}"
            return not sender.is_alive() and sum(states.values()) == size.events and all_finished(database_url)

        wait_until(
            finished,
            size.deadline,
            lambda: f"cases {dict(case_states(database_url))}, jobs {query(database_url, 'SELECT count(*) FROM jobs')}",
            interval=0.5,
        )
        timings["finished"] = time.monotonic() - started
        worker_exits, api_exits = procs.stop_all()
        submitted = sim.submissions()
        logs = {p.name: log_errors(p) for p in tmp_path.glob("worker-*.log")}

    result = tally(database_url, submitted, expected_items=size.events * ITEMS_PER_EVENT)
    record(
        Row(
            f"scale-out {size.workers}w/{size.apis}api x{size.events}",
            system,
            database_kind,
            result.items,
            result.submissions,
            len(result.lost),
            len(result.duplicated),
            timings["finished"],
            f"kills: {len(procs.kills)}; delivered in {timings.get('delivered', 0):.0f}s",
        )
    )

    # Intake: 2 deliveries per event, one stored event each, the second recognised as a duplicate.
    assert len(results) == 2 * size.events
    assert {d.status for d in results} <= {200, 202}, Counter(d.status for d in results)
    by_event: dict[str, set[str | None]] = defaultdict(set)
    for d in results:
        by_event[d.external_id].add(d.event_id)
    assert all(len(ids) == 1 and None not in ids for ids in by_event.values())
    assert Counter(d.duplicate for d in results) == {False: size.events, True: size.events}
    assert result.events == size.events

    # The pipeline: every case done, every item removed, each submitted exactly once, no job left.
    assert result.problems() == [], trail(database_url, result.problems())
    assert len(procs.kills) == 2, procs.kills
    assert result.cases == {"done": size.events}
    assert result.items == result.requested == size.events * ITEMS_PER_EVENT
    assert result.submissions == result.requested
    assert audit_gaps(database_url) == []
    assert any("adopted" in why for why in audit_why(database_url, "request"))
    # A worker drains and exits 0 on SIGTERM; uvicorn re-raises the signal once it has shut down.
    assert set(worker_exits) == {0} and set(api_exits) <= {0, -signal.SIGTERM}, (worker_exits, api_exits)
    assert logs and all(errors == [] for errors in logs.values()), logs


async def test_a_late_lease_renewal_does_not_lease_a_job_its_worker_freed(database_url: str, tmp_path: Path) -> None:
    """A renewal that commits after the worker freed its job (the next poll is later) must not lease
    the job again to nobody: it would sit unclaimed until that phantom lease ran out."""
    target = simulator_spec(FIRST_SYSTEM).demo_target("http://127.0.0.1:9/unused", FIRST_SYSTEM)
    rt = build_runtime(make_settings(database_url, tmp_path, [target], workers=0))
    try:
        event = LeaverEvent.model_validate(event_body("jdoe"))
        await store_event(rt.sessions, event, targets=[target.name], webhook_id=None)
        (claim,) = await claim_jobs(rt.sessions, "w1", 30, 1, postgres=rt.postgres)
        assert await renew(rt.sessions, claim, 30) is Renewal.RENEWED  # held: renewed

        async with write(rt, claim) as tx:
            await tx.schedule(tx.now + timedelta(seconds=60))  # freed until its next poll
        assert await renew(rt.sessions, claim, 30) is Renewal.FREED  # freed by itself: not lost
        async with rt.sessions() as session:
            job = await session.get(Job, claim.job_id)
        assert job is not None and job.lease_until is None and job.lease_owner is None
        async with rt.sessions() as session, session.begin():
            due = await session.get(Job, claim.job_id)
            assert due is not None
            due.run_at = due.created_at  # its next poll has come: another worker claims it
        assert len(await claim_jobs(rt.sessions, "w2", 30, 1, postgres=rt.postgres)) == 1
        assert await renew(rt.sessions, claim, 30) is Renewal.LOST
    finally:
        await rt.aclose()
