"""Soak: real `leaver worker` processes killed at random instants, for a set time, against
generated people on every IGA simulator; then count what was lost, sent twice or left stuck.

Why: the chaos tests (tests/chaos, tests/exactly_once) kill a worker at each named crash point
once, on a few people. A crash can also land anywhere else: between two statements, while a
lease is being renewed, while another worker waits for the same person's lock, in a send whose
answer is late. This script kills workers at random instants, over and over, for minutes, while
events keep arriving, and only then asks the database and the simulator's own log whether every
leaver got every removal exactly once. It is a bench, not a CI test: a long run on two cores
takes the machine.

    .venv/bin/python bench/soak.py --minutes 10 --people 300 --workers 3

For each system (every one with both a simulator and an adapter, or `--system X`):

* a scratch PostgreSQL database `leaver_soak_<hex>` is created (through the `postgres`
  database of `--database-url`), migrated, and dropped at the end;
* the system's simulator is served on loopback in this process (its log outlives every kill),
  with `--people` generated people added when the simulator can take more people;
* one `leaver serve --workers 0` process takes the events: per person a `user.terminated`, for
  some an earlier `user.disabled`, for ~5% a later `user.enabled` (rehire); each delivered twice
  (different webhook-ids) at random moments of the first 70% of the run, signed per Standard
  Webhooks;
* `--workers` `leaver worker` processes work the cases; every `--kill-every` seconds on average
  one of them is SIGKILLed and replaced (`--pause`: one is also SIGSTOPped for 1-6 s now and
  then; `--slow`: the simulator answers 0.3 s late part of the time);
* after `--minutes` the killing stops and the workers get up to `--settle-minutes` to finish.

Then one row per system: people, events, items to remove, IGA submissions, kills, lost,
duplicated, stuck, seconds. Exit status 1 when anything is lost, duplicated or stuck.

lost: an event with no stored copy or no case, a case that ended `failed` (a dead letter), or
an item the plan removes by request that the IGA never received (people later rehired aside: a
rehire rightly cancels what was not sent yet). duplicated: an event stored twice, a (user, item)
the IGA acted on more than once (minus requests it withdrew), or a removal of an item no plan
asked to remove. stuck: a case or item not in a terminal state once the workers had settled.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import app.iga.registry
import app.simulator
from app.domain import ITEM_TERMINAL
from app.intake.signature import sign
from app.settings import TargetSettings
from app.simulator.demo_users import DemoAccess, DemoPerson
from app.store.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

LEASE_SECONDS = 3.0
RESEND_GRACE_SECONDS = 3.0  # >= min(read timeout 2, 0.8 x lease) + listing lag 0
READ_TIMEOUT = 2.0
WORKER_ENV = {
    "LEAVER_LEASE_SECONDS": f"{LEASE_SECONDS:g}",
    "LEAVER_RESEND_GRACE_SECONDS": f"{RESEND_GRACE_SECONDS:g}",
    "LEAVER_IDLE_POLL_SECONDS": "0.05",
    "LEAVER_TRACK_INITIAL_SECONDS": "0.2",
    "LEAVER_TRACK_MAX_SECONDS": "1",
    "LEAVER_SHUTDOWN_GRACE_SECONDS": "5",
    "LEAVER_LOG_LEVEL": "warning",
    "LEAVER_GUARD_MAX_LEAVERS": "0",  # a soak sends many leavers at once on purpose
}
#: Share of the run during which events arrive; the rest of the killing hits work in progress.
DELIVERY_SHARE = 0.7
#: Worker log lines that show a bug rather than a handled condition.
BAD_LOG_LINES = ("worker.unexpected_error", "Traceback", "worker.case_failed")


# ---------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    minutes: float
    people: int
    workers: int
    systems: list[str]
    database_url: str
    kill_every: float
    pause: bool
    slow: bool
    settle_minutes: float
    concurrency: int
    seed: int
    keep_logs: bool
    log_format: str


def registered_systems() -> list[str]:
    return sorted(set(app.simulator.SIMULATORS) & set(app.iga.registry.ADAPTERS))


def parse_args(argv: list[str] | None = None) -> Options:
    systems = registered_systems()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=10.0, help="how long workers are killed, per system")
    p.add_argument("--people", type=int, default=300, help="generated people, one termination each")
    p.add_argument("--workers", type=int, default=3, help="`leaver worker` processes running at once")
    p.add_argument("--system", choices=systems, action="append", help="only this system (repeatable)")
    p.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="PostgreSQL; a scratch database is made")
    p.add_argument("--kill-every", type=float, default=2.0, help="mean seconds between two SIGKILLs")
    p.add_argument("--pause", action="store_true", help="also SIGSTOP a worker for 1-6 s now and then")
    p.add_argument("--slow", action="store_true", help="the simulator answers 0.3 s late part of the time")
    p.add_argument("--settle-minutes", type=float, default=5.0, help="longest wait for the work to finish")
    p.add_argument("--concurrency", type=int, default=4, help="cases each worker process works at once")
    p.add_argument("--seed", type=int, default=None, help="random seed (printed, to replay a run's choices)")
    p.add_argument("--keep-logs", action="store_true", help="keep the process logs even when all is well")
    p.add_argument(
        "--log-format",
        choices=("console", "json"),
        default="console",
        help="the processes' LEAVER_LOG_FORMAT (json lines carry no traceback, only exc_info: true)",
    )
    a = p.parse_args(argv)
    if not a.database_url.startswith("postgresql"):
        p.error("--database-url must be PostgreSQL (several worker processes share it)")
    if a.minutes <= 0 or a.people < 1 or a.workers < 1 or a.kill_every <= 0 or a.concurrency < 1:
        p.error("--minutes, --kill-every must be > 0; --people, --workers, --concurrency >= 1")
    return Options(
        minutes=a.minutes,
        people=a.people,
        workers=a.workers,
        systems=sorted(set(a.system)) if a.system else systems,
        database_url=a.database_url,
        kill_every=a.kill_every,
        pause=a.pause,
        slow=a.slow,
        settle_minutes=a.settle_minutes,
        concurrency=a.concurrency,
        seed=a.seed if a.seed is not None else secrets.randbelow(1_000_000),
        keep_logs=a.keep_logs,
        log_format=a.log_format,
    )


# ---------------------------------------------------------------------------- the database


def _run_sql(url: str, sql: str, params: dict[str, Any] | None = None, *, autocommit: bool = False) -> list[Any]:
    """One statement on a fresh connection (no pool: this script's loop is not the workers')."""

    async def run() -> list[Any]:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                if autocommit:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                result = await conn.execute(text(sql), params or {})
                rows = [tuple(r) for r in result.all()] if result.returns_rows else []
                if not autocommit:
                    await conn.commit()
                return rows
        finally:
            await engine.dispose()

    return asyncio.run(run())


def query(url: str, sql: str, **params: Any) -> list[Any]:
    return _run_sql(url, sql, params)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new, migrated database next to `url`'s, dropped afterwards."""
    base = make_url(url)
    admin = base.set(database="postgres").render_as_string(hide_password=False)
    name = f"leaver_soak_{uuid.uuid4().hex[:10]}"
    _run_sql(admin, f'CREATE DATABASE "{name}"', autocommit=True)
    try:
        scratch = base.set(database=name).render_as_string(hide_password=False)
        upgrade(scratch)
        yield scratch
    finally:
        _run_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)


