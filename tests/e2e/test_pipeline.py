"""One termination end to end, per IGA system: webhook in, every item removed exactly once,
each request ID recorded and followed, everything visible in /status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from app.simulator import simulator_spec
from tests.e2e.conftest import Stack
from tests.support import SYSTEMS, event_body

TERMINAL = {"removed", "kept", "cancelled", "rejected", "failed"}

#: Every test runs on every system with a simulator and an adapter.
pytestmark = pytest.mark.parametrize("system", SYSTEMS)


def test_terminated_user_loses_every_removable_item_exactly_once(make_stack: Callable[..., Stack], system: str) -> None:
    stack = make_stack(system)
    accepted = stack.send(event_body("jdoe"))
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]

    status = stack.wait_case(event_id)
    (case,) = status["cases"]
    assert case["state"] == "done", case
    items = case["items"]
    assert len(items) >= 8
    assert all(i["state"] in TERMINAL for i in items), [(i["name"], i["state"], i["note"]) for i in items]
    assert all(i["rule"] and i["reason"] for i in items)
    removed = [i for i in items if i["state"] == "removed"]
    assert removed, "the demo user must lose access"
    requested = [i for i in removed if i["iga_request_id"]]
    assert all(i["iga_status"] for i in requested)
    kept = [i for i in items if i["state"] == "kept"]
    assert all(i["rule"] == "birthright-stays" for i in kept)

    # The IGA saw exactly one removal per requested item, and nothing else.
    submitted = Counter(stack.submitted_item_ids())
    assert set(submitted.values()) == {1}
    assert sum(submitted.values()) == len(requested) == len([i for i in items if i["iga_request_id"]])

    # The same event again, under a new webhook-id, is recognised and changes nothing.
    again = stack.send(event_body("jdoe", event_id=status["external_id"]))
    assert again.status_code == 200
    assert again.json() == {"event_id": event_id, "duplicate": True}
    assert Counter(stack.submitted_item_ids()) == submitted

    # The timeline explains every step.
    afters = [t["after"] for t in status["timeline"] if t["entity"] == "case"]
    assert afters[:3] == ["resolving", "inventoried", "submitting"] and afters[-1] == "done"

    summary = stack.get("/status/summary")
    assert summary["cases"] == {"done": 1}
    assert summary["time_to_revoke_seconds"]["cases"] == 1
    by_user = stack.get("/status/users/jdoe")
    assert [e["event_id"] for e in by_user["events"]] == [event_id]


def test_legal_hold_keeps_everything_and_submits_nothing(make_stack: Callable[..., Stack], system: str) -> None:
    stack = make_stack(system)
    event_id = stack.send(event_body("lhold")).json()["event_id"]
    (case,) = stack.wait_case(event_id)["cases"]
    assert case["state"] == "done"
    assert {i["state"] for i in case["items"]} == {"kept"}
    assert {i["rule"] for i in case["items"]} == {"legal-hold"}
    assert stack.submitted_item_ids() == []


def test_unknown_user_is_a_finished_case_that_says_so(make_stack: Callable[..., Stack], system: str) -> None:
    """A person the IGA does not know has nothing to remove there: the case is done, with that
    outcome, not a dead letter, and nothing is submitted."""
    stack = make_stack(system)
    event_id = stack.send(event_body("nobody")).json()["event_id"]
    (case,) = stack.wait_case(event_id)["cases"]
    assert case["state"] == "done"
    assert case["outcome"].startswith(f"not found in {stack.system}") and not case["error"]
    assert stack.get("/status/dead-letters")["dead_letters"] == []
    assert stack.submitted_item_ids() == []
    assert stack.ops(f"/ops/cases/{case['case_id']}/cancel").status_code == 409


def test_ambiguous_user_is_never_guessed(make_stack: Callable[..., Stack], system: str) -> None:
    stack = make_stack(system)
    body = event_body("x")
    body["user"] = {"email": "twins@example.com"}
    (case,) = stack.wait_case(stack.send(body).json()["event_id"])["cases"]
    assert case["state"] == "failed"
    assert "ambiguous" in case["error"].lower() or "more than one" in case["error"].lower()
    assert stack.submitted_item_ids() == []


POLICY = """
version: 1
default: {action: remove, when: effective, reason: "remove the rest"}
rules:
  - name: privileged-needs-approval
    match: {privileged: true}
    action: hold
    reason: "an operator decides on privileged access"
  - name: mailbox-grace
    match: {name: "Mailbox*"}
    action: remove
    when: effective+P30D
    reason: "mailbox kept 30 days"
