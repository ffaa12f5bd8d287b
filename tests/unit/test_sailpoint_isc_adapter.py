"""The ISC adapter against the ISC simulator over real HTTP: the exact bodies it sends, how it
reads ISC's answers, and how it finds an earlier submission instead of sending it twice."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaClient, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.registry import build_client
from app.iga.sailpoint_isc import SailPointIscClient, SailPointIscOptions
from app.iga.sailpoint_isc.wire import access_item, pick_row, row_state
from app.simulator.base import FaultRule, LogEntry
from app.simulator.demo_users import DemoPerson
from app.simulator.sailpoint_isc import (
    API_CLIENT_ID,
    API_CLIENT_SECRET,
    IscSimulator,
    create_app,
    demo_target,
    hex_id,
)
from tests.servers import serve_in_thread

REASON = "leaver: user.terminated evt-123"


@pytest.fixture()
def served() -> Iterator[tuple[IscSimulator, str]]:
    app = create_app()
    with serve_in_thread(app) as url:
        yield app.state.sim, url


def make_client(url: str, transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> SailPointIscClient:
    target = demo_target(url)
    target.options.update({"lookup_grace_tries": 1, "lookup_grace_seconds": 0, **options})
    target.http.requests_per_second = 1000
    return SailPointIscClient(target, transport=transport)


@pytest.fixture()
async def client(served: tuple[IscSimulator, str]) -> AsyncIterator[SailPointIscClient]:
    c = make_client(served[1])
    yield c
    await c.aclose()


def calls(sim: IscSimulator, method: str, path: str) -> list[LogEntry]:
    with sim.lock:
        return [e for e in sim.log if e.method == method and e.path == path]


def configure(sim: IscSimulator, **changes: Any) -> None:
    with sim.lock:
        sim.configure(changes)


async def jdoe(client: SailPointIscClient) -> tuple[IgaUser, dict[str, AccessItem]]:
    user = await client.find_user(UserIdentifiers(username="jdoe"))
    return user, {i.name: i for i in await client.list_access(user)}


def removal(item: AccessItem, n: int = 1, remove_at: datetime | None = None) -> RemovalRequest:
    return RemovalRequest(item=item, plan_item_id=n, reason=REASON, remove_at=remove_at)


def item(kind: str, item_id: str, **extra: Any) -> AccessItem:
    return AccessItem(id=item_id, type=kind, name=item_id, extra=extra)  # type: ignore[arg-type]


# ---- the bodies we send


async def test_revoke_body_for_a_role_and_an_access_profile(
    served: tuple[IscSimulator, str], client: SailPointIscClient
) -> None:
    sim, _ = served
    user, items = await jdoe(client)
    role, profile = items["Sales Global"], items["Jira Developers"]
    await client.submit_removals(user, [removal(role), removal(profile, 2)], "leaver-7-1")
    [sent] = calls(sim, "POST", "/v3/access-requests")
    assert sent.body == {
        "requestType": "REVOKE_ACCESS",
        "requestedFor": [user.id],
        "requestedItems": [
            {
                "type": "ROLE",
                "id": role.id,
                "comment": REASON,
                "clientMetadata": {"leaverKey": "leaver-7-1", "leaverItem": f"ROLE:{role.id}"},
            },
            {
                "type": "ACCESS_PROFILE",
                "id": profile.id,
                "comment": REASON,
                "clientMetadata": {"leaverKey": "leaver-7-1", "leaverItem": f"ACCESS_PROFILE:{profile.id}"},
            },
        ],
        "clientMetadata": {"leaverKey": "leaver-7-1"},
    }


async def test_an_entitlement_goes_alone(served: tuple[IscSimulator, str], client: SailPointIscClient) -> None:
    sim, _ = served
    user, items = await jdoe(client)
    removable = [removal(i, n) for n, i in enumerate(items.values()) if i.removable]
    batches = client.batch_items(removable)
    for batch in batches:
        kinds = {r.item.type for r in batch}
        assert (kinds == {"entitlement"} and len(batch) == 1) or "entitlement" not in kinds
    assert sorted(len(b) for b in batches) == [1] * 6 + [2]
    vpn = items["VPN Users"]
    await client.submit_removals(user, [removal(vpn)], "leaver-7-2")
    [sent] = calls(sim, "POST", "/v3/access-requests")
    assert sent.body == {
        "requestType": "REVOKE_ACCESS",
        "requestedFor": [user.id],
        "requestedItems": [
            {
                "type": "ENTITLEMENT",
                "id": vpn.id,
                "comment": REASON,
                "clientMetadata": {"leaverKey": "leaver-7-2", "leaverItem": f"ENTITLEMENT:{vpn.id}"},
            }
        ],
        "clientMetadata": {"leaverKey": "leaver-7-2"},
    }


def test_roles_and_access_profiles_are_capped_per_request(served: tuple[IscSimulator, str]) -> None:
    c = make_client(served[1], batch_max=2)
    reqs = [removal(item("role", f"r{n}")) for n in range(3)] + [removal(item("access_profile", "ap"))]
    reqs.insert(1, removal(item("entitlement", "e1")))
    assert [[r.item.id for r in b] for b in c.batch_items(reqs)] == [["e1"], ["r0", "r1"], ["r2", "ap"]]


def test_remove_date_only_for_a_future_time_and_a_comment_always(served: tuple[IscSimulator, str]) -> None:
    c = make_client(served[1])
    user = IgaUser(id="ef38f94347e94562b5bb8424a56397d8")
    future = datetime(2999, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    naive = datetime(2999, 1, 2, 3, 4, 5)
    past = datetime.now(UTC) - timedelta(minutes=1)
    body = c.revoke_body(
        user,
        [
            removal(item("role", "a"), remove_at=future),
            removal(item("role", "b"), remove_at=naive),
            removal(item("role", "c"), remove_at=past),
            RemovalRequest(item("role", "d"), 4, "  "),
        ],
        "k",
    )
    got = [(i["id"], i.get("removeDate"), i["comment"]) for i in body["requestedItems"]]
    assert got == [
        ("a", "2999-01-02T03:04:05.678Z", REASON),
        ("b", "2999-01-02T03:04:05.000Z", REASON),
        ("c", None, REASON),
        ("d", None, "leaver: access removal"),
    ]


def test_items_isc_cannot_revoke_are_refused(served: tuple[IscSimulator, str]) -> None:
    c = make_client(served[1])
    with pytest.raises(IgaPermanentError, match="application"):
        c.revoke_body(IgaUser(id="x"), [removal(item("application", "app"))], "k")


@pytest.mark.parametrize(
    ("ids", "query"),
    [
        (UserIdentifiers(email="jdoe@example.com"), 'email:"jdoe@example.com"'),
        (UserIdentifiers(employee_id="E1001"), 'employeeNumber:"E1001"'),
        (UserIdentifiers(username="jdoe"), 'attributes.uid:"jdoe"'),
        (UserIdentifiers(dn="cn=jdoe,ou=users,o=example"), '@accounts(accountId:"cn=jdoe,ou=users,o=example")'),
    ],
)
async def test_search_query_per_identifier(
    served: tuple[IscSimulator, str], client: SailPointIscClient, ids: UserIdentifiers, query: str
) -> None:
    sim, _ = served
    user = await client.find_user(ids)
    assert user.id == hex_id("identity", "jdoe") and user.display_name == "Jane Doe"
    [sent] = calls(sim, "POST", "/v3/search")
    assert sent.body == {"indices": ["identities"], "query": {"query": query}, "sort": ["id"], "includeNested": True}
    assert parse_qs(sent.query) == {"limit": ["50"], "offset": ["0"], "count": ["true"]}


async def test_username_by_account_and_dn_by_accounts_endpoint(served: tuple[IscSimulator, str]) -> None:
    sim, url = served
    directory = hex_id("source", "Corporate Directory")
    c = make_client(url, username_lookup="account", dn_lookup="accounts", dn_source_id=directory)
    try:
        by_name = await c.find_user(UserIdentifiers(username="asmith"))
        by_dn = await c.find_user(UserIdentifiers(dn="CN=asmith,OU=users,O=Example"))
    finally:
        await c.aclose()
    assert by_name.id == by_dn.id == hex_id("identity", "asmith")
    assert calls(sim, "POST", "/v3/search")[0].body["query"] == {"query": '@accounts(accountId:"asmith")'}
    [accounts] = calls(sim, "GET", "/v3/accounts")
    assert parse_qs(accounts.query)["filters"] == [
        f'nativeIdentity eq "CN=asmith,OU=users,O=Example" and sourceId eq "{directory}"'
    ]


async def test_only_exact_matches_count(served: tuple[IscSimulator, str], client: SailPointIscClient) -> None:
    sim, _ = served
    with sim.lock:
        sim.add_person(
            DemoPerson("jdoe.au", "Jay Doe", "jdoe@example.com.au", "E1001-AU", "cn=jdoe.au,ou=users,o=example", ()),
            sim.clock.now(),
        )
    # The search is analysed: the phrase also matches the longer address and employee number.
    async with httpx.AsyncClient(base_url=served[1]) as http:
        token = await client.http.auth.headers(http)
        resp = await http.post("/v3/search", json={"query": {"query": 'email:"jdoe@example.com"'}}, headers=token)
        assert sorted(d["name"] for d in resp.json()) == ["jdoe", "jdoe.au"]
    assert (await client.find_user(UserIdentifiers(email="JDOE@example.com"))).id == hex_id("identity", "jdoe")
    assert (await client.find_user(UserIdentifiers(employee_id="E1001"))).id == hex_id("identity", "jdoe")


async def test_ambiguous_not_found_and_direct_ids(client: SailPointIscClient) -> None:
    with pytest.raises(AmbiguousUser, match="email matches 2"):
        await client.find_user(UserIdentifiers(email="twins@example.com"))
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers(email="gone@example.com", username="gone"))
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers())
    # A shared address does not hide a username that names one person.
    twin = await client.find_user(UserIdentifiers(email="twins@example.com", username="twin1"))
    assert twin.id == hex_id("identity", "twin1")
    assert (await client.find_user(UserIdentifiers(iga_id=twin.id))).id == twin.id
    stale = UserIdentifiers(iga_id="0" * 32, email="asmith@example.com")
    assert (await client.find_user(stale)).id == hex_id("identity", "asmith")


async def test_user_carries_the_attributes_policies_key_on(client: SailPointIscClient) -> None:
    user = await client.find_user(UserIdentifiers(username="lhold"))
    assert user.attributes["legalHold"] == "true" and user.attributes["email"] == "lhold@example.com"


async def test_list_access_maps_types_grants_and_sources(client: SailPointIscClient) -> None:
    _, items = await jdoe(client)
    assert len(items) >= 8
    role, profile = items["Sales Global"], items["Jira Developers"]
    assert (role.type, role.application, role.granted_by, role.removable) == ("role", None, "direct", True)
    assert (profile.type, profile.application, profile.removable) == ("access_profile", "Jira", True)
    admins = items["Domain Admins"]
    assert (admins.type, admins.privileged, admins.application, admins.removable) == (
        "entitlement",
        True,
        "Active Directory",
        True,
    )
    via_role = items["Salesforce Sales User"]
    assert (via_role.granted_by, via_role.removable) == ("role", False)
    assert (items["All Staff"].granted_by, items["All Staff"].removable) == ("birthright", False)
    assert admins.extra["isc_type"] == "ENTITLEMENT" and admins.extra["attribute"] == "memberOf"


@pytest.mark.parametrize(
    ("raw", "granted_by", "removable"),
    [
        ({"type": "ROLE", "id": "r", "name": "R", "revocable": False}, "birthright", False),
        ({"type": "ACCESS_PROFILE", "id": "a", "name": "A", "revocable": False}, "role", False),
        ({"type": "ACCESS_PROFILE", "id": "a", "name": "A", "revocable": True}, "direct", True),
        ({"type": "ENTITLEMENT", "id": "e", "name": "E", "standalone": False}, "role", False),
        ({"type": "ENTITLEMENT", "id": "e", "name": "E", "standalone": False, "revocable": False}, "birthright", False),
        ({"type": "ENTITLEMENT", "id": "e", "name": "E", "standalone": True}, "direct", True),
    ],
)
def test_grant_source_from_revocable_and_standalone(raw: dict[str, Any], granted_by: str, removable: bool) -> None:
    got = access_item(raw)
    assert got is not None and (got.granted_by, got.removable) == (granted_by, removable)
    assert access_item({"type": "APP", "id": "x"}) is None


# ---- statuses


@pytest.mark.parametrize(
    ("config", "advance", "raw", "status", "message"),
    [
        ({}, 0, "EXECUTING", IgaStatus.PENDING, None),
        ({"verification_delay": 5}, 1.5, "PROVISIONING_VERIFICATION_PENDING", IgaStatus.PENDING, None),
        ({}, 1.5, "REQUEST_COMPLETED", IgaStatus.COMPLETED, None),
        ({"outcome": "not_all_items_provisioned"}, 1.5, "NOT_ALL_ITEMS_PROVISIONED", IgaStatus.FAILED, "failed"),
        ({"outcome": "failed"}, 1.5, "PROVISIONING_FAILED", IgaStatus.FAILED, "connector returned an error"),
        ({"outcome": "error"}, 1.5, "ERROR", IgaStatus.FAILED, "error occurred"),
        ({"outcome": "rejected"}, 1.5, "REJECTED", IgaStatus.REJECTED, None),
        ({"outcome": "cancelled"}, 1.5, "CANCELLED", IgaStatus.CANCELLED, "cancelled by the system"),
        ({"outcome": "terminated"}, 1.5, "TERMINATED", IgaStatus.FAILED, "terminated"),
    ],
)
async def test_state_mapping(
    served: tuple[IscSimulator, str],
    client: SailPointIscClient,
    config: dict[str, Any],
    advance: float,
    raw: str,
    status: IgaStatus,
    message: str | None,
) -> None:
    sim, _ = served
    configure(sim, **config)
    user, items = await jdoe(client)
    [ref] = await client.submit_removals(user, [removal(items["Jira Developers"])], "leaver-1-1")
    assert ref.request_id and ref.tracking_id == f"{ref.request_id}:ACCESS_PROFILE:{items['Jira Developers'].id}"
    sim.clock.advance(advance)
    state = (await client.get_requests(user, [ref]))[ref.tracking_id]
    assert (state.raw_status, state.status) == (raw, status)
    assert (state.message is None) if message is None else (message in (state.message or ""))


def test_terminated_mapping_is_an_option_and_unknown_states_stay_pending(served: tuple[IscSimulator, str]) -> None:
    c = make_client(served[1], terminated_as="cancelled")
    assert row_state({"state": "TERMINATED"}, c.options).status is IgaStatus.CANCELLED
    assert row_state({"state": "SOMETHING_NEW"}, c.options).status is IgaStatus.PENDING


def test_row_of_an_adopted_foreign_request() -> None:
    ref = RequestRef(item_id="e1", request_id="r", tracking_id="r:ENTITLEMENT:e1")
    ours = {"accessRequestId": "r", "type": "ENTITLEMENT", "clientMetadata": {"leaverItem": "ENTITLEMENT:e1"}}
    other = {"accessRequestId": "r", "type": "ROLE", "state": "EXECUTING", "clientMetadata": None}
    foreign = {"accessRequestId": "r", "type": "ENTITLEMENT", "state": "EXECUTING", "clientMetadata": {"x": "y"}}
    assert pick_row(ref, [other, ours]) is ours
    assert pick_row(ref, [other, foreign]) is foreign
    assert pick_row(ref, [other]) is other
    assert pick_row(ref, []) is None


# ---- paging


async def test_status_pages_when_pages_are_small(served: tuple[IscSimulator, str]) -> None:
    sim, url = served
    c = make_client(url, status_page_size=2)
    try:
        user, items = await jdoe(c)
        ents = [i for i in items.values() if i.type == "entitlement" and i.removable]
        refs = [ref for n, i in enumerate(ents) for ref in await c.submit_removals(user, [removal(i)], f"k-{n}")]
        assert len(refs) == 6
        assert len(await c.get_requests(user, refs)) == 6
        offsets = [parse_qs(e.query)["offset"][0] for e in calls(sim, "GET", "/v3/access-request-status")]
        assert offsets == ["0", "2", "4"]
        # A server that returns fewer rows than asked is paged by X-Total-Count, not cut short.
        configure(sim, page_size_max=4)
        sim.log.clear()
        found = await c.find_existing(user, [removal(ents[-1])], "k-5")
        assert [r.item_id for r in found] == [ents[-1].id]
        assert len(calls(sim, "GET", "/v3/access-request-status")) == 3
    finally:
        await c.aclose()


async def test_search_pages(served: tuple[IscSimulator, str]) -> None:
    sim, url = served
    c = make_client(url, search_page_size=1)
    try:
        with pytest.raises(AmbiguousUser):
            await c.find_user(UserIdentifiers(email="twins@example.com"))
    finally:
        await c.aclose()
    assert [parse_qs(e.query)["offset"][0] for e in calls(sim, "POST", "/v3/search")] == ["0", "1"]


# ---- exactly once


async def test_find_existing_by_correlation_key(served: tuple[IscSimulator, str], client: SailPointIscClient) -> None:
    sim, _ = served
    user, items = await jdoe(client)
    batch = [removal(items["Sales Global"]), removal(items["Jira Developers"], 2)]
    refs = await client.submit_removals(user, batch, "leaver-9-1")
    found = await client.find_existing(user, batch, "leaver-9-1")
    assert [(r.item_id, r.request_id, r.tracking_id) for r in found] == [
        (r.item_id, r.request_id, r.tracking_id) for r in refs
    ]
    assert {(r.status, r.raw_status) for r in found} == {(IgaStatus.PENDING, "EXECUTING")}
    assert await client.find_existing(user, batch, "leaver-9-2") == []
    [query] = [parse_qs(e.query) for e in calls(sim, "GET", "/v3/access-request-status")][:1]
    assert query["requested-for"] == [user.id] and query["sorters"] == ["-created"]
    assert query["filters"][0].startswith("created ge 20") and query["filters"][0].endswith("Z")


@pytest.mark.parametrize(
    ("form", "first", "sent"),
    [
        ("unquoted", False, ["bare"]),
        ("quoted", False, ["bare", "quoted", "quoted"]),
        ("both", True, ["quoted"]),
        ("unquoted", True, ["quoted", "bare", "bare"]),
    ],
)
async def test_created_date_form_falls_back_once_and_is_remembered(
    served: tuple[IscSimulator, str], form: str, first: bool, sent: list[str]
) -> None:
    """Whichever date form the tenant takes, the lookup finds the request; a refused form costs
    one 400 and is not sent again to this target."""
    sim, url = served
    configure(sim, created_date_form=form)
    c = make_client(url, created_filter_quoted=first)
    try:
        user, items = await jdoe(c)
        batch = [removal(items["Sales Global"])]
        refs = await c.submit_removals(user, batch, "leaver-7-1")
        assert [r.request_id for r in await c.find_existing(user, batch, "leaver-7-1")] == [refs[0].request_id]
        if len(sent) > 2:
            assert [r.request_id for r in await c.find_existing(user, batch, "leaver-7-1")] == [refs[0].request_id]
    finally:
        await c.aclose()
    filters = [parse_qs(e.query)["filters"][0] for e in calls(sim, "GET", "/v3/access-request-status")]
    assert ["quoted" if '"' in f else "bare" for f in filters if f.startswith("created")] == sent


async def test_find_existing_retries_over_the_grace(served: tuple[IscSimulator, str]) -> None:
    sim, url = served
    configure(sim, status_lag=0.3)
    c = make_client(url, lookup_grace_tries=5, lookup_grace_seconds=0.2)
    try:
        user, items = await jdoe(c)
        batch = [removal(items["VPN Users"])]
        await c.submit_removals(user, batch, "leaver-3-1")
        assert len(await c.find_existing(user, batch, "leaver-3-1")) == 1
    finally:
        await c.aclose()
    assert len(calls(sim, "GET", "/v3/access-request-status")) >= 2


async def test_a_lost_answer_is_uncertain_and_then_adopted(
    served: tuple[IscSimulator, str], client: SailPointIscClient
) -> None:
    sim, _ = served
    user, items = await jdoe(client)
    batch = [removal(items["Sales Global"]), removal(items["Jira Developers"], 2)]
    with sim.lock:
        sim.faults.rules.append(FaultRule(method="POST", path="/v3/access-requests", status=500, when="after", count=1))
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(user, batch, "leaver-4-1")
    found = await client.find_existing(user, batch, "leaver-4-1")
    assert {r.item_id for r in found} == {items["Sales Global"].id, items["Jira Developers"].id}
    assert len({r.request_id for r in found}) == 1
    assert len(calls(sim, "POST", "/v3/access-requests")) == 1


async def test_legacy_empty_202_falls_back_to_the_lookup(
    served: tuple[IscSimulator, str], client: SailPointIscClient
) -> None:
    sim, _ = served
    configure(sim, legacy_empty_202=True)
    user, items = await jdoe(client)
    refs = await client.submit_removals(user, [removal(items["Mailbox jdoe"])], "leaver-5-1")
    assert len(refs) == 1 and refs[0].item_id == items["Mailbox jdoe"].id
    with sim.lock:
        assert refs[0].request_id == sim.rows[-1].access_request_id
    configure(sim, status_lag=60)
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(user, [removal(items["VPN Users"])], "leaver-5-2")


async def test_an_empty_202_body_falls_back_too(httpx_mock: HTTPXMock) -> None:
    base = "https://acme.api.identitynow.com"
    httpx_mock.add_response(url=f"{base}/oauth/token", json={"access_token": "t", "expires_in": 749})
    httpx_mock.add_response(method="POST", url=f"{base}/v3/access-requests", status_code=202, content=b"")
    row = {
        "accessRequestId": "8b4c12f95c664119b72df781f7fbf03f",
        "state": "EXECUTING",
        "clientMetadata": {"leaverKey": "k", "leaverItem": "ROLE:r1"},
    }
    httpx_mock.add_response(method="GET", json=[row], headers={"X-Total-Count": "1"})
    target = demo_target(base)
    target.options.update(lookup_grace_tries=1)
    c = SailPointIscClient(target)
    try:
        [ref] = await c.submit_removals(IgaUser(id="u1"), [removal(item("role", "r1"))], "k")
    finally:
        await c.aclose()
    assert ref.tracking_id == "8b4c12f95c664119b72df781f7fbf03f:ROLE:r1" and ref.raw_status == "EXECUTING"
    [status_call] = [r for r in httpx_mock.get_requests() if r.method == "GET"]
    assert status_call.url.params["requested-for"] == "u1"


async def test_open_requests_are_adopted_not_duplicated(
    served: tuple[IscSimulator, str], client: SailPointIscClient
) -> None:
    sim, _ = served
    user, items = await jdoe(client)
    batch = [removal(items["Sales Global"]), removal(items["Jira Developers"], 2)]
    first = await client.submit_removals(user, batch, "leaver-6-1")
    second = await client.submit_removals(user, batch, "leaver-6-2")
    assert [r.request_id for r in second] == [r.request_id for r in first]
    with sim.lock:
        assert len(sim.rows) == 2


async def test_several_request_ids_for_one_submission(
    served: tuple[IscSimulator, str], client: SailPointIscClient
) -> None:
    sim, _ = served
    configure(sim, items_per_request_id=1)
    user, items = await jdoe(client)
    batch = [removal(items["Sales Global"]), removal(items["Jira Developers"], 2)]
    refs = await client.submit_removals(user, batch, "leaver-8-1")
    with sim.lock:
        owner = {r.item.id: r.access_request_id for r in sim.rows}
    assert {r.item_id: r.request_id for r in refs} == owner and len(set(owner.values())) == 2
    states = await client.get_requests(user, refs)
    assert set(states) == {r.tracking_id for r in refs}


# ---- transport behaviour


async def test_429_retry_after_is_honoured(served: tuple[IscSimulator, str], client: SailPointIscClient) -> None:
    sim, _ = served
    user, items = await jdoe(client)
    with sim.lock:
        sim.faults.rules.append(
            FaultRule(method="POST", path="/v3/access-requests", status=429, retry_after=1, count=1)
        )
    started = time.monotonic()
    refs = await client.submit_removals(user, [removal(items["VPN Users"])], "leaver-2-1")
    assert time.monotonic() - started >= 0.9
    assert len(refs) == 1
    assert [e.status for e in calls(sim, "POST", "/v3/access-requests")] == [429, 202]


async def test_in_filter_falls_back_to_eq(served: tuple[IscSimulator, str], client: SailPointIscClient) -> None:
    sim, _ = served
    configure(sim, status_in_filter=False)
    user, items = await jdoe(client)
    refs = [
        ref
        for n, name in enumerate(["VPN Users", "Finance RW"])
        for ref in await client.submit_removals(user, [removal(items[name])], f"k-{n}")
    ]
    assert len(await client.get_requests(user, refs)) == 2
    assert len(await client.get_requests(user, refs)) == 2
    filters = [parse_qs(e.query)["filters"][0] for e in calls(sim, "GET", "/v3/access-request-status")]
    assert filters[0].startswith("accessRequestId in (")
    assert [f.split(" ")[1] for f in filters[1:]] == ["eq"] * 4


async def test_cancel(served: tuple[IscSimulator, str], client: SailPointIscClient) -> None:
    sim, _ = served
    configure(sim, approval_delay=60)
    user, items = await jdoe(client)
    refs = await client.submit_removals(
        user, [removal(items["Sales Global"]), removal(items["Jira Developers"])], "leaver-1-1"
    )
    assert await client.cancel_request(user, refs[0], "rehire evt-456") is True
    assert await client.cancel_request(user, refs[1], "rehire evt-456") is True  # same request, already cancelled
    [sent, _] = calls(sim, "POST", "/v3/access-requests/cancel")
    assert sent.body == {"accountActivityId": refs[0].request_id, "comment": "rehire evt-456"}
    states = await client.get_requests(user, refs)
    assert {s.status for s in states.values()} == {IgaStatus.CANCELLED}
    assert states[refs[0].tracking_id].message == "rehire evt-456"
    configure(sim, approval_delay=0)
    [late] = await client.submit_removals(user, [removal(items["VPN Users"])], "leaver-1-2")
    assert await client.cancel_request(user, late, "rehire") is False
    with pytest.raises(IgaPermanentError) as err:
        await client.cancel_request(user, RequestRef("x", "0" * 32, f"{'0' * 32}:ROLE:x"), "rehire")
    assert err.value.status_code == 404


async def test_an_api_client_cannot_request_access(served: tuple[IscSimulator, str]) -> None:
    _, url = served
    target = demo_target(url).model_copy(
        update={"client_id": API_CLIENT_ID, "client_secret": SecretStr(API_CLIENT_SECRET)}
    )
    c = SailPointIscClient(target)
    try:
        user, items = await jdoe(c)  # search works with API authority
        with pytest.raises(IgaPermanentError, match="API authority") as err:
            await c.submit_removals(user, [removal(items["VPN Users"])], "k")
    finally:
        await c.aclose()
    assert err.value.status_code == 403


async def test_a_refused_request_says_why(client: SailPointIscClient) -> None:
    user, _ = await jdoe(client)
    with pytest.raises(IgaPermanentError, match=r"400\.1 Bad Request Content .* was not found"):
        await client.submit_removals(user, [removal(item("role", "0" * 32))], "k")


async def test_revoked_tokens_are_renewed(served: tuple[IscSimulator, str], client: SailPointIscClient) -> None:
    sim, _ = served
    await jdoe(client)
    configure(sim, revoke_tokens=True)
    await jdoe(client)
    assert len(calls(sim, "POST", "/oauth/token")) == 2


def test_options_and_registry(served: tuple[IscSimulator, str]) -> None:
    target = demo_target(served[1])
    assert isinstance(build_client(target), SailPointIscClient)
    assert isinstance(build_client(target), IgaClient)
    with pytest.raises(ValueError, match="invalid sailpoint-isc options"):
        SailPointIscClient(target.model_copy(update={"options": {"batch_maxx": 3}}))
    with pytest.raises(ValueError, match="client_secret"):
        SailPointIscClient(target.model_copy(update={"client_secret": None}))
    defaults = SailPointIscOptions()
    assert (defaults.api_version, defaults.username_attribute, defaults.batch_max) == ("v3", "attributes.uid", 25)
    assert (defaults.lookup_grace_tries, defaults.lookup_grace_seconds) == (3, 15.0)


async def test_another_api_version(served: tuple[IscSimulator, str]) -> None:
    sim, url = served
    c = make_client(url, api_version="v2025")
    try:
        await jdoe(c)
    finally:
        await c.aclose()
    assert calls(sim, "POST", "/v2025/search")