# ---------------------------------------------------------------------------- the simulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(asgi_app: Any) -> Iterator[str]:
    """Serve `asgi_app` on a free loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(asgi_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the simulator did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Sim:
    """A served simulator, driven through its control routes and read through its probes."""

    url: str
    http: httpx.Client

    def call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, f"{self.url}{path}", **kw)
        resp.raise_for_status()
        return resp.json()

    def submissions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/_probe/submissions")
        return found

    def withdrawn(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/_probe/withdrawn")
        return found

    def slow(self, on: bool) -> None:
        if on:
            self.call("POST", "/_faults", json={"latency": 0.3})
        else:
            self.call("DELETE", "/_faults")


#: Generated access: ten plain groups, one privileged (a disable holds it), one birthright (kept),
#: and a role that brings an entitlement with it (removed with the role, not requested itself).
PLAIN = tuple(DemoAccess("entitlement", f"Soak Group {k:02d}", "Soak Directory") for k in range(10))
PRIVILEGED = DemoAccess("entitlement", "Soak Admins", "Soak Directory", privileged=True)
BIRTHRIGHT = DemoAccess("entitlement", "Soak All Staff", "Soak Directory", granted_by="birthright")
ROLE = DemoAccess("role", "Soak Engineering", "Soak Code")
VIA_ROLE = DemoAccess("entitlement", "Soak Code Committers", "Soak Code", granted_by="role", via="Soak Engineering")


def generate_people(count: int, rng: random.Random) -> list[DemoPerson]:
    people = []
    for n in range(count):
        username = f"soak{n:04d}"
        access = [*rng.sample(PLAIN, k=rng.randint(2, 6)), BIRTHRIGHT]
        if rng.random() < 0.3:
            access.append(PRIVILEGED)
        if rng.random() < 0.3:
            access += [ROLE, VIA_ROLE]
        hold = "true" if rng.random() < 0.02 else "false"
        people.append(
            DemoPerson(
                username,
                f"Soak {n:04d}",
                f"{username}@example.com",
                f"K{n:05d}",
                f"cn={username},ou=users,o=example",
                tuple(access),
                {"department": "Soak", "legalHold": hold},
            )
        )
    return people


def build_simulator(system: str, people: int, rng: random.Random) -> tuple[Any, list[str], str]:
    """The simulator app, the usernames the run terminates, and how they were chosen."""
    spec = app.simulator.simulator_spec(system)
    sim_app = spec.create_app()
    state = getattr(sim_app.state, "sim", None)
    if state is not None and hasattr(state, "add_people"):
        generated = generate_people(people, rng)
        try:
            with state.lock:
                state.add_people(generated)
        except NotImplementedError:
            pass
        else:
            return sim_app, [p.username for p in generated], "generated"
    # No way to add people: the simulators' seeded generated users, user000..user039.
    seeded = [f"user{n:03d}" for n in range(min(people, 40))]
    return sim_app, seeded, f"seeded user000..user{len(seeded) - 1:03d} (simulator cannot add people)"


def soak_target(system: str, url: str) -> TargetSettings:
    """The demo target, fast: no listing lag, 2 s reads, a rate budget that does not crawl, and
    (where the adapter pages through requests to recover a send) a lookup window for the run."""
    target = app.simulator.simulator_spec(system).demo_target(url, system)
    http = target.http.model_copy(
        update={
            "read_timeout": READ_TIMEOUT,
            "attempts": 3,
            "retry_budget_seconds": 10.0,
            "requests_per_second": 50.0,
            "max_concurrency": 8,
        }
    )
    target = target.model_copy(update={"listing_lag_seconds": 0.0, "http": http})
    sized = target.model_copy(update={"options": {**target.options, "lookup_max_pages": 500}})
    try:
        client = app.iga.registry.build_client(sized)
    except (ValidationError, ValueError, TypeError):  # this adapter has no such option
        return target
    asyncio.run(client.aclose())
    return sized


# ---------------------------------------------------------------------------- leaver processes


def leaver_env(database_url: str, data_dir: Path, target: TargetSettings, secret: str, ops: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")}
    creds = {
        "client_secret": target.client_secret.get_secret_value() if target.client_secret else None,
        "password": target.password.get_secret_value() if target.password else None,
    }
    env.update(WORKER_ENV)
    env.update(
        {
            "LEAVER_DATABASE_URL": database_url,
            "LEAVER_DATA_DIR": str(data_dir),
            "LEAVER_WEBHOOK_SECRET": secret,
            "LEAVER_OPS_TOKEN": ops,
            "LEAVER_TARGETS": json.dumps([target.model_dump(mode="json") | creds]),
        }
    )
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM (after SIGCONT, in case it is stopped), then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode} before answering")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


@dataclass
class Fleet:
    """The worker processes: start, SIGKILL and replace, pause and resume, and what happened."""

    env: dict[str, str]
    logs: Path
    concurrency: int
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    retired: list[subprocess.Popen[bytes]] = field(default_factory=list)
    paused: dict[int, float] = field(default_factory=dict)  # pid -> when to resume (monotonic)
    kills: int = 0
    pauses: int = 0
    own_exits: list[str] = field(default_factory=list)  # workers that exited without being killed
    started_at: dict[int, float] = field(default_factory=dict)  # pid -> when it was spawned (monotonic)

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.workers) + len(self.retired)
        proc = spawn(["worker", "--concurrency", str(self.concurrency)], self.env, self.logs / f"worker-{n:03d}.log")
        self.workers.append(proc)
        self.started_at[proc.pid] = time.monotonic()
        return proc

    def _retire(self, proc: subprocess.Popen[bytes]) -> None:
        self.workers.remove(proc)
        self.retired.append(proc)
        self.paused.pop(proc.pid, None)

    def kill_one(self, rng: random.Random) -> None:
        proc = rng.choice(self.workers)
        proc.kill()  # also ends a stopped process
        proc.wait(timeout=10)
        self._retire(proc)
        self.kills += 1
        self.start()

    def pause_one(self, rng: random.Random, now: float) -> None:
        running = [p for p in self.workers if p.pid not in self.paused and p.poll() is None]
        if not running:
            return
        proc = rng.choice(running)
        proc.send_signal(signal.SIGSTOP)
        self.paused[proc.pid] = now + rng.uniform(1.0, 6.0)
        self.pauses += 1

    def resume_due(self, now: float, everyone: bool = False) -> None:
        for proc in self.workers:
            due = self.paused.get(proc.pid)
            if due is not None and (everyone or now >= due):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                del self.paused[proc.pid]

    def replace_exited(self) -> None:
        """A worker that exits by itself is a finding: note it and start another."""
        for proc in [p for p in self.workers if p.poll() is not None]:
            self.own_exits.append(f"worker {proc.pid} exited with {proc.returncode}")
            self._retire(proc)
            self.start()

    def stop_all(self) -> list[int]:
        """SIGTERM every worker: each must drain and exit 0. A worker spawned a moment ago has not
        installed its signal handlers yet (it is still importing), so give the youngest 5 s first."""
        self.resume_due(0.0, everyone=True)
        youngest = max((self.started_at.get(p.pid, 0.0) for p in self.workers if p.poll() is None), default=0.0)
        time.sleep(max(0.0, min(5.0, youngest + 5.0 - time.monotonic())))
        return [terminate(p) for p in self.workers]


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Send:
    at: float  # seconds after the start of the run
    body: dict[str, Any]


@dataclass(frozen=True)
class EventPlan:
    sends: list[Send]  # every event twice, in delivery order
    events: int  # distinct events
    disabled: int  # people with a disable before their termination
    rehired: set[str]  # usernames with a rehire after it


def plan_events(usernames: list[str], window: float, rng: random.Random) -> EventPlan:
    """Each person's events, each to be delivered twice at random moments of `window`."""
    now = datetime.now(UTC).replace(microsecond=0)
    run = uuid.uuid4().hex[:8]
    bodies: list[dict[str, Any]] = []
    rehired: set[str] = set()
    disabled = 0
    for n, username in enumerate(usernames):
        # All in the past, so every removal is due at once; in occurred_at order disable < terminate < rehire.
        terminated = now - timedelta(hours=2, seconds=n)
        kinds = [("user.terminated", terminated)]
        if rng.random() < 0.2:
            kinds.append(("user.disabled", terminated - timedelta(minutes=30)))
            disabled += 1
        if rng.random() < 0.05:
            kinds.append(("user.enabled", terminated + timedelta(minutes=30)))
            rehired.add(username)
        for type_, at in kinds:
            bodies.append(
                {
                    "id": f"soak-{run}-{n:04d}-{type_.removeprefix('user.')}",
                    "type": type_,
                    "occurred_at": at.isoformat().replace("+00:00", "Z"),
                    "source": "soak",
                    "user": {"username": username},
                }
            )
    sends = [Send(rng.uniform(0, window), body) for body in bodies for _ in range(2)]
    sends.sort(key=lambda s: s.at)
    return EventPlan(sends, len(bodies), disabled, rehired)


