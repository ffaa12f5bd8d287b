"""The contract every IGA adapter keeps against its simulator, over real HTTP.

Nothing here knows which system it talks to: routes to fault are the simulator's `endpoints` or
learned from its log, and submissions are counted by its probe.
"""

from __future__ import annotations

import math
import time

import pytest
import stamina

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaClient, IgaTransientError, IgaUncertainError, UserNotFound
from app.simulator import simulator_spec
from app.simulator.demo_users import demo_people
from tests.contract.conftest import LogEntry, Sim

JDOE = demo_people()[0]


async def jdoe(client: IgaClient) -> IgaUser:
    return await client.find_user(UserIdentifiers(username=JDOE.username))


def removable(items: list[AccessItem]) -> list[AccessItem]:
    """Directly granted, removable, non-role items: removing them touches nothing else."""
    return [i for i in items if i.removable and i.granted_by == "direct" and i.type != "role" and not i.privileged]


def requests_for(items: list[AccessItem], first_plan_id: int = 1) -> list[RemovalRequest]:
    return [RemovalRequest(item, first_plan_id + n, "contract test") for n, item in enumerate(items)]


def first_batch(client: IgaClient, items: list[AccessItem], first_plan_id: int = 1) -> list[RemovalRequest]:
    """The first batch the adapter makes of these items, as the pipeline would submit it."""
    return client.batch_items(requests_for(items, first_plan_id))[0]


async def first_get_of_list_access(sim: Sim, client: IgaClient, user: IgaUser) -> LogEntry:
    sim.clear_log()
    await client.list_access(user)
    gets = [e for e in sim.api_calls() if e["method"] == "GET"]
    if not gets:
        pytest.skip("list_access makes no GET call on this system")
    sim.clear_log()
    return gets[0]


# ---------------------------------------------------------------- users


@pytest.mark.parametrize(
    "ids",
    [
        UserIdentifiers(dn=JDOE.dn),
        UserIdentifiers(username=JDOE.username),
        UserIdentifiers(email=JDOE.email),
        UserIdentifiers(employee_id=JDOE.employee_id),
    ],
    ids=["dn", "username", "email", "employee_id"],
)
async def test_find_user_by_each_identifier(client: IgaClient, ids: UserIdentifiers) -> None:
    reference = await jdoe(client)
    found = await client.find_user(ids)
    assert reference.id
    assert found.id == reference.id


async def test_unknown_user_is_not_found(client: IgaClient) -> None:
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers(username="nobody-here", email="nobody-here@example.com"))


async def test_shared_email_is_ambiguous(client: IgaClient) -> None:
    with pytest.raises(AmbiguousUser):
        await client.find_user(UserIdentifiers(email="twins@example.com"))


# ---------------------------------------------------------------- access


async def test_list_access_of_jdoe(client: IgaClient) -> None:
    items = await client.list_access(await jdoe(client))
    assert len(items) >= 8
    assert len({i.id for i in items}) == len(items)
    assert any(i.privileged for i in items)
    assert any(i.granted_by == "role" for i in items)
    assert removable(items)