"""


def test_held_item_waits_for_an_operator_and_scheduled_item_waits_for_its_time(
    make_stack: Callable[..., Stack], system: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    stack = make_stack(system, policy_file=policy)
    event_id = stack.send(event_body("jdoe")).json()["event_id"]
    status = stack.wait_case(event_id, states=("tracking",))
    deadline_items = {i["rule"]: i for i in stack.wait_case(event_id, states=("tracking",))["cases"][0]["items"]}
    import time

    for _ in range(100):  # the removable rest finishes while held and scheduled items wait
        items = stack.get(f"/status/events/{event_id}")["cases"][0]["items"]
        if all(i["state"] in TERMINAL | {"held", "scheduled"} for i in items):
            break
        time.sleep(0.1)
    held = [i for i in items if i["state"] == "held"]
    scheduled = [i for i in items if i["state"] == "scheduled"]
    assert [i["rule"] for i in held] == ["privileged-needs-approval"]
    assert [i["rule"] for i in scheduled] == ["mailbox-grace"]
    assert scheduled[0]["due_at"].startswith("2026-12-20")
    assert held[0]["item_id"] not in stack.submitted_item_ids()
    assert deadline_items and status

    assert stack.ops(f"/ops/items/{held[0]['id']}/approve").status_code == 200
    assert stack.ops(f"/ops/items/{held[0]['id']}/approve").status_code == 409
    for _ in range(200):
        items = stack.get(f"/status/events/{event_id}")["cases"][0]["items"]
        approved = next(i for i in items if i["id"] == held[0]["id"])
        if approved["state"] in TERMINAL:
            break
        time.sleep(0.1)
    assert approved["state"] == "removed"
    assert stack.submitted_item_ids().count(held[0]["item_id"]) == 1
    assert stack.get(f"/status/events/{event_id}")["cases"][0]["state"] == "tracking"  # the mailbox still waits


def test_rehire_cancels_removals_not_yet_submitted(make_stack: Callable[..., Stack], system: str) -> None:
    stack = make_stack(system)
    terminate = event_body("asmith", occurred_at="2026-11-20T17:00:00Z", effective_at="2099-01-01T00:00:00Z")
    t_id = stack.send(terminate).json()["event_id"]
    stack.wait_case(t_id, states=("tracking",))
    rehire = event_body("asmith", type_="user.enabled", occurred_at="2026-11-21T09:00:00Z")
    r_id = stack.send(rehire).json()["event_id"]
    assert stack.wait_case(r_id)["cases"][0]["state"] == "done"
    import time

    for _ in range(100):
        items = stack.get(f"/status/events/{t_id}")["cases"][0]["items"]
        if all(i["state"] in TERMINAL for i in items):
            break
        time.sleep(0.1)
    assert {i["state"] for i in items} <= {"cancelled", "kept"}
    assert stack.submitted_item_ids() == []

    # A terminate older than the rehire, arriving late, changes nothing.
    stale = event_body("asmith", occurred_at="2026-11-21T08:00:00Z")
    (case,) = stack.wait_case(stack.send(stale).json()["event_id"])["cases"]
    assert case["state"] == "cancelled"
    assert stack.submitted_item_ids() == []


def test_dry_run_plans_without_submitting(make_stack: Callable[..., Stack], system: str) -> None:
    stack = make_stack(system, dry_run=True)
    (case,) = stack.wait_case(stack.send(event_body("jdoe")).json()["event_id"])["cases"]
    assert case["state"] == "done"
    assert case["items"] and all(i["rule"] for i in case["items"])
    assert stack.submitted_item_ids() == []


def test_two_events_of_one_user_never_send_an_item_twice(make_stack: Callable[..., Stack], system: str) -> None:
    """A disable and a later terminate of the same person: the newer event owns what is not yet
    sent, and what is already with the IGA is not sent again."""
    stack = make_stack(system, sim_config={"approval_delay": 2})  # the first case's requests stay open a while
    first = stack.send(event_body("jdoe", type_="user.disabled", occurred_at="2026-11-20T16:00:00Z"))
    second = stack.send(event_body("jdoe", occurred_at="2026-11-20T17:00:00Z"))
    for resp in (first, second):
        stack.wait_case(resp.json()["event_id"])
    submitted = Counter(stack.submitted_item_ids())
    assert submitted and set(submitted.values()) == {1}
    items = [
        i
        for resp in (first, second)
        for i in stack.get(f"/status/events/{resp.json()['event_id']}")["cases"][0]["items"]
    ]
    assert all(i["state"] in TERMINAL for i in items)
    cancelled = [i for i in items if i["state"] == "cancelled"]
    whys = [
        t["why"]
        for resp in (first, second)
        for t in stack.get(f"/status/events/{resp.json()['event_id']}")["timeline"]
        if t["after"] == "cancelled"
    ]
    assert len(cancelled) == len(whys) > 0
    assert all("superseded by newer event" in w or "not sent twice" in w for w in whys)


def test_rehire_withdraws_a_request_the_iga_still_holds(make_stack: Callable[..., Stack], system: str) -> None:
    stack = make_stack(system, sim_config={"approval_delay": 3600})  # removals wait for an approver
    t_id = stack.send(event_body("asmith", occurred_at="2026-11-20T17:00:00Z")).json()["event_id"]
    import time

    for _ in range(100):
        items = stack.get(f"/status/events/{t_id}")["cases"][0]["items"]
        if any(i["state"] == "submitted" for i in items):
            break
        time.sleep(0.1)
    r_id = stack.send(event_body("asmith", type_="user.enabled", occurred_at="2026-11-21T09:00:00Z")).json()["event_id"]
    assert stack.wait_case(r_id)["cases"][0]["state"] == "done"
    if not simulator_spec(system).withdraws:
        # An IGA with no way to withdraw over its API: each request it holds says so, nothing pretends.
        items = stack.get(f"/status/events/{t_id}")["cases"][0]["items"]
        held = [i for i in items if i["iga_request_id"]]
        assert held and all(i["state"] == "submitted" and "not withdrawn" in (i["note"] or "") for i in held)
        return
    (case,) = stack.wait_case(t_id)["cases"]
    withdrawn = [i for i in case["items"] if i["iga_request_id"]]
    assert withdrawn and all(i["state"] == "cancelled" for i in withdrawn)
    assert any("withdrawn" in t["why"] for t in stack.get(f"/status/events/{t_id}")["timeline"])


def test_rehire_says_so_when_the_iga_can_no_longer_withdraw(make_stack: Callable[..., Stack], system: str) -> None:
    """Fulfilment already completed (only the catalogue has not caught up): the IGA refuses the
    withdrawal, and leaver records that instead of pretending the access stays."""
    stack = make_stack(system, sim_config={"fulfil_delay": 0, "verify_delay": 3600})
    t_id = stack.send(event_body("asmith", occurred_at="2026-11-20T17:00:00Z")).json()["event_id"]
    import time

    for _ in range(100):
        items = stack.get(f"/status/events/{t_id}")["cases"][0]["items"]
        if (
            items
            and all(i["iga_state"] == "completed" for i in items if i["iga_request_id"])
            and any(i["iga_request_id"] for i in items)
        ):
            break
        time.sleep(0.1)
    r_id = stack.send(event_body("asmith", type_="user.enabled", occurred_at="2026-11-21T09:00:00Z")).json()["event_id"]
    assert stack.wait_case(r_id)["cases"][0]["state"] == "done"
    timeline = stack.get(f"/status/events/{t_id}")["timeline"]
    refused = [t["why"] for t in timeline if "not withdrawn" in t["why"]]
    assert refused, [t["why"] for t in timeline][-5:]
    items = stack.get(f"/status/events/{t_id}")["cases"][0]["items"]
    assert all(i["state"] != "cancelled" for i in items if i["iga_request_id"])
