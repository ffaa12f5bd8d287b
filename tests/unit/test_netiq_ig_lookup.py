"""NetIQ IG's request list as the product has it (no role flags, `getCompleted` false and
`sortOrder` ASC by default), whether it lists role removals at all (unverified: both positions),
and privileged read only as configured."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from app.domain import IgaStatus, RemovalRequest
from app.simulator.netiq_ig import NetIqIgSimulator
from tests.unit.test_netiq_ig_adapter import app, by_name, connect, jdoe, sim  # noqa: F401

SETTLE = 10.0  # past approval, fulfilment and verification in the simulator's default timings


async def submit_role_and_perm(app: FastAPI, sim: NetIqIgSimulator, **options: object) -> list[object]:  # noqa: F811
    async with connect(app, **options) as client:
        user = await jdoe(client)
        items = await client.list_access(user)
        batch = [
            RemovalRequest(by_name(items, "Sales Global"), 1, "rule=terminate-all"),
            RemovalRequest(by_name(items, "VPN Users"), 2, "rule=terminate-all"),
        ]
        refs = await client.submit_removals(user, batch, "leaver-5-1")
        return [user, batch, refs]


@pytest.mark.parametrize("listed", [True, False])
@pytest.mark.parametrize("adapter_expects", [True, False])
async def test_role_removal_completes_whether_or_not_the_lookup_lists_it(
    app: FastAPI,  # noqa: F811
    sim: NetIqIgSimulator,  # noqa: F811
    listed: bool,
    adapter_expects: bool,
) -> None:
    sim.configure({"role_items_in_lookup": listed})
    opts = {"role_items_in_lookup": adapter_expects, "lookup_retry_seconds": 0}
    user, _batch, refs = await submit_role_and_perm(app, sim, **opts)
    role_ref, perm_ref = refs  # type: ignore[misc]
    assert perm_ref.tracking_id.isdigit()
    if listed and adapter_expects:
        assert role_ref.tracking_id.isdigit()
    elif not listed:
        assert role_ref.tracking_id.startswith("relist:") and role_ref.status is IgaStatus.PENDING
    async with connect(app, **opts) as client:
        first = await client.get_requests(user, refs)  # type: ignore[arg-type]
        assert first[role_ref.tracking_id].status is IgaStatus.PENDING
        sim.clock.advance(SETTLE)
        done = await client.get_requests(user, refs)  # type: ignore[arg-type]
        assert {s.status for s in done.values()} == {IgaStatus.COMPLETED}
        assert "Sales Global" not in {i.name for i in await client.list_access(user)}  # type: ignore[arg-type]


async def test_recovery_and_duplicates_when_roles_are_not_listed(app: FastAPI, sim: NetIqIgSimulator) -> None:  # noqa: F811
    """A crash after the send: the permission is adopted from the list; the role, still held and
    not listed, is sent again, IG answers DUPLICATE_REQUEST, and it is re-listed (not failed)."""
    sim.configure({"role_items_in_lookup": False})
    opts = {"lookup_retry_seconds": 0}
    user, batch, _refs = await submit_role_and_perm(app, sim, **opts)
    async with connect(app, **opts) as client:
        found = await client.find_existing(user, batch, "leaver-5-1")  # type: ignore[arg-type]
        assert [r.item_id for r in found] == [batch[1].item.id]  # type: ignore[index]
        again = await client.submit_removals(user, [batch[0]], "leaver-5-1")  # type: ignore[index]
        assert again[0].raw_status == "NOT_LISTED" and again[0].status is IgaStatus.PENDING
        sim.clock.advance(SETTLE)
        [gone] = await client.find_existing(user, [batch[0]], "leaver-5-1")  # type: ignore[index]
        assert (gone.status, gone.raw_status) == (IgaStatus.COMPLETED, "NOT_HELD")
    submits = [e for e in sim.log if e.path == "/api/request/request"]
    assert len(submits) == 2  # the second answered DUPLICATE_REQUEST: IG holds one request


async def test_request_list_has_the_products_flags_and_defaults(app: FastAPI, sim: NetIqIgSimulator) -> None:  # noqa: F811
    await submit_role_and_perm(app, sim)
    sim.clock.advance(SETTLE)
    # The list's own defaults, read through the adapter's HTTP session.
    async with connect(app) as client:
        http = client.http

        async def rows(**params: str) -> list[dict[str, object]]:
            body = (
                await http.request("POST", "/api/request/requests", params={"size": "100", **params}, json={})
            ).json()
            return list(body["requests"])

        assert await rows() == []  # completed items are hidden unless getCompleted=true
        everything = await rows(getCompleted="true")
        assert len(everything) == 3  # the role's removal brings one for its permission
        assert await rows(getCompleted="true", getRoles="false", getBroles="false") == everything  # not real flags
        assert [r["requestType"] for r in await rows(getCompleted="true", getPerms="false")] == [
            "REMOVE_TECH_ROLE_ASSIGNMENT"
        ]
        ascending = [r["resourceRequestItemId"] for r in everything]
        assert ascending == sorted(ascending)
        assert [r["resourceRequestItemId"] for r in await rows(getCompleted="true", sortOrder="DESC")] == ascending[
            ::-1
        ]


async def test_privileged_only_as_configured(app: FastAPI) -> None:  # noqa: F811
    async with connect(app, privileged_field=None) as client:
        plain = await client.list_access(await jdoe(client))
    assert not any(i.privileged for i in plain)
    async with connect(app, privileged_field="risk", privileged_values=["high"]) as client:
        marked = await client.list_access(await jdoe(client))
    assert [i.name for i in marked if i.privileged] == ["Domain Admins"]
