"""IGA faults end to end: permanent refusals fail items with the IGA's words, outages past the
retry budget become dead letters that an operator retry finishes without a second submission,
and the per-target rate limit holds for every worker of the process."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.conftest import Stack
from tests.support import event_body

TERMINAL = {"removed", "kept", "cancelled", "rejected", "failed"}


def test_a_refused_submission_fails_its_items_at_once_with_the_iga_message(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(verify_grace_seconds=1.0)  # the role-granted item then fails too: its role stayed
    stack.sim.fault("submit", status=400, count=1)
    (case,) = stack.wait_case(stack.send(event_body("jdoe")).json()["event_id"])["cases"]
    refused = [i for i in case["items"] if i["state"] == "failed" and i["iga_message"]]
    assert refused, case["items"]
    assert all("refused" in i["iga_message"] and "400" in i["iga_message"] for i in refused)
    assert len(stack.sim.log("submit")) == 1  # a 400 is not retried
    assert {i["state"] for i in case["items"]} <= {"failed", "kept"}
    with_role = [i for i in case["items"] if i["granted_by"] == "role"]
    assert with_role and all("goes only with the role" in (i["note"] or "") for i in with_role)


def test_outage_past_the_retry_budget_is_a_dead_letter_and_retry_does_not_resubmit(
    make_stack: Callable[..., Stack],
) -> None:
    # Fulfilment takes a (simulated) minute, so status polls happen whatever the machine's load.
    stack = make_stack(max_step_attempts=2, sim_config={"fulfil_delay": 60})
    # Submissions go through; every status poll afterwards fails.
    stack.sim.fault("status", status=503)
    event_id = stack.send(event_body("asmith")).json()["event_id"]
    (case,) = stack.wait_case(event_id, timeout=60)["cases"]
    assert case["state"] == "failed"
    assert "503" in case["error"]
    dead = stack.get("/status/dead-letters")["dead_letters"]
    assert [d["case_id"] for d in dead] == [case["case_id"]]
    submitted_before = stack.submitted_item_ids()
    assert submitted_before

    stack.sim.clear_faults()
    stack.sim.advance(120)  # the IGA has finished meanwhile
    assert stack.ops(f"/ops/cases/{case['case_id']}/retry").status_code == 200
    (case,) = stack.wait_case(event_id, timeout=60)["cases"]
    assert case["state"] == "done"
    assert all(i["state"] in TERMINAL for i in case["items"])
    assert stack.submitted_item_ids() == submitted_before  # nothing sent a second time
    assert stack.get("/status/dead-letters")["dead_letters"] == []
    whys = [t["why"] for t in stack.get(f"/status/events/{event_id}")["timeline"]]
    assert any(w.startswith("operator retry") for w in whys)


def test_rate_limit_is_shared_by_all_workers_of_a_process(make_stack: Callable[..., Stack]) -> None:
    rate = 4.0
    stack = make_stack(workers=8, target_http={"requests_per_second": rate, "max_concurrency": 2})
    ids = [stack.send(event_body(f"user{n:03d}")).json()["event_id"] for n in range(3)]
    for event_id in ids:
        stack.wait_case(event_id, timeout=120)
    times = sorted(e["time"] for e in stack.sim.log() if not stack.sim.is_token_call(e))
    assert len(times) > 4 * rate
    # aiolimiter allows a burst of `rate`, then `rate` per second: no 1 s window sees more than 2 x rate.
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 2 * rate, busiest
    assert (times[-1] - times[0]) >= (len(times) - rate) / rate * 0.9


def test_throttling_with_retry_after_is_ridden_out(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.sim.faults(rate_429=0.3, retry_after=0.2)
    started = time.monotonic()
    (case,) = stack.wait_case(stack.send(event_body("jdoe")).json()["event_id"], timeout=60)["cases"]
    assert case["state"] == "done", case
    assert any(e["status"] == 429 for e in stack.sim.log())
    submitted = stack.submitted_item_ids()
    assert len(submitted) == len(set(submitted))
    assert time.monotonic() - started < 60
