"""Sequences that once sent a removal twice, replayed step by step on every registered system.
Judged at the IGA: what the simulator acted on, not what leaver recorded."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.domain import ITEM_TERMINAL
from app.store.models import IgaRequest, PlanItem
from tests.exactly_once.conftest import SYSTEMS, Stack

MakeStack = Callable[..., Coroutine[Any, Any, Stack]]


def event(k: int, type_: str, minute: int, user: str = "jdoe") -> dict[str, Any]:
    return {
        "id": f"seq-{k}",
        "type": type_,
        "occurred_at": f"2026-11-20T17:{minute:02d}:00Z",
        "source": "seq-idm",
        "user": {"username": user},
    }


async def shift_batches(stack: Stack, column: str, back: timedelta) -> None:
    """Move a time of every batch into the past, as if that much time had passed."""
    async with stack.rt.sessions() as session, session.begin():
        for row in await session.scalars(select(IgaRequest)):
            value = getattr(row, column)
            assert value is not None, f"batch {row.key} has no {column}"
            setattr(row, column, value - back)


def sent_twice(stack: Stack) -> dict[tuple[str, str], int]:
    return {pair: n for pair, n in stack.submissions().items() if n > 1}


async def open_items(stack: Stack) -> list[tuple[int, str, str]]:
    async with stack.rt.sessions() as session:
        items = await session.scalars(select(PlanItem).where(PlanItem.state.not_in(tuple(ITEM_TERMINAL))))
        return [(i.case_id, i.name, i.state) for i in items]


@pytest.mark.parametrize("system", SYSTEMS)
async def test_an_inventory_read_before_another_case_finished_never_sends_its_items_again(
    make_stack: MakeStack, system: str
) -> None:
    stack = await make_stack(system)
    disabled = await stack.deliver(event(1, "user.disabled", 0))
    await stack.work(disabled)  # resolve, plan, submit: the removals are pending at the IGA
    first = stack.submissions()
    assert first and set(first.values()) == {1}

    terminated = await stack.deliver(event(2, "user.terminated", 5))
    # It lists the person's access while those removals are still pending, then its worker dies.
    await stack.work(terminated, stop_at="after_resolve")
    await stack.work_until_finished(disabled)  # the IGA completes them; the first case finishes
    await stack.work_until_finished(terminated)  # the second plans from what it listed earlier

    assert sent_twice(stack) == {}
    assert stack.submissions() == first
    assert await open_items(stack) == []
    async with stack.rt.sessions() as session:
        notes = list(await session.scalars(select(PlanItem.note).where(PlanItem.case_id == terminated)))
        whys = [i.state for i in await session.scalars(select(PlanItem).where(PlanItem.case_id == terminated))]
    assert whys and set(whys) <= set(ITEM_TERMINAL), (whys, notes)


@pytest.mark.parametrize("system", SYSTEMS)
async def test_a_removal_granted_again_after_a_finished_removal_is_removed_again(
    make_stack: MakeStack, system: str
) -> None:
    """The other side of the rule above: an item whose earlier removal finished before this case
    listed it is held again (granted anew), so it must be removed again."""
    stack = await make_stack(system)
    first_case = await stack.deliver(event(1, "user.terminated", 0, user="asmith"))
    await stack.work_until_finished(first_case)
    first = stack.submissions()
    assert first

    stack.sim.reset()  # the IGA grants the person's access again (a rehire, reprovisioned)
    before = sum(stack.submissions().values())
    again = await stack.deliver(event(2, "user.terminated", 30, user="asmith"))
    await stack.work_until_finished(again)
    added = sum(stack.submissions().values()) - before
    assert added == sum(first.values()), "the re-granted access was not removed again"
    assert await open_items(stack) == []


@pytest.mark.parametrize("system", SYSTEMS)
async def test_a_send_slower_than_the_grace_period_is_not_resent_when_it_times_out(
    make_stack: MakeStack, system: str
) -> None:
    """The IGA takes longer than the read timeout, and the send hung longer than the resend grace:
    grace counts from the moment the send became uncertain, so the retry waits instead of resending
    into the IGA that is about to act on the first copy."""
    stack = await make_stack(system)
    case = await stack.deliver(event(1, "user.terminated", 0, user="asmith"))
    stack.transport.hold_submits = True
    await stack.work(case)  # the submission times out: the IGA has it but has not acted yet
    held = len(stack.transport.held)
    assert held >= 1 and stack.submissions() == {}
    # As if the hung call had lasted twice the grace period since the write-ahead commit.
    await shift_batches(stack, "last_sent_at", timedelta(minutes=2))

    await stack.work(case)  # the retry: nothing found yet, and the grace has not run out
    assert stack.transport.submit_calls == held, "resent while the first send was still in flight"

    await stack.transport.release()  # the IGA acts on the first copy, late
    stack.transport.hold_submits = False
    await shift_batches(stack, "uncertain_since", timedelta(minutes=2))  # the grace period has run out
    await stack.work_until_finished(case)
    assert sent_twice(stack) == {}
    assert await open_items(stack) == []
    async with stack.rt.sessions() as session:
        sends = list(await session.scalars(select(IgaRequest.sends)))
    assert sends and set(sends) == {1}, "a batch was sent again although the first copy was found"


async def test_a_half_sent_batch_sends_only_what_never_arrived_and_finishes(make_stack: MakeStack) -> None:
    """PingOne AIC makes one request per item; with two items to a batch, the first publish reaches
    the IGA and the second is lost on the way (its call times out). Recovery adopts the first, gives
    the second the grace period, then sends only the second, and the case finishes."""
    stack = await make_stack("pingone-aic", options={"batch_size": 2})
    case = await stack.deliver(event(1, "user.terminated", 0, user="asmith"))
    stack.transport.hold_submits, stack.transport.let_through = True, 1
    await stack.work(case)
    assert len(stack.transport.held) == 1 and sum(stack.submissions().values()) == 1
    arrived = stack.submissions()
    stack.transport.held.clear()  # the lost publish never reaches the IGA
    stack.transport.hold_submits = False

    await stack.work(case)  # the retry adopts what arrived; the other has no trace yet and waits
    assert stack.submissions() == arrived
    async with stack.rt.sessions() as session:
        batch = (await session.scalars(select(IgaRequest))).one()
        states = sorted(
            i.state for i in await session.scalars(select(PlanItem).where(PlanItem.request_row_id == batch.id))
        )
    assert (batch.state, states) == ("sending", ["planned", "submitted"])

    await shift_batches(stack, "uncertain_since", timedelta(minutes=2))  # the grace period has run out
    await stack.work_until_finished(case)
    assert sent_twice(stack) == {}
    assert await open_items(stack) == []
    async with stack.rt.sessions() as session:
        sent = list(await session.scalars(select(PlanItem.item_id).where(PlanItem.iga_request_id.is_not(None))))
    assert sorted(item for _, item in stack.submissions()) == sorted(sent)


async def test_netiq_recovery_that_cannot_read_the_whole_request_list_decides_from_access(
    make_stack: MakeStack,
) -> None:
    """NetIQ can prove a batch never arrived only by reading every request in the window. Past the
    page cap, the user's current access decides: what IG removed is done, nothing is sent again,
    and the case finishes instead of failing for ever."""
    stack = await make_stack("netiq-ig", options={"page_size": 1, "lookup_max_pages": 1})
    case = await stack.deliver(event(1, "user.terminated", 0, user="asmith"))
    await stack.work(case, stop_at="after_send")  # IG has the batch; leaver never recorded its IDs
    sent = stack.submissions()
    assert sum(sent.values()) >= 2  # more than the one page the lookup may read
    await stack.work_until_finished(case)
    assert stack.submissions() == sent
    assert await open_items(stack) == []
