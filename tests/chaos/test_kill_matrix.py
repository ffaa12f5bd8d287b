"""Crash safety, proved by killing: for every named crash point and every IGA system, a real
`leaver worker` kills itself with SIGKILL there (`LEAVER_CRASH_AT`), a fresh worker takes over
once the dead one's lease lapses, and then every item is terminal, the IGA saw exactly one
submission per item, and the audit trail accounts for every state change."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from app.faults import POINTS
from tests.chaos.conftest import (
    Row,
    all_finished,
    audit_gaps,
    audit_why,
    case_states,
    log_errors,
    record,
    simulator,
    tally,
    trail,
    wait_until,
)
from tests.procs import leaver_env, running, store_events
from tests.support import SYSTEMS, event_body

#: Three people with mixed access: direct, privileged, role-granted, birthright, a dynamic mailbox.
USERS = ("jdoe", "asmith", "user000")
LEASE_SECONDS = "2"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_every_point_loses_nothing_and_sends_nothing_twice(
    point: str, system: str, database_url: str, database_kind: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    with simulator(system) as sim:
        targets = [sim.target()]
        store_events(database_url, tmp_path, targets, [event_body(u) for u in USERS])
        env = leaver_env(database_url, tmp_path, targets, LEAVER_LEASE_SECONDS=LEASE_SECONDS)

        # 1. A worker that dies by SIGKILL the first time it reaches `point`.
        with running(["worker"], env | {"LEAVER_CRASH_AT": point}, tmp_path / "crashing.log") as doomed:
            wait_until(
                lambda: doomed.poll() is not None or all_finished(database_url),
                60,
                lambda: f"the worker neither crashed at {point} nor finished: cases {dict(case_states(database_url))}",
            )
            assert doomed.returncode == -signal.SIGKILL, (
                f"crash point {point!r} was never reached (worker exit {doomed.returncode}; "
                f"cases {dict(case_states(database_url))})"
            )
        at_kill = dict(case_states(database_url))

        # 2. A clean worker: it must pick up every job, including those the dead worker still leased.
        log = tmp_path / "recovering.log"
        with running(["worker"], env, log) as clean:
            wait_until(
                lambda: all_finished(database_url),
                60,
                lambda: f"cases not finished after the crash at {point}: {dict(case_states(database_url))}",
                alive=[clean],
            )
        submitted = sim.submissions()

    result = tally(database_url, submitted)
    requests = audit_why(database_url, "request")
    adopted = sum("adopted" in why for why in requests)
    resent = sum("sending again" in why for why in requests)
    record(
        Row(
            point,
            system,
            database_kind,
            result.items,
            result.submissions,
            len(result.lost),
            len(result.duplicated),
            time.monotonic() - started,
            f"adopted {adopted}, resent {resent}" if adopted or resent else "resumed",
        )
    )

    assert result.events == len(USERS)
    assert result.cases == {"done": len(USERS)}, (at_kill, result.cases)
    assert result.requested > 0 and result.submissions == result.requested
    assert result.problems() == [], trail(database_url, result.problems())
    assert audit_gaps(database_url) == []
    assert log_errors(log) == []
    # Other cases of the killed worker may have been anywhere, so any kill can leave a request in
    # `sending`; these two points always do, and show both ways out of it.
    if point == "after_send":
        # Sent, not recorded: the new worker found the earlier request by its key and adopted it.
        assert adopted >= 1, requests
    elif point == "after_intent":
        # Recorded, never sent: nothing to find, so after the grace period it was sent, once.
        assert resent >= 1, requests
