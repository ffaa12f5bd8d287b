"""Several accounts on one source, a role held twice (contract §5): the ISC adapter names the
account (`nativeIdentity`) or assignment (`assignmentId`) it revokes, against the simulator that
refuses (or guesses) when they are missing; an item it cannot resolve goes to an operator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.domain import IgaStatus, RemovalRequest, UserIdentifiers
from app.iga.base import IgaPermanentError
from app.iga.sailpoint_isc import SailPointIscClient
from app.simulator.base import FaultRule
from app.simulator.sailpoint_isc import PAT_CLIENT_ID, PAT_CLIENT_SECRET, IscSimulator
from app.simulator.sailpoint_isc.multi import SECOND_NATIVE
from tests.unit.test_sailpoint_isc_adapter import calls, configure, make_client, served  # noqa: F401

FIRST_NATIVE = "mmulti"
pytestmark = pytest.mark.usefixtures("served")


def held(sim: IscSimulator) -> dict[str, int]:
    """What Maria holds, counting each account's and assignment's copy."""
    with sim.lock:
        sim.tick()
        ident = sim.identities[sim.user_id("mmulti")]
        out: dict[str, int] = {}
        for h in ident.holdings:
            if h.held():
                out[h.item.name] = out.get(h.item.name, 0) + 1
        return out


async def revoke_all(c: SailPointIscClient, names: set[str]) -> list[Any]:
    user = await c.find_user(UserIdentifiers(username="mmulti"))
    items = [i for i in await c.list_access(user) if i.name in names]
    reqs = [RemovalRequest(i, n, "leaver: test") for n, i in enumerate(items)]
    refs, keys = [], {}
    for n, batch in enumerate(c.batch_items(reqs)):
        refs += await c.submit_removals(user, batch, f"leaver-m-{n}")
        keys.update({r.item.name: f"leaver-m-{n}" for r in batch})
    return [user, reqs, refs, keys]


def sent_items(sim: IscSimulator) -> list[dict[str, Any]]:
    return [i for e in calls(sim, "POST", "/v3/access-requests") for i in e.body["requestedItems"]]


@pytest.mark.parametrize("mode", ["reject", "arbitrary"])
async def test_each_account_and_assignment_is_revoked_by_name(served: tuple[IscSimulator, str], mode: str) -> None:  # noqa: F811
    sim, url = served
    configure(sim, ambiguous_revoke=mode)
    assert held(sim) == {"VPN Users": 2, "Finance RW": 1, "Sales Global": 2, "Jira Developers": 1}
    c = make_client(url)
    try:
        user, reqs, refs, keys = await revoke_all(c, {"VPN Users", "Finance RW", "Sales Global"})
        assert len(refs) == 3
        sim.clock.advance(5)
        states = await c.get_requests(user, refs)
        assert {s.status for s in states.values()} == {IgaStatus.COMPLETED}
        # A crash after the send: the lookup finds both requests of the item on two accounts.
        vpn = next(r for r in reqs if r.item.name == "VPN Users")
        [found] = await c.find_existing(user, [vpn], keys["VPN Users"])
        assert found.tracking_id.count("+") == 1 and found.status is IgaStatus.COMPLETED
    finally:
        await c.aclose()
    by_item = {}
    for i in sent_items(sim):
        by_item.setdefault(i["type"], []).append({k: i[k] for k in ("nativeIdentity", "assignmentId") if k in i})
    assert sorted(t["nativeIdentity"] for t in by_item["ENTITLEMENT"]) == sorted(
        [FIRST_NATIVE, SECOND_NATIVE, SECOND_NATIVE]
    )
    assert len({t["assignmentId"] for t in by_item["ROLE"]}) == 2
    assert held(sim) == {"Jira Developers": 1}


@pytest.mark.parametrize(("mode", "left"), [("reject", None), ("arbitrary", 1)])
def test_simulator_without_native_identity(served: tuple[IscSimulator, str], mode: str, left: int | None) -> None:  # noqa: F811
    """Without `nativeIdentity` the tenant refuses (400) or removes one arbitrary account's copy."""
    sim, url = served
    configure(sim, ambiguous_revoke=mode, approval_delay=0, fulfil_delay=0, verify_delay=0)
    with sim.lock:
        ident = sim.identities[sim.user_id("mmulti")]
        vpn = next(h.item for h in ident.holdings if h.item.name == "VPN Users")
    with httpx.Client(base_url=url) as http:
        form = {"grant_type": "client_credentials", "client_id": PAT_CLIENT_ID, "client_secret": PAT_CLIENT_SECRET}
        token = http.post("/oauth/token", data=form).json()["access_token"]
        body = {
            "requestType": "REVOKE_ACCESS",
            "requestedFor": [ident.id],
            "requestedItems": [{"type": "ENTITLEMENT", "id": vpn.id, "comment": "test"}],
        }
        resp = http.post("/v3/access-requests", json=body, headers={"Authorization": f"Bearer {token}"})
    if left is None:
        assert resp.status_code == 400 and "nativeIdentity" in resp.text
        assert held(sim)["VPN Users"] == 2
    else:
        assert resp.status_code == 202
        sim.clock.advance(1)
        assert held(sim)["VPN Users"] == left


