"""A removal planned for later is kept in the database, not in memory: it is submitted at its
time, once, however often the workers restart in between."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.procs import leaver_env, query, running, spawn, stop, store_events
from tests.support import FIRST_SYSTEM, event_body, serve_simulator

POLICY = """
version: 1
default: {action: remove, when: effective, reason: "remove the rest"}
rules:
  - name: mailbox-grace
    match: {name: "Mailbox*"}
    action: remove
    when: effective+PT15S
    reason: "mailbox kept a little while"
"""


@contextmanager
def _killed_at_exit(procs: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Whatever happens in the test, no worker outlives it."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _item(database_url: str, name: str) -> tuple[str | None, str | None]:
    rows = query(database_url, "SELECT state, iga_request_id FROM plan_items WHERE name = :n", n=name)
    assert len(rows) <= 1
    return rows[0] if rows else (None, None)


def test_scheduled_removal_survives_restarts_and_is_sent_once(database_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    spawned: list[subprocess.Popen[bytes]] = []
    with serve_simulator(FIRST_SYSTEM) as sim, _killed_at_exit(spawned):
        target = sim.target()
        now = datetime.now(UTC).replace(microsecond=0)
        store_events(
            database_url,
            tmp_path,
            [target],
            [event_body("jdoe", occurred_at=now.isoformat(), effective_at=now.isoformat())],
        )
        env = leaver_env(database_url, tmp_path, [target], LEAVER_POLICY_FILE=str(policy))
        due = now + timedelta(seconds=15)

        # Worker 1 submits what is due now and leaves the mailbox scheduled; then it is killed.
        first = spawn(["worker"], env, tmp_path / "w1.log")
        spawned.append(first)
        deadline = time.monotonic() + 20
        while _item(database_url, "Mailbox jdoe")[0] != "scheduled" or query(
            database_url, "SELECT count(*) FROM plan_items WHERE state IN ('planned', 'submitted')"
        ) != [(0,)]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        stop(first, signal.SIGKILL)
        # Two more short-lived workers before the due time: neither may send it early.
        for n in (2, 3):
            w = spawn(["worker"], env, tmp_path / f"w{n}.log")
            spawned.append(w)
            time.sleep(0.5)
            stop(w, signal.SIGKILL if n == 2 else signal.SIGTERM)
            assert _item(database_url, "Mailbox jdoe")[0] == "scheduled"
        assert datetime.now(UTC) < due

        with running(["worker"], env, tmp_path / "w4.log"):
            deadline = time.monotonic() + 40
            while _item(database_url, "Mailbox jdoe")[0] != "removed":
                assert time.monotonic() < deadline, _item(database_url, "Mailbox jdoe")
                time.sleep(0.2)
        submitted_at = query(database_url, "SELECT submitted_at FROM plan_items WHERE name = 'Mailbox jdoe'")[0][0]
        assert submitted_at is not None
        submissions = sim.submissions()
        sent = [s["item"] for s in submissions]
        assert len(sent) == len(set(sent))
        # What was due at once went before the due time; then the mailbox alone, at its time.
        (mailbox,) = query(database_url, "SELECT item_id FROM plan_items WHERE name = 'Mailbox jdoe'")[0]
        last_key = max(submissions, key=lambda s: s["at"])["key"]
        assert [s["item"] for s in submissions if s["key"] == last_key] == [mailbox]
        assert all(s["at"] >= due.timestamp() for s in submissions if s["key"] == last_key)
        assert all(s["at"] < due.timestamp() for s in submissions if s["key"] != last_key)
        assert len({s["key"] for s in submissions}) >= 2
        assert {r[0] for r in query(database_url, "SELECT state FROM cases")} == {"done"}