class Feeder(threading.Thread):
    """Delivers the planned sends through the API on schedule, signed, each with its own
    webhook-id; retries a send that got no answer or a 5xx, like an IDM (bounded)."""

    def __init__(self, api: str, secret: str, sends: list[Send], started: float) -> None:
        super().__init__(name="feeder", daemon=True)
        self.api, self.secret, self.sends, self.started = api, secret, sends, started
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()  # 0: gave up

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            for send in self.sends:
                wait = send.at - (time.monotonic() - self.started)
                if wait > 0 and self.stop.wait(wait):
                    return
                self.statuses[self.deliver(http, send.body)] += 1

    def deliver(self, http: httpx.Client, body: dict[str, Any]) -> int:
        raw = json.dumps(body).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        for _ in range(20):
            ts = int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign(self.secret, msg_id, ts, raw),
            }
            try:
                resp = http.post(f"{self.api}/webhooks/events", content=raw, headers=headers)
            except httpx.TransportError:
                time.sleep(0.25)
                continue
            if resp.status_code >= 500:
                time.sleep(0.25)
                continue
            return resp.status_code
        return 0


# ---------------------------------------------------------------------------- the tally


@dataclass
class Result:
    system: str
    people: int
    events: int = 0
    to_remove: int = 0
    submissions: int = 0
    kills: int = 0
    pauses: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    aborted: str | None = None  # the run broke off: nothing was counted
    log_errors: list[str] = field(default_factory=list)  # lines of the process logs that show a bug

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.aborted)


