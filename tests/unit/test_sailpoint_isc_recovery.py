"""A worker killed between send and commit, on ISC tenants that behave differently where the
contract cannot say how ISC behaves: the date form `created` filters take, and what happens to a
revoke without `nativeIdentity`/`assignmentId`. The real pipeline, database and simulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.exactly_once.conftest import crash_points, make_stack  # noqa: F401
from tests.exactly_once.test_sequences import MakeStack, event, open_items


def submitted_ids(stack: Any) -> list[str]:
    with stack.sim.lock:
        return sorted({r.access_request_id for r in stack.sim.rows})


@pytest.mark.parametrize(
    ("tenant", "first_quoted"), [("unquoted", False), ("unquoted", True), ("quoted", False), ("both", True)]
)
async def test_a_request_sent_before_a_crash_is_adopted_whichever_date_form_isc_takes(
    make_stack: MakeStack,  # noqa: F811
    tenant: str,
    first_quoted: bool,
) -> None:
    stack = await make_stack("sailpoint-isc", options={"created_filter_quoted": first_quoted})
    with stack.sim.lock:
        stack.sim.configure({"created_date_form": tenant})
    case = await stack.deliver(event(1, "user.terminated", 0, user="asmith"))
    await stack.work(case, stop_at="after_send")  # ISC has the request; leaver never recorded its ID
    sent, ids = stack.submissions(), submitted_ids(stack)
    assert sent and set(sent.values()) == {1}
    await stack.work_until_finished(case)
    after = stack.submissions()
    assert set(after.values()) == {1} and sent.keys() <= after.keys()  # adopted, never sent again
    assert set(ids) <= set(submitted_ids(stack))
    with stack.sim.lock:
        lookups = [e for e in stack.sim.log if e.path == "/v3/access-request-status" and "created" in e.query]
    refused = tenant != "both" and first_quoted != (tenant == "quoted")
    assert [e.status for e in lookups][:1] == ([400] if refused else [200])  # the other form, once
    assert [e.status for e in lookups].count(400) == (1 if refused else 0)
    assert await open_items(stack) == []


@pytest.mark.parametrize("without_target", ["reject", "arbitrary"])
async def test_two_accounts_and_a_role_held_twice_end_removed(
    make_stack: MakeStack,  # noqa: F811
    without_target: str,
) -> None:
    stack = await make_stack("sailpoint-isc")
    with stack.sim.lock:
        stack.sim.configure({"ambiguous_revoke": without_target})
    case = await stack.deliver(event(2, "user.terminated", 0, user="mmulti"))
    await stack.work(case, stop_at="after_send")
    await stack.work_until_finished(case)
    assert await open_items(stack) == []
    with stack.sim.lock:
        stack.sim.tick()
        ident = stack.sim.identities[stack.sim.user_id("mmulti")]
        left = sorted(h.item.name for h in ident.holdings if h.held())
    assert left == []
