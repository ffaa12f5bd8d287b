"""The blast-radius guard, over real HTTP against a simulator: more leavers on one target within the
window than allowed stop before any submission in one held batch, shown with its size and first
events; an operator's confirm lets them all proceed, a cancel submits nothing. Dry runs and
rehires are never held."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import OPS_TOKEN
from tests.e2e.conftest import Stack
from tests.support import event_body

MOST = 3
PEOPLE = [f"user0{n:02d}" for n in range(5)]


def wave(stack: Stack, people: list[str], **extra: Any) -> list[str]:
    """One termination per person, in this order; their event IDs."""
    return [stack.send(event_body(p, **extra)).json()["event_id"] for p in people]


def states(stack: Stack, event_ids: list[str]) -> list[str]:
    return [stack.get(f"/status/events/{e}")["cases"][0]["state"] for e in event_ids]


def submitted_users(stack: Stack) -> set[str]:
    return {str(s["user"]) for s in stack.sim.submissions()}


def held_batch(stack: Stack, size: int) -> dict[str, Any]:
    """The held batch once `size` cases wait in it."""
    for _ in range(300):
        held = stack.get("/status/guard")["held"]
        if held and held[0]["waiting"] == size:
            return held[0]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no held batch of {size}: {stack.get('/status/guard')}")


@pytest.fixture
def guarded(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(guard_max_leavers=MOST, guard_window="PT1H")


def test_leavers_past_the_limit_wait_for_an_operator_and_proceed_when_confirmed(guarded: Stack) -> None:
    events = wave(guarded, PEOPLE)
    for e in events[:MOST]:
        guarded.wait_case(e)
    batch = held_batch(guarded, len(PEOPLE) - MOST)
    assert (batch["target"], batch["max_leavers"], batch["cases"]) == (guarded.system, MOST, len(PEOPLE) - MOST)
    assert [f["event_id"] for f in batch["first_events"]] == events[MOST:]
    assert states(guarded, events[MOST:]) == ["planned"] * (len(PEOPLE) - MOST)
    held_ids = {guarded.sim.user_id(p) for p in PEOPLE[MOST:]}
    first_ids = {guarded.sim.user_id(p) for p in PEOPLE[:MOST]}
    assert submitted_users(guarded) == first_ids  # nothing of the held leavers reached the IGA

    resp = guarded.http.post(
        f"{guarded.url}/ops/guard/{batch['id']}/confirm",
        headers={"authorization": f"Bearer {OPS_TOKEN}"},
        json={"reason": "the reorg is real"},
    )
    assert resp.status_code == 200 and resp.json()["cases"] == len(PEOPLE) - MOST
    for e in events[MOST:]:
        assert guarded.wait_case(e)["cases"][0]["state"] == "done"
    assert submitted_users(guarded) == first_ids | held_ids
    decided = guarded.get("/status/guard")["batches"][0]
    assert (decided["state"], decided["reason"]) == ("confirmed", "the reorg is real")
    again = guarded.ops(f"/ops/guard/{batch['id']}/confirm")
    assert again.status_code == 409


def test_a_cancelled_batch_submits_nothing(guarded: Stack) -> None:
    events = wave(guarded, PEOPLE)
    for e in events[:MOST]:
        guarded.wait_case(e)
    batch = held_batch(guarded, len(PEOPLE) - MOST)
    before = guarded.sim.submissions()
    assert guarded.ops(f"/ops/guard/{batch['id']}/cancel").status_code == 200
    for e in events[MOST:]:
        (case,) = guarded.wait_case(e)["cases"]
        assert case["state"] == "cancelled"
        assert {i["state"] for i in case["items"]} <= {"cancelled", "kept"}
    assert guarded.sim.submissions() == before
    assert guarded.get("/status/guard")["batches"][0]["state"] == "cancelled"


def test_dry_runs_and_rehires_are_never_held(guarded: Stack) -> None:
    for e in wave(guarded, PEOPLE, dry_run=True):
        (case,) = guarded.wait_case(e)["cases"]
        assert (case["state"], case["dry_run"]) == ("done", True)
    for e in wave(guarded, PEOPLE, type_="user.enabled"):
        assert guarded.wait_case(e)["cases"][0]["state"] == "done"
    assert guarded.get("/status/guard")["batches"] == []
    assert guarded.sim.submissions() == []