def tally(
    r: Result,
    url: str,
    external_ids: set[str],
    rehired: set[str],
    submitted: list[dict[str, Any]],
    withdrawn: list[dict[str, Any]],
) -> None:
    events = query(url, "SELECT id, external_id, user_username FROM events")
    cases = query(url, "SELECT id, event_id, state, iga_user_id, error FROM cases")
    items = query(url, "SELECT id, case_id, item_id, action, removable, state, note FROM plan_items ORDER BY id")
    r.events = len(events)

    stored = Counter(ext for _, ext, _ in events)
    for ext in sorted(external_ids - set(stored)):
        r.lost.append(f"event {ext} delivered but not stored")
    for ext, n in sorted(stored.items()):
        if n > 1:
            r.duplicated.append(f"event {ext} stored {n} times")

    username_of_event = {eid: user for eid, _, user in events}
    with_case = {event_id for _, event_id, *_ in cases}
    for eid, ext, _ in events:
        if eid not in with_case:
            r.lost.append(f"event {ext} ({eid}) has no case")
    case_user: dict[int, tuple[str | None, str | None]] = {}
    for case_id, event_id, state, iga_user, error in cases:
        case_user[case_id] = (iga_user, username_of_event.get(event_id))
        if state == "failed":
            r.lost.append(f"case {case_id} is a dead letter: {error}")
        elif state not in ("done", "cancelled"):
            r.stuck.append(f"case {case_id} stuck in {state}")

    acted = Counter((str(s["user"]), str(s["item"])) for s in submitted)
    taken_back = Counter((str(w["user"]), str(w["item"])) for w in withdrawn)
    requested: set[tuple[str, str]] = set()
    asked_by_plan: set[tuple[str, str]] = set()
    for item_id, case_id, iga_item, action, removable, state, note in items:
        iga_user, username = case_user[case_id]
        key = (str(iga_user), str(iga_item))
        if state not in ITEM_TERMINAL:
            r.stuck.append(f"item {item_id} ({iga_item}) of case {case_id} stuck in {state}: {note}")
        if action == "remove":
            asked_by_plan.add(key)
            if removable:
                requested.add(key)
                if acted[key] == 0 and username not in rehired:
                    r.lost.append(f"item {item_id} ({iga_item}) of case {case_id} never reached the IGA, {state}")
    r.to_remove = len(requested)
    r.submissions = len(submitted)
    for key, n in sorted(acted.items()):
        if key not in asked_by_plan:
            r.duplicated.append(f"{key} removed {n}x though no plan asked to remove it")
        elif n - taken_back[key] > 1:
            r.duplicated.append(f"{key} submitted {n}x ({taken_back[key]} withdrawn)")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_errors(logs: Path) -> list[str]:
    """Lines of the process logs (colours stripped) that show a bug rather than a handled condition."""
    found = []
    for log in sorted(logs.glob("*.log")):
        for line in ANSI.sub("", log.read_text(errors="replace")).splitlines():
            if any(bad in line for bad in BAD_LOG_LINES):
                found.append(f"{log.name}: {line[:300]}")
    return found