async def test_unreadable_accounts_go_to_an_operator(served: tuple[IscSimulator, str]) -> None:  # noqa: F811
    sim, url = served
    with sim.lock:
        sim.faults.rules.append(FaultRule(method="GET", path="/v3/accounts", status=403, count=1))
    c = make_client(url)
    try:
        user = await c.find_user(UserIdentifiers(username="mmulti"))
        items = {i.name: i for i in await c.list_access(user)}
        vpn = RemovalRequest(items["VPN Users"], 1, "leaver: test")
        assert c.batch_items([vpn, RemovalRequest(items["Jira Developers"], 2, "x")]) == [
            [vpn],
            [RemovalRequest(items["Jira Developers"], 2, "x")],
        ]
        with pytest.raises(IgaPermanentError, match="operator"):
            await c.submit_removals(user, [vpn], "leaver-o-1")
    finally:
        await c.aclose()
    assert calls(sim, "POST", "/v3/access-requests") == []


async def test_role_assignments_unavailable(served: tuple[IscSimulator, str]) -> None:  # noqa: F811
    """A tenant without role-assignments: the role is sent without assignmentId, and a tenant
    that refuses that answers 400, which fails the batch for an operator (nothing guessed)."""
    sim, url = served
    c = make_client(url, role_assignments_version=None)
    try:
        user = await c.find_user(UserIdentifiers(username="mmulti"))
        role = next(i for i in await c.list_access(user) if i.name == "Sales Global")
        with pytest.raises(IgaPermanentError, match="assignmentId"):
            await c.submit_removals(user, [RemovalRequest(role, 1, "leaver: test")], "leaver-r-1")
    finally:
        await c.aclose()
    assert held(sim)["Sales Global"] == 2


def test_accounts_entitlements_and_role_assignments(served: tuple[IscSimulator, str]) -> None:  # noqa: F811
    """The reads that say which account holds an entitlement and which assignments a role has;
    role-assignments exists from v2024 on only."""
    sim, url = served
    ident = sim.user_id("mmulti")
    form = {"grant_type": "client_credentials", "client_id": PAT_CLIENT_ID, "client_secret": PAT_CLIENT_SECRET}
    with httpx.Client(base_url=url) as http:
        auth = {"Authorization": f"Bearer {http.post('/oauth/token', data=form).json()['access_token']}"}
        ad = next(
            a for a in http.get(f"/v3/search/identities/{ident}", headers=auth).json()["accounts"] if a["privileged"]
        )
        flt = f'identityId eq "{ident}" and sourceId eq "{ad["source"]["id"]}"'
        accounts = http.get("/v3/accounts", params={"filters": flt}, headers=auth).json()
        assert sorted(a["nativeIdentity"] for a in accounts) == sorted([FIRST_NATIVE, SECOND_NATIVE])
        second = next(a for a in accounts if a["nativeIdentity"] == SECOND_NATIVE)
        names = [e["name"] for e in http.get(f"/v3/accounts/{second['id']}/entitlements", headers=auth).json()]
        assert sorted(names) == ["Finance RW", "VPN Users"]
        path = f"/identities/{ident}/role-assignments"
        assigned = http.get(f"/v2025{path}", headers=auth).json()
        assert [a["role"]["name"] for a in assigned] == ["Sales Global", "Sales Global"]
        assert len({a["id"] for a in assigned}) == 2
        assert http.get(f"/v3{path}", headers=auth).status_code == 404