async def test_list_access_is_stable_across_page_sizes(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    sim.clear_log()
    default = await client.list_access(user)
    default_calls = len(sim.api_calls())

    sim.config(page_size_max=3)
    async with sim.connect(sim.small_page_options()) as small:
        sim.clear_log()
        paged = await small.list_access(user)
    calls = sim.api_calls()

    assert sorted(i.id for i in paged) == sorted(i.id for i in default)
    assert len(calls) >= default_calls
    if len(calls) > default_calls:  # the system pages access lists: every page of 3 was fetched
        assert len(calls) >= math.ceil(len(paged) / 3)


# ---------------------------------------------------------------- submit and track


async def test_submit_one_batch(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    batch = first_batch(client, removable(await client.list_access(user))[:2])
    sim.clear_log()

    refs = await client.submit_removals(user, batch, "leaver-901-1")

    assert [r.item_id for r in refs] == [b.item.id for b in batch]
    assert len({r.tracking_id for r in refs}) == len(refs)
    assert all(r.request_id and r.tracking_id for r in refs)
    assert all(r.status in (IgaStatus.PENDING, IgaStatus.COMPLETED) for r in refs)
    assert sorted(sim.submitted_items("leaver-901-1")) == sorted(b.item.id for b in batch)


async def test_track_to_completed_then_gone(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    batch = first_batch(client, removable(await client.list_access(user))[:2])
    cfg = sim.config()
    refs = await client.submit_removals(user, batch, "leaver-902-1")

    sim.advance(cfg["approval_delay"] + cfg["fulfil_delay"] + 0.5)
    states = await client.get_requests(user, refs)
    assert set(states) == {r.tracking_id for r in refs}
    assert all(s.status is IgaStatus.COMPLETED for s in states.values()), states

    sim.advance(cfg["verify_delay"] + 0.5)
    left = {i.id for i in await client.list_access(user)}
    assert not left & {b.item.id for b in batch}


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("rejected", IgaStatus.REJECTED), ("failed", IgaStatus.FAILED), ("cancelled", IgaStatus.CANCELLED)],
)
async def test_terminal_outcomes(sim: Sim, client: IgaClient, outcome: str, expected: IgaStatus) -> None:
    user = await jdoe(client)
    batch = first_batch(client, removable(await client.list_access(user))[:1])
    cfg = sim.config(outcome=outcome)
    refs = await client.submit_removals(user, batch, f"leaver-903-{outcome}")

    sim.advance(cfg["approval_delay"] + cfg["fulfil_delay"] + cfg["verify_delay"] + 1)
    states = await client.get_requests(user, refs)
    assert [s.status for s in states.values()] == [expected], states
    assert all(s.raw_status for s in states.values())


# ---------------------------------------------------------------- exactly once


async def test_find_existing_by_key(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    batch = first_batch(client, removable(await client.list_access(user))[:2])
    refs = await client.submit_removals(user, batch, "leaver-904-1")

    again = await client.find_existing(user, batch, "leaver-904-1")
    if not simulator_spec(sim.system).finds_by_key:
        # Judged by effect: every item the submission removed is adopted, so nothing is sent again.
        assert sorted(r.item_id for r in again) == sorted(b.item.id for b in batch)
        assert sim.submitted_items("leaver-904-1") != []
        return
    assert sorted(r.tracking_id for r in again) == sorted(r.tracking_id for r in refs)
    assert await client.find_existing(user, batch, "leaver-904-2") == []


async def test_lost_answer_is_uncertain_then_adopted(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    items = removable(await client.list_access(user))

    sim.fault_on_submit(status=500, when="after", count=1)
    batch = first_batch(client, items[1:3], first_plan_id=10)
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(user, batch, "leaver-905-1")

    adopted = await client.find_existing(user, batch, "leaver-905-1")
    assert sorted(r.item_id for r in adopted) == sorted(b.item.id for b in batch)
    assert sorted(sim.submitted_items("leaver-905-1")) == sorted(b.item.id for b in batch)


async def test_failed_before_commit_leaves_nothing(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    items = removable(await client.list_access(user))

    sim.fault_on_submit(status=500, when="before", count=1)
    batch = first_batch(client, items[1:2], first_plan_id=10)
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(user, batch, "leaver-906-1")
    assert await client.find_existing(user, batch, "leaver-906-1") == []
    assert sim.submissions("leaver-906-1") == []


async def test_no_answer_after_commit_is_uncertain_then_adopted(sim: Sim) -> None:
    async with sim.connect(read_timeout=0.5) as client:
        user = await jdoe(client)
        items = removable(await client.list_access(user))

        sim.fault_on_submit(hang_seconds=1.5, timeout=True, when="after", count=1)
        batch = first_batch(client, items[1:2], first_plan_id=10)
        with pytest.raises(IgaUncertainError):
            await client.submit_removals(user, batch, "leaver-907-1")
        adopted = await client.find_existing(user, batch, "leaver-907-1")

    assert [r.item_id for r in adopted] == [b.item.id for b in batch]
    assert sorted(sim.submitted_items("leaver-907-1")) == sorted(b.item.id for b in batch)


# ---------------------------------------------------------------- transport


async def test_expired_token_is_renewed_once(sim: Sim, client: IgaClient) -> None:
    token_path = sim.token_path()
    if token_path is None:
        pytest.skip("this system signs in without a token endpoint")
    await jdoe(client)
    sim.clear_log()
    sim.config(revoke_tokens=True)

    user = await jdoe(client)

    log = sim.log()
    assert user.id
    assert [e["status"] for e in log].count(401) == 1
    assert len([e for e in log if e["path"] == token_path]) == 1


async def test_retry_after_is_honoured(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    expected = {i.id for i in await client.list_access(user)}
    route = await first_get_of_list_access(sim, client, user)
    sim.fault_on(route, status=429, retry_after=0.4, count=1)

    started = time.monotonic()
    items = await client.list_access(user)
    elapsed = time.monotonic() - started

    assert {i.id for i in items} == expected
    assert elapsed >= 0.4
    assert [e["status"] for e in sim.log()].count(429) == 1


async def test_server_errors_on_reads_are_retried(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    expected = {i.id for i in await client.list_access(user)}
    route = await first_get_of_list_access(sim, client, user)
    sim.fault_on(route, status=503, count=2)

    with stamina.set_testing(True, attempts=4):
        items = await client.list_access(user)

    assert {i.id for i in items} == expected
    statuses = [e["status"] for e in sim.log() if e["path"] == route["path"]]
    assert statuses[:3] == [503, 503, 200]


async def test_read_timeout_is_retried(sim: Sim) -> None:
    async with sim.connect(read_timeout=0.5) as client:
        user = await jdoe(client)
        expected = {i.id for i in await client.list_access(user)}
        route = await first_get_of_list_access(sim, client, user)
        sim.fault_on(route, hang_seconds=2, timeout=True, count=1)

        started = time.monotonic()
        with stamina.set_testing(True, attempts=3):
            items = await client.list_access(user)

    assert {i.id for i in items} == expected
    assert time.monotonic() - started < 2
    assert [e for e in sim.log() if e["fault"] and "timeout" in e["fault"]]


async def test_persistent_server_errors_give_up_as_transient(sim: Sim, client: IgaClient) -> None:
    user = await jdoe(client)
    route = await first_get_of_list_access(sim, client, user)
    sim.fault_on(route, status=500)

    with stamina.set_testing(True, attempts=3), pytest.raises(IgaTransientError) as caught:
        await client.list_access(user)

    assert not isinstance(caught.value, IgaUncertainError)
    assert len([e for e in sim.log() if e["path"] == route["path"]]) == 3