# ---------------------------------------------------------------------------- one system


def settled(url: str) -> bool:
    """No job is leased or due, and every job still queued waits only for an operator (its case's
    open items are all held, looked at again daily): nothing a worker could still do."""
    (busy,) = query(
        url,
        """
        SELECT count(*) FROM jobs j
        WHERE j.lease_until > now() OR j.run_at <= now()
           OR NOT EXISTS (SELECT 1 FROM plan_items p WHERE p.case_id = j.case_id AND p.state = 'held')
           OR EXISTS (SELECT 1 FROM plan_items p WHERE p.case_id = j.case_id AND p.state NOT IN ({SETTLED}))
        """.format(SETTLED=", ".join(f"'{s}'" for s in sorted({*ITEM_TERMINAL, "held"}))),
    )[0]
    return int(busy) == 0


def soak(system: str, opts: Options, logs: Path) -> Result:
    rng = random.Random(f"{opts.seed}-{system}")
    started = time.monotonic()
    sim_app, usernames, who = build_simulator(system, opts.people, rng)
    r = Result(system, len(usernames))
    r.notes.append(f"people: {who}")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    ops = secrets.token_urlsafe(24)
    spec = app.simulator.simulator_spec(system)

    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(opts.database_url))
        sim_url = stack.enter_context(serve_in_thread(sim_app))
        sim = Sim(sim_url, stack.enter_context(httpx.Client(timeout=30)))
        sim.call("POST", "/_config", json=dict(spec.test_config))
        env = leaver_env(url, logs, soak_target(system, sim_url), secret, ops)
        env["LEAVER_LOG_FORMAT"] = opts.log_format

        port = free_port()
        api = spawn(["serve", "--workers", "0", "--port", str(port)], env, logs / "api.log")
        stack.callback(terminate, api)
        api_url = f"http://127.0.0.1:{port}"
        wait_http(f"{api_url}/healthz", api)
        fleet = Fleet(env, logs, opts.concurrency)
        stack.callback(fleet.stop_all)
        for _ in range(opts.workers):
            fleet.start()

        run_seconds = opts.minutes * 60
        plan = plan_events(usernames, run_seconds * DELIVERY_SHARE, rng)
        sends = plan.sends
        external_ids = {s.body["id"] for s in sends}
        t0 = time.monotonic()
        feeder = Feeder(api_url, secret, sends, t0)
        feeder.start()
        stack.callback(feeder.stop.set)

        # The killing: SIGKILL at exponential gaps; optionally pauses and a slow IGA.
        end = t0 + run_seconds
        next_kill = t0 + rng.expovariate(1 / opts.kill_every)
        next_pause = t0 + rng.expovariate(1 / (opts.kill_every * 3))
        next_slow = t0 + rng.uniform(2, 10)
        slow_on = False
        while (now := time.monotonic()) < end:
            fleet.replace_exited()
            fleet.resume_due(now)
            if now >= next_kill:
                fleet.kill_one(rng)
                next_kill = now + rng.expovariate(1 / opts.kill_every)
            if opts.pause and now >= next_pause:
                fleet.pause_one(rng, now)
                next_pause = now + rng.expovariate(1 / (opts.kill_every * 3))
            if opts.slow and now >= next_slow:
                slow_on = rng.random() < 0.4 and not slow_on
                sim.slow(slow_on)
                next_slow = now + rng.uniform(2, 10)
            time.sleep(min(0.05, max(0.0, end - now)))
        fleet.resume_due(0.0, everyone=True)
        if slow_on:
            sim.slow(False)
        r.kills, r.pauses = fleet.kills, fleet.pauses

        # Settle: every event delivered, then nothing left a worker could do (see `settled`).
        feeder.join(timeout=max(1.0, run_seconds * (1 - DELIVERY_SHARE)) + 60)
        if feeder.is_alive():
            r.notes.append("delivery did not finish")
            feeder.stop.set()
        settle_end = time.monotonic() + opts.settle_minutes * 60
        while time.monotonic() < settle_end:
            fleet.replace_exited()
            if not feeder.is_alive() and settled(url):
                break
            time.sleep(0.5)
        else:
            r.notes.append(f"not settled after {opts.settle_minutes:g} min")
        r.seconds = time.monotonic() - started
        exits = fleet.stop_all()
        if any(code != 0 for code in exits):
            r.notes.append(f"worker exit codes on SIGTERM: {exits}")
        r.notes += fleet.own_exits

        gave_up = feeder.statuses.get(0, 0)
        bad = {code: n for code, n in feeder.statuses.items() if code not in (200, 202)}
        if bad:
            r.notes.append(f"deliveries not accepted (status: count): {bad}")
        if gave_up:
            r.lost.append(f"{gave_up} deliveries got no answer after 20 tries")
        r.notes.append(
            f"{plan.events} events ({plan.disabled} disables, {len(plan.rehired)} rehires), {len(sends)} "
            f"deliveries (status: count {dict(sorted(feeder.statuses.items()))}); {r.pauses} pauses"
        )
        tally(r, url, external_ids, plan.rehired, sim.submissions(), sim.withdrawn())
    r.log_errors = log_errors(logs)
    if r.log_errors:
        r.notes.append(f"{len(r.log_errors)} log lines show errors, first: {r.log_errors[0]}")
    return r


