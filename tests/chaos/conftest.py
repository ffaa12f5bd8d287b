"""The chaos harness: real `leaver` processes, killed with SIGKILL, against an IGA simulator served
in the test process (its requests, state and log outlive every kill), and the bookkeeping that
proves nothing was lost and nothing was sent twice.

Every test here adds rows to one table (scenario, system, items, submissions, lost, duplicated),
printed at the end of the run (also without `-s`) and written to `$LEAVER_CHAOS_REPORT` when set.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.domain import CASE_TERMINAL, ITEM_TERMINAL
from app.settings import TargetSettings
from app.simulator.demo_users import DemoAccess, DemoPerson
from tests.procs import query
from tests.support import SimControl, serve_simulator, submitted_pairs

SubmissionKey = tuple[str, str]  # (IGA user ID, access item ID as leaver records it)


# ------------------------------------------------------------------ simulator


@dataclass
class Simulator:
    """A simulator served in the test process, seen as the chaos tests need it."""

    sim: SimControl

    @property
    def system(self) -> str:
        return self.sim.system

    def target(self, requests_per_second: float = 50.0, read_timeout: float = 10.0) -> TargetSettings:
        """The demo target of this simulator, with a per-process rate budget of `requests_per_second`
        (the adapters' defaults, 5-9/s, model a production IGA and would make these tests crawl)."""
        return self.sim.target(
            attempts=3,
            retry_budget_seconds=10.0,
            read_timeout=read_timeout,
            requests_per_second=requests_per_second,
            max_concurrency=8,
        )

    def submissions(self) -> Counter[SubmissionKey]:
        """Every removal the IGA acted on (its probe), as (user, item) pairs."""
        return submitted_pairs(self.sim.submissions())


@contextmanager
def simulator(system: str, app: FastAPI | None = None, **config: Any) -> Iterator[Simulator]:
    """Serve `system`'s simulator (or the given app) on loopback in this process, configured for tests."""
    with serve_simulator(system, app, **config) as sim:
        yield Simulator(sim)


def people_with_items(count: int, items: int = 10, prefix: str = "scale") -> list[DemoPerson]:
    """`count` people who each hold exactly `items` directly granted, removable entitlements."""
    access = tuple(DemoAccess("entitlement", f"Scale Group {k:02d}", "Scale Directory") for k in range(items))
    return [
        DemoPerson(
            f"{prefix}{n:04d}",
            f"Scale {n:04d}",
            f"{prefix}{n:04d}@example.com",
            f"S{n:05d}",
            f"cn={prefix}{n:04d},ou=users,o=example",
            access,
            {"department": "Scale", "legalHold": "false"},
        )
        for n in range(count)
    ]


# ------------------------------------------------------------------ the database's word


@dataclass
class Tally:
    """What the database and the simulator's log say about a run."""

    events: int = 0
    cases: Counter[str] = field(default_factory=Counter)
    items: int = 0
    requested: int = 0  # items the policy said to remove with a removal request
    submissions: int = 0  # (user, item) pairs in accepted submissions
    jobs: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # terminal, but not in the state this run must produce

    def problems(self) -> list[str]:
        out = [f"lost: {x}" for x in self.lost] + [f"duplicated: {x}" for x in self.duplicated]
        out += [f"wrong end state: {x}" for x in self.wrong]
        if self.jobs:
            out.append(f"{self.jobs} job rows left in the queue")
        return out


def case_states(database_url: str) -> Counter[str]:
    return Counter(state for (state,) in query(database_url, "SELECT state FROM cases"))


def tally(database_url: str, submitted: Counter[SubmissionKey], *, expected_items: int | None = None) -> Tally:
    """Count lost and duplicated work. Lost: an event without a finished case, an item not in a
    terminal state, or an item to remove that never reached the IGA. Duplicated: every submission
    of an item beyond its first, and any submission of an item no plan asked to remove."""
    t = Tally()
    t.events = query(database_url, "SELECT count(*) FROM events")[0][0]
    t.jobs = query(database_url, "SELECT count(*) FROM jobs")[0][0]
    cases = query(database_url, "SELECT id, event_id, state, iga_user_id FROM cases")
    t.cases = Counter(state for _, _, state, _ in cases)
    user_of = {case_id: user for case_id, _, _, user in cases}
    with_case = {event_id for _, event_id, _, _ in cases}
    for (event_id,) in query(database_url, "SELECT id FROM events"):
        if event_id not in with_case:
            t.lost.append(f"event {event_id} has no case")
    for case_id, event_id, state, _ in cases:
        if state not in CASE_TERMINAL:
            t.lost.append(f"case {case_id} (event {event_id}) stuck in {state}")
        elif state != "done":
            t.wrong.append(f"case {case_id} ended {state}")
    rows = query(
        database_url,
        "SELECT id, case_id, item_id, action, removable, granted_by, state, note FROM plan_items ORDER BY id",
    )
    t.items = len(rows)
    if expected_items is not None and t.items < expected_items:
        t.lost.append(f"{expected_items - t.items} items never planned ({t.items} of {expected_items})")
    requested: dict[SubmissionKey, int] = {}
    for item_id, case_id, iga_item, action, removable, granted_by, state, note in rows:
        if state not in ITEM_TERMINAL:
            t.lost.append(f"item {item_id} of case {case_id} stuck in {state} ({note})")
        if action == "remove" and bool(removable):
            key = (str(user_of[case_id]), str(iga_item))
            requested[key] = item_id
            if submitted[key] == 0:
                t.lost.append(f"item {item_id} ({iga_item}) of case {case_id} never submitted, ended {state}")
        expected = "kept" if action == "keep" else "removed"
        if state in ITEM_TERMINAL and state != expected and not (action == "remove" and granted_by == "birthright"):
            t.wrong.append(f"item {item_id} ({iga_item}) {action} ended {state}: {note}")
    t.requested = len(requested)
    t.submissions = sum(submitted.values())
    for key, n in sorted(submitted.items()):
        if key not in requested:
            t.duplicated.append(f"{n} submission(s) of {key}, which no plan asked to remove")
        elif n > 1:
            t.duplicated.append(f"item {requested[key]} {key} submitted {n} times")
    return t


def audit_gaps(database_url: str) -> list[str]:
    """Every state change of every case, item and request is one audit row: replaying the audit
    from each entity's first state must pass through unbroken and end in its stored state."""
    start: dict[str, str | None] = {"case": "received", "item": None, "request": None}
    final: dict[tuple[str, str], str] = {}
    for case_id, state in query(database_url, "SELECT id, state FROM cases"):
        final[("case", str(case_id))] = state
    for item_id, state in query(database_url, "SELECT id, state FROM plan_items"):
        final[("item", str(item_id))] = state
    for key, state in query(database_url, "SELECT key, state FROM iga_requests"):
        final[("request", key)] = state
    rows = query(
        database_url,
        "SELECT entity, entity_id, before, after FROM audit WHERE entity IN ('case', 'item', 'request') ORDER BY id",
    )
    gaps: list[str] = []
    current: dict[tuple[str, str], str | None] = {}
    for entity, entity_id, before, after in rows:
        key = (entity, entity_id)
        was = current.get(key, start[entity])
        if before != was:
            gaps.append(f"{entity} {entity_id}: audit goes {before} -> {after}, but it was {was}")
        current[key] = after
    for key, state in sorted(final.items()):
        seen = current.get(key, start[key[0]])
        if seen != state:
            gaps.append(f"{key[0]} {key[1]} is {state}, its audit trail ends at {seen}")
    return gaps


def trail(database_url: str, problems: Sequence[str], limit: int = 3) -> str:
    """For a failure message: the request rows and audit trail of the first cases a problem names."""
    import re

    cases = sorted({int(m) for p in problems for m in re.findall(r"case (\d+)", p)})[:limit]
    items = sorted({int(m) for p in problems for m in re.findall(r"item (\d+)", p)})[:limit]
    if items:
        rows = query(database_url, f"SELECT case_id FROM plan_items WHERE id IN ({','.join(map(str, items))})")
        cases = sorted({*cases, *(c for (c,) in rows)})[:limit]
    out = []
    for case_id in cases:
        out.append(f"--- case {case_id}")
        for row in query(
            database_url,
            "SELECT key, state, sends, request_ids, created_at, last_sent_at FROM iga_requests WHERE case_id = :c",
            c=case_id,
        ):
            out.append(f"request {row}")
        for row in query(
            database_url,
            "SELECT at, actor, entity, entity_id, before, after, why FROM audit"
            " WHERE case_id = :c AND entity != 'item' ORDER BY id",
            c=case_id,
        ):
            out.append(" | ".join(str(v) for v in row))
    return "\n".join(out)


def audit_why(database_url: str, entity: str) -> list[str]:
    return [why for (why,) in query(database_url, "SELECT why FROM audit WHERE entity = :e ORDER BY id", e=entity)]


# ------------------------------------------------------------------ processes


def wait_until(
    done: Callable[[], bool],
    timeout: float,
    what: Callable[[], str],
    *,
    interval: float = 0.2,
    alive: Sequence[subprocess.Popen[bytes]] = (),
) -> None:
    """Poll `done` until true; fail with `what()` at the deadline or when a process in `alive` exits."""
    deadline = time.monotonic() + timeout
    while not done():
        for proc in alive:
            if proc.poll() is not None:
                raise AssertionError(f"process {proc.pid} exited with {proc.returncode} while waiting: {what()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {what()}")
        time.sleep(interval)


def all_finished(database_url: str) -> bool:
    states = case_states(database_url)
    jobs = query(database_url, "SELECT count(*) FROM jobs")[0][0]
    return bool(states) and set(states) <= CASE_TERMINAL and jobs == 0


def log_errors(log: Path) -> list[str]:
    """Lines of a worker log that show a bug rather than an expected, handled condition."""
    bad = ("worker.unexpected_error", "Traceback", "worker.case_failed")
    return [line for line in log.read_text(errors="replace").splitlines() if any(b in line for b in bad)]


# ------------------------------------------------------------------ the table


@dataclass
class Row:
    scenario: str
    system: str
    database: str
    items: int
    submissions: int
    lost: int
    duplicated: int
    seconds: float
    note: str = ""


ROWS: list[Row] = []
HEADER = ("kill point / scenario", "system", "db", "items", "submissions", "lost", "duplicated", "seconds", "recovery")


def table(rows: Sequence[Row]) -> str:
    cells = [HEADER] + [
        (
            r.scenario,
            r.system,
            r.database,
            str(r.items),
            str(r.submissions),
            str(r.lost),
            str(r.duplicated),
            f"{r.seconds:.1f}",
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def record(row: Row) -> None:
    ROWS.append(row)
    print(f"\n{table([row])}")
    report = os.environ.get("LEAVER_CHAOS_REPORT")
    if report:
        Path(report).write_text(table(ROWS) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ROWS:
        terminalreporter.section("leaver chaos: nothing lost, nothing twice")
        terminalreporter.write_line(table(ROWS))


@pytest.fixture
def database_kind(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"
