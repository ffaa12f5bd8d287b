"""A worker killed between send and commit on an IG whose request list does or does not show
role removals (unverified): the real pipeline, database and simulator, nothing sent twice that IG
took, and the case ends."""

from __future__ import annotations

import pytest

from tests.exactly_once.conftest import crash_points, make_stack  # noqa: F401
from tests.exactly_once.test_sequences import MakeStack, event, open_items


@pytest.mark.parametrize("listed", [True, False])
@pytest.mark.parametrize("adapter_expects", [True, False])
async def test_role_removal_after_a_crash_ends_whether_or_not_ig_lists_it(
    make_stack: MakeStack,  # noqa: F811
    listed: bool,
    adapter_expects: bool,
) -> None:
    stack = await make_stack("netiq-ig", options={"role_items_in_lookup": adapter_expects, "lookup_retry_seconds": 0})
    stack.sim.configure({"role_items_in_lookup": listed})
    case = await stack.deliver(event(1, "user.terminated", 0, user="asmith"))
    await stack.work(case, stop_at="after_send")  # IG has the batch; leaver never recorded it
    with stack.sim.lock:
        taken = len(stack.sim.items)
    await stack.work_until_finished(case)
    assert await open_items(stack) == []
    with stack.sim.lock:
        # A role resent in recovery is answered DUPLICATE_REQUEST: IG holds no second request.
        assert len(stack.sim.items) == taken