# ---------------------------------------------------------------------------- the table


HEADER = (
    "system",
    "people",
    "events",
    "items to remove",
    "IGA submissions",
    "kills",
    "lost",
    "duplicated",
    "stuck",
    "seconds",
)


def table(results: list[Result]) -> str:
    cells = [HEADER] + [
        (
            r.system,
            str(r.people),
            str(r.events),
            str(r.to_remove),
            str(r.submissions),
            str(r.kills),
            str(len(r.lost)),
            str(len(r.duplicated)),
            str(len(r.stuck)),
            f"{r.seconds:.0f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def details(r: Result, limit: int = 5) -> list[str]:
    out = [f"  {r.system}: {note}" for note in r.notes]
    if r.aborted:
        out.append(f"  {r.system}: ABORTED, nothing counted: {r.aborted}")
    for kind, found in (("lost", r.lost), ("duplicated", r.duplicated), ("stuck", r.stuck)):
        out += [f"  {r.system} {kind}: {line}" for line in found[:limit]]
        if len(found) > limit:
            out.append(f"  {r.system} {kind}: ... and {len(found) - limit} more")
    return out


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    print(
        f"soak: {opts.minutes:g} min per system, {opts.people} people, {opts.workers} workers, "
        f"a SIGKILL every {opts.kill_every:g}s on average{', pauses' if opts.pause else ''}"
        f"{', slow IGA' if opts.slow else ''}; systems {', '.join(opts.systems)}; seed {opts.seed}",
        flush=True,
    )
    results: list[Result] = []
    for system in opts.systems:
        logs = Path(tempfile.mkdtemp(prefix=f"leaver-soak-{system}-"))
        started = time.monotonic()
        try:
            r = soak(system, opts, logs)
        except Exception as exc:  # one system's broken run must not hide the others'
            traceback.print_exc()
            r = Result(system, 0, aborted=f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - started)
        results.append(r)
        print(f"\n{table([r])}", flush=True)
        print("\n".join(details(r)), flush=True)
        if r.ok and not r.log_errors and not opts.keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
        else:
            print(f"  {system}: logs in {logs}", flush=True)
    print(f"\n{table(results)}")
    failed = [r.system for r in results if not r.ok]
    if failed:
        print(f"\nFAILED: something lost, duplicated or stuck (or the run aborted) on {', '.join(failed)}")
        return 1
    print("\nOK: nothing lost, nothing duplicated, nothing stuck")
    return 0


if __name__ == "__main__":
    sys.exit(main())
