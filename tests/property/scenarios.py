"""What Hypothesis draws for the property tests: a few leaver events for a few demo users and a
random sequence of operations against the pipeline and the IGA. A scenario names no IGA system:
the test plays each one against every registered system."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from app.faults import POINTS

BASE_TIME = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
#: Demo people every simulator seeds: leavers with mixed access, and `lhold` under legal hold.
USERS = ("jdoe", "asmith", "lhold", "user000", "user001")
EVENT_TYPES = ("user.terminated", "user.terminated", "user.disabled", "user.enabled")
#: The kinds of IGA call a fault is aimed at (keys of the simulator's `endpoints`).
FAULT_ENDPOINTS = ("submit", "submit", "lookup", "status", "withdraw", "inventory", "search", "any")


@dataclasses.dataclass(frozen=True)
class Ev:
    """A leaver event for a demo user; its ID is `prop-<index>`."""

    user: str
    type: str
    minute: int  # occurred_at = BASE_TIME + minute (distinct per example)

    def body(self, k: int) -> dict[str, Any]:
        return {
            "id": f"prop-{k}",
            "type": self.type,
            "occurred_at": (BASE_TIME + timedelta(minutes=self.minute)).isoformat(),
            "source": "prop-idm",
            "user": {"username": self.user},
        }


@dataclasses.dataclass(frozen=True)
class Deliver:
    """Deliver event k (again, if it was delivered already), with a fresh or the first webhook-id;
    `twice`: two copies at the same moment."""

    k: int
    same_webhook_id: bool = False
    twice: bool = False


@dataclasses.dataclass(frozen=True)
class Run:
    """A worker claims up to n due jobs and runs them, one after another or concurrently."""

    n: int
    concurrent: bool = False


@dataclasses.dataclass(frozen=True)
class Kill:
    """A worker claims one job and dies (SIGKILL-like) the nth time it reaches `at`: a named crash
    point, or an IGA call (`http-before`: not sent; `http-after`: the IGA acted, no answer read)."""

    at: str
    nth: int = 1


@dataclasses.dataclass(frozen=True)
class Stall:
    """A worker claims one job and freezes after its nth IGA call; its lease expires, another
    worker takes the due jobs; then the frozen one wakes up and carries on."""

    nth: int


@dataclasses.dataclass(frozen=True)
class ExpireLeases:
    """Every lease runs out (as time passing would): a dead or frozen worker's job is free."""


@dataclasses.dataclass(frozen=True)
class Tick:
    """Time passes: every job waiting for a later time is due now."""


@dataclasses.dataclass(frozen=True)
class Fault:
    """The IGA fails the next `count` calls to `endpoint`: status 500/503/429, or a timeout."""

    endpoint: str  # one of FAULT_ENDPOINTS
    kind: str  # "500" | "503" | "429" | "timeout"
    when: str  # "before" (the IGA did nothing) | "after" (the IGA acted, the answer is lost)
    count: int


@dataclasses.dataclass(frozen=True)
class ClearFaults:
    """The IGA is healthy again."""


@dataclasses.dataclass(frozen=True)
class Advance:
    """The IGA's clock moves on (approvals and fulfilments progress)."""

    seconds: float


Op = Deliver | Run | Kill | Stall | ExpireLeases | Tick | Fault | ClearFaults | Advance


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One example: whether the IGA's approvals and fulfilments take time, the events (indexed
    by `Deliver.k`) and the operations, in order."""

    slow_iga: bool
    events: tuple[Ev, ...]
    ops: tuple[Op, ...]


def ops_strategy(n_events: int) -> st.SearchStrategy[Op]:
    k = st.integers(0, n_events - 1)
    run = st.builds(Run, st.integers(1, 4), st.booleans())
    kill = st.one_of(
        st.builds(Kill, st.sampled_from(POINTS), st.integers(1, 2)),
        st.builds(Kill, st.sampled_from(("http-before", "http-after")), st.integers(1, 12)),
    )
    fault = st.builds(
        Fault,
        st.sampled_from(FAULT_ENDPOINTS),
        st.sampled_from(("500", "503", "429", "timeout")),
        st.sampled_from(("before", "after")),
        st.integers(1, 8),
    )
    return st.one_of(
        run,
        run,
        st.just(Tick()),
        kill,
        fault,
        st.builds(Deliver, k, st.booleans(), st.booleans()),
        st.builds(Stall, st.integers(1, 12)),
        st.just(ExpireLeases()),
        st.just(ClearFaults()),
        st.builds(Advance, st.sampled_from((2.0, 10.0))),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(1, 5))
    minutes = draw(st.lists(st.integers(0, 240), min_size=n, max_size=n, unique=True))
    events = tuple(Ev(draw(st.sampled_from(USERS)), draw(st.sampled_from(EVENT_TYPES)), minute) for minute in minutes)
    ops = draw(st.lists(ops_strategy(n), min_size=1, max_size=16))
    # Every event is delivered at least once, each at a drawn point of the run (shrinks to the start).
    for k in draw(st.permutations(range(n))):
        ops.insert(draw(st.integers(0, len(ops))), Deliver(k))
    return Scenario(slow_iga=draw(st.booleans()), events=events, ops=tuple(ops))
