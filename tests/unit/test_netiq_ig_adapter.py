"""The NetIQ IG adapter: exact bodies and parameters it sends, the §6 status table, recovery rules.

Most tests run the adapter against the simulator in-process and read what it sent from the
simulator's log; shapes the simulator never produces come from pytest-httpx.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from pytest_httpx import HTTPXMock

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.netiq_ig import NetIqIgClient, NetIqIgOptions, fault_text, item_state, map_status
from app.settings import TargetSettings
from app.simulator.base import LogEntry
from app.simulator.netiq_ig import NO_RIGHTS_USER, SERVICE_PASSWORD, NetIqIgSimulator, create_app, demo_target

BASE = "http://ig.test"


def target(**options: Any) -> TargetSettings:
    t = demo_target(BASE)
    return t.model_copy(
        update={"options": {**t.options, **options}, "http": t.http.model_copy(update={"requests_per_second": 1000.0})}
    )


@pytest.fixture
def app() -> FastAPI:
    return create_app()


@pytest.fixture
def sim(app: FastAPI) -> NetIqIgSimulator:
    state: NetIqIgSimulator = app.state.sim
    return state


@asynccontextmanager
async def connect(app: FastAPI, tgt: TargetSettings | None = None, **options: Any) -> AsyncIterator[NetIqIgClient]:
    client = NetIqIgClient(tgt or target(**options), transport=httpx.ASGITransport(app=app))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[NetIqIgClient]:
    async with connect(app) as c:
        yield c


def calls(sim: NetIqIgSimulator, path_part: str = "/api/") -> list[LogEntry]:
    return [e for e in sim.log if path_part in e.path]


def query(entry: LogEntry) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(entry.query))


async def jdoe(client: NetIqIgClient) -> IgaUser:
    return await client.find_user(UserIdentifiers(username="jdoe"))


def by_name(items: list[AccessItem], name: str) -> AccessItem:
    return next(i for i in items if i.name == name)


def removals(items: list[AccessItem], first: int = 1) -> list[RemovalRequest]:
    return [RemovalRequest(item, first + n, "rule=terminate-all") for n, item in enumerate(items)]


# ---------------------------------------------------------------- options and auth


def test_options_defaults_and_validation() -> None:
    o = NetIqIgOptions()
    assert (o.attr_dn, o.attr_username, o.attr_email, o.attr_employee_id) == (
        "userDn",
        "userId",
        "email",
        "workforceId",
    )
    assert (o.batch_size, o.page_size, o.reason_max_length, o.lookup_window_seconds) == (25, 100, 255, 600)
    with pytest.raises(ValidationError):
        NetIqIgOptions.model_validate({"page_sise": 10})
    with pytest.raises(ValidationError):
        NetIqIgOptions.model_validate({"page_size": 1001})
    with pytest.raises(ValueError, match="password"):
        NetIqIgClient(target().model_copy(update={"password": None}))


async def test_password_grant_form_and_refresh_token_revoked(app: FastAPI, sim: NetIqIgSimulator) -> None:
    async with connect(app) as client:
        await jdoe(client)
    token, revoke = calls(sim, "/osp/")
    assert token.path == "/osp/a/idm/auth/oauth2/token"
    # The simulator logs credentials masked; that it issued a token proves the values were right.
    assert token.body == {
        "grant_type": "password",
        "username": "svc-leaver",
        "password": "***",
        "client_id": "iac",
        "client_secret": "***",
    }
    assert revoke.path == "/osp/a/idm/auth/oauth2/revoke"
    assert revoke.body == {"token": "***", "client_id": "iac", "client_secret": "***"}
    assert sim.current_config()["unrevoked_refresh_tokens"] == 0


async def test_basic_client_auth_keeps_the_secret_out_of_the_form(app: FastAPI, sim: NetIqIgSimulator) -> None:
    tgt = target(client_auth="basic").model_copy(update={"token_url": f"{BASE}/osp/a/idm/auth/oauth2/grant"})
    async with connect(app, tgt) as client:
        await jdoe(client)
    token, revoke = calls(sim, "/osp/")
    assert token.path.endswith("/grant") and revoke.path.endswith("/revoke")
    assert set(token.body) == {"grant_type", "username", "password"}
    assert sim.current_config()["unrevoked_refresh_tokens"] == 0


async def test_forbidden_is_permanent_with_the_fault_text(app: FastAPI) -> None:
    tgt = target().model_copy(update={"username": NO_RIGHTS_USER})
    async with connect(app, tgt) as client:
        with pytest.raises(IgaPermanentError, match="RestApiUnAuthorized: Denying access") as caught:
            await jdoe(client)
    assert caught.value.status_code == 403


def test_fault_text() -> None:
    fault = {
        "Fault": {
            "Code": {"Value": "Sender", "Subcode": {"Value": "UnauthorizedDataAccess"}},
            "Reason": {"Text": "User [x] has no right"},
        }
    }
    assert fault_text(httpx.Response(403, json=fault)) == "UnauthorizedDataAccess: User [x] has no right"
    assert fault_text(httpx.Response(400, json={"error": "invalid_grant"})) == "invalid_grant"
    assert fault_text(httpx.Response(502, text="<html>bad gateway</html>")) == "<html>bad gateway</html>"


# ---------------------------------------------------------------- find_user


async def test_search_body_and_params(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    user = await client.find_user(UserIdentifiers(dn="cn=jdoe,ou=users,o=example"))
    (search,) = calls(sim, "/search")
    assert search.method == "POST"
    assert query(search) == {"indexFrom": "0", "size": "2", "showCt": "true", "qMatch": "EXACT"}
    assert search.body == {
        "criterias": [
            '{"operator":"AND","childCriteria":[{"attributeKey":"userDn","operator":"EQ",'
            '"value":"cn=jdoe,ou=users,o=example"}]}'
        ]
    }
    assert len(user.id) == 32
    assert user.display_name == "Jane Doe"
    assert user.attributes["workforceId"] == "E1001" and user.attributes["legalHold"] == "false"
    assert user.extra == {"userId": 10001, "deleted": False}


@pytest.mark.parametrize(
    ("form", "body"),
    [
        (
            "criterias_objects",
            {
                "criterias": [
                    {
                        "operator": "AND",
                        "childCriteria": [{"attributeKey": "email", "operator": "EQ", "value": "jdoe@example.com"}],
                    }
                ]
            },
        ),
        (
            "searchCriteria",
            {
                "searchCriteria": [
                    {"attributeKey": "email", "attributeMatch": "EXACT", "attributeValue": "jdoe@example.com"}
                ]
            },
        ),
        ("q", {}),
    ],
)
async def test_other_search_body_forms(app: FastAPI, sim: NetIqIgSimulator, form: str, body: Any) -> None:
    async with connect(app, search_body=form) as client:
        user = await client.find_user(UserIdentifiers(email="jdoe@example.com"))
    assert user.attributes["userId"] == "jdoe"
    (search,) = calls(sim, "/search")
    assert search.body == body
    assert (query(search).get("q") == "jdoe@example.com") is (form == "q")


async def test_identifier_order_and_attribute_keys(app: FastAPI, sim: NetIqIgSimulator) -> None:
    async with connect(app, attr_dn="ldapDn") as client:
        user = await client.find_user(UserIdentifiers(dn="cn=jdoe,ou=users,o=example", employee_id="E1001"))
        with pytest.raises(AmbiguousUser):
            await client.find_user(UserIdentifiers(email="twins@example.com", employee_id="E1004"))
        with pytest.raises(UserNotFound):
            await client.find_user(UserIdentifiers(dn="cn=jdoe,ou=users,o=example"))
    keys = [json.loads(e.body["criterias"][0])["childCriteria"][0]["attributeKey"] for e in calls(sim, "/search")]
    assert keys == ["ldapDn", "workforceId", "email", "ldapDn"]
    assert user.attributes["userId"] == "jdoe"


async def test_iga_id_is_used_directly(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    direct = await client.find_user(UserIdentifiers(iga_id="ab" * 16, username="jdoe"))
    assert direct.id == "ab" * 16 and not calls(sim)
    numeric = await client.find_user(UserIdentifiers(iga_id="10002"))
    assert numeric.attributes["userId"] == "asmith"
    (get,) = calls(sim)
    assert (get.method, get.path, query(get)) == ("GET", "/api/data/users/10002", {"allowDeleted": "true"})


def _mock_token(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/osp/a/idm/auth/oauth2/token",
        json={"access_token": "eyJ.a.b", "token_type": "bearer", "expires_in": 119},
        is_reusable=True,
    )


def _search_url() -> str:
    return f"{BASE}/api/data/users/search?indexFrom=0&size=2&showCt=true&qMatch=EXACT"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"userId": 7, "userUniqueId": "c" * 32, "attributes": []}, "c" * 32),
        ({"userId": 7, "attributes": [{"attributeKey": "uniqueUserId", "attributeValue": "d" * 32}]}, "d" * 32),
    ],
)
async def test_unique_id_fallbacks(httpx_mock: HTTPXMock, user: dict[str, Any], expected: str) -> None:
    _mock_token(httpx_mock)
    httpx_mock.add_response(url=_search_url(), json={"arraySize": 1, "totalSearch": 1, "users": [user]})
    client = NetIqIgClient(target())
    try:
        assert (await client.find_user(UserIdentifiers(username="x"))).id == expected
    finally:
        await client.aclose()


async def test_missing_unique_id_and_ignored_filter(httpx_mock: HTTPXMock) -> None:
    _mock_token(httpx_mock)
    httpx_mock.add_response(url=_search_url(), json={"users": [{"userId": 7, "attributes": []}]})
    # A server that ignored the filter returns anyone: users whose email disagrees are dropped.
    httpx_mock.add_response(
        url=_search_url(),
        json={
            "arraySize": 2,
            "totalSearch": 46,
            "users": [
                {
                    "userId": 1,
                    "uniqueUserId": "1" * 32,
                    "attributes": [{"attributeKey": "email", "attributeValue": "a@x"}],
                },
                {
                    "userId": 2,
                    "uniqueUserId": "2" * 32,
                    "attributes": [{"attributeKey": "email", "attributeValue": "B@x"}],
                },
            ],
        },
    )
    client = NetIqIgClient(target())
    try:
        with pytest.raises(IgaPermanentError, match="uniqueUserId"):
            await client.find_user(UserIdentifiers(username="x"))
        assert (await client.find_user(UserIdentifiers(email="b@x"))).id == "2" * 32
    finally:
        await client.aclose()


# ---------------------------------------------------------------- list_access


async def test_access_mapping(client: NetIqIgClient) -> None:
    items = await client.list_access(await jdoe(client))
    assert len(items) == 10
    finance = by_name(items, "Finance RW")
    assert (finance.type, finance.application, finance.granted_by, finance.removable, finance.privileged) == (
        "entitlement",
        "Active Directory",
        "direct",
        True,
        False,
    )
    assert finance.extra["requestType"] == "REMOVE_PERMISSION_ASSIGNMENT"
    assert finance.extra["uniqueId"] == finance.id and finance.extra["accountName"] == "jdoe"
    assert by_name(items, "Domain Admins").privileged
    by_role = by_name(items, "Salesforce Sales User")
    role = by_name(items, "Sales Global")
    assert (by_role.granted_by, by_role.removable, by_role.extra["assocById"]) == ("role", False, role.id)
    assert (role.type, role.granted_by, role.removable, role.application) == ("role", "direct", True, None)
    assert role.extra["requestType"] == "REMOVE_TECH_ROLE_ASSIGNMENT"
    staff = by_name(items, "All Staff")
    assert (staff.granted_by, staff.removable) == ("birthright", False)
    mailbox = by_name(items, "Mailbox jdoe")
    assert mailbox.id == f"{mailbox.extra['uniqueId']}:{mailbox.extra['instanceGuid']}"
    assert by_name(items, "Jira Developers").type == "entitlement"  # IG has no access profiles


async def test_privileged_marker_is_configurable(app: FastAPI) -> None:
    async with connect(app, privileged_field=None, privileged_names=("payroll*",)) as client:
        items = await client.list_access(await jdoe(client))
    assert sorted(i.name for i in items if i.privileged) == ["Payroll Approver"]


async def test_paging_params_and_every_page(app: FastAPI, sim: NetIqIgSimulator) -> None:
    async with connect(app, page_size=3) as client:
        user = await jdoe(client)
        sim.log.clear()
        items = await client.list_access(user)
    perm_calls = [query(e) for e in calls(sim, "/perms")]
    assert perm_calls == [
        {"indexFrom": str(i), "size": "3", "showCt": "true", "sortBy": "permname", "sortOrder": "ASC"}
        for i in (0, 3, 6)
    ]
    assert [query(e)["sortBy"] for e in calls(sim, "/roles")] == ["name"]
    assert [e.path.rsplit("/", 1)[1] for e in calls(sim)] == ["perms"] * 3 + ["roles", "broles"]
    assert len(items) == 10


async def test_server_page_cap_below_the_asked_size(app: FastAPI, sim: NetIqIgSimulator) -> None:
    sim.configure({"page_size_max": 2})
    async with connect(app) as client:
        items = await client.list_access(await jdoe(client))
    assert len(items) == 10
    assert len(calls(sim, "/perms")) == 5


async def test_version_37_skips_business_roles(app: FastAPI, sim: NetIqIgSimulator) -> None:
    sim.configure({"version": "3.7"})
    async with connect(app, version="3.7") as client:
        assert len(await client.list_access(await jdoe(client))) == 10
    assert not calls(sim, "/broles")


# ---------------------------------------------------------------- submit


async def test_submit_body_markers_and_pairing(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    user = await jdoe(client)
    items = await client.list_access(user)
    batch = removals([by_name(items, n) for n in ("Finance RW", "Mailbox jdoe", "Sales Global")], first=7)
    sim.log.clear()
    started = time.time()

    refs = await client.submit_removals(user, batch, "leaver-42-1")

    submit, lookup = calls(sim)
    assert (submit.method, submit.path) == ("POST", "/api/request/request")
    mailbox = by_name(items, "Mailbox jdoe")
    assert submit.body == {
        "reason": "leaver-42-1 Leaver: removal of a departed user's access",
        "requestItems": [
            {
                "requestType": "REMOVE_PERMISSION_ASSIGNMENT",
                "requestItem": by_name(items, "Finance RW").id,
                "recipient": user.id,
                "reason": "leaver-42-1:7 rule=terminate-all",
            },
            {
                "requestType": "REMOVE_PERMISSION_ASSIGNMENT",
                "requestItem": mailbox.extra["uniqueId"],
                "recipient": user.id,
                "reason": "leaver-42-1:8 rule=terminate-all",
                "instanceGuid": mailbox.extra["instanceGuid"],
            },
            {
                "requestType": "REMOVE_TECH_ROLE_ASSIGNMENT",
                "requestItem": by_name(items, "Sales Global").id,
                "recipient": user.id,
                "reason": "leaver-42-1:9 rule=terminate-all",
            },
        ],
    }
    params = query(lookup)
    assert (lookup.method, lookup.path, lookup.body) == ("POST", "/api/request/requests", {})
    start = int(params.pop("startDate"))
    assert abs(start - (started * 1000 - 600_000)) < 5_000
    assert params == {
        "q": "Jane Doe",
        "qMatch": "EXACT",
        "indexFrom": "0",
        "size": "100",
        "showCt": "true",
        "getInProgress": "true",
        "getCompleted": "true",
        "getAdds": "false",
        "getRemoves": "true",
        "getPerms": "true",
        "getApps": "true",
        "sortBy": "requestdate",
        "sortOrder": "DESC",
    }
    assert [(r.item_id, r.request_id, r.tracking_id) for r in refs] == [
        (batch[0].item.id, "3301", "9901"),
        (batch[1].item.id, "3301", "9902"),
        (batch[2].item.id, "3301", "9903"),
    ]
    assert all(r.status is IgaStatus.PENDING and r.raw_status == "APPROVED" for r in refs)


async def test_account_scoped_removal(app: FastAPI, sim: NetIqIgSimulator) -> None:
    async with connect(app, account_scoped_removal=True) as client:
        user = await jdoe(client)
        finance = by_name(await client.list_access(user), "Finance RW")
        assert calls(sim, "/accounts")
        await client.submit_removals(user, removals([finance]), "leaver-1-1")
    (submit,) = [e for e in sim.log if e.path == "/api/request/request"]
    item = submit.body["requestItems"][0]
    assert item["requestType"] == "REMOVE_ACCOUNT_PERMISSION"
    assert item["recipientAccountUniqueId"] == finance.extra["accountUniqueId"]
    assert len(item["recipientAccountUniqueId"]) == 32


async def test_reason_is_cut_but_keeps_its_marker(app: FastAPI, sim: NetIqIgSimulator) -> None:
    async with connect(app, reason_max_length=40) as client:
        user = await jdoe(client)
        item = by_name(await client.list_access(user), "Finance RW")
        await client.submit_removals(user, [RemovalRequest(item, 3, "x" * 500)], "leaver-7-7")
    (submit,) = [e for e in sim.log if e.path == "/api/request/request"]
    reason = submit.body["requestItems"][0]["reason"]
    assert len(reason) == 40 and reason.startswith("leaver-7-7:3 xxx")


async def test_refused_items_get_terminal_refs(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    user = await jdoe(client)
    items = await client.list_access(user)
    sim.configure({"submit_item_status": "REQUEST_AUTO_DENIED"})
    sim.log.clear()
    (denied,) = await client.submit_removals(user, removals([by_name(items, "VPN Users")]), "leaver-5-1")
    assert (denied.status, denied.raw_status, denied.tracking_id) == (
        IgaStatus.REJECTED,
        "REQUEST_AUTO_DENIED",
        f"leaver-5-1:{denied.item_id}",
    )
    assert denied.message
    assert (await client.get_requests(user, [denied]))[denied.tracking_id].status is IgaStatus.REJECTED
    assert not await client.cancel_request(user, denied, "rehire")
    assert [e.path for e in calls(sim)] == ["/api/request/request"]

    sim.configure({"submit_item_status": None})
    (error,) = await client.submit_removals(user, removals([by_name(items, "All Staff")]), "leaver-5-2")
    assert (error.status, error.raw_status) == (IgaStatus.FAILED, "ERROR_STARTING_REQUEST")
    assert "not revocable" in (error.message or "")


async def test_duplicate_adopts_the_request_in_flight(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    user = await jdoe(client)
    batch = removals([by_name(await client.list_access(user), "VPN Users")])
    first = await client.submit_removals(user, batch, "leaver-6-1")
    again = await client.submit_removals(user, batch, "leaver-6-2")
    assert [r.tracking_id for r in again] == [r.tracking_id for r in first]
    assert len(sim.items) == 1


async def test_duplicate_of_someone_elses_request(app: FastAPI, sim: NetIqIgSimulator) -> None:
    sim.credentials["svc-other"] = SERVICE_PASSWORD
    other = target().model_copy(update={"username": "svc-other"})
    async with connect(app, other) as theirs:
        user = await jdoe(theirs)
        batch = removals([by_name(await theirs.list_access(user), "VPN Users")])
        (their_ref,) = await theirs.submit_removals(user, batch, "someone-else")
    async with connect(app) as ours:
        (blind,) = await ours.submit_removals(user, batch, "leaver-8-1")
    async with connect(app, lookup_get_all=True) as wide:
        (adopted,) = await wide.submit_removals(user, batch, "leaver-8-2")
    assert (blind.status, blind.raw_status) == (IgaStatus.FAILED, "DUPLICATE_REQUEST")
    assert "lookup_get_all" in (blind.message or "")
    assert adopted.tracking_id == their_ref.tracking_id


async def test_accepted_but_never_listed_is_uncertain(httpx_mock: HTTPXMock) -> None:
    _mock_token(httpx_mock)
    httpx_mock.add_response(
        url=f"{BASE}/api/request/request",
        json={
            "requestItemsStatus": [
                {
                    "requestItem": "a" * 32,
                    "recipient": "b" * 32,
                    "requestType": "REMOVE_PERMISSION_ASSIGNMENT",
                    "itemStatus": "REQUESTING",
                    "errMessage": None,
                }
            ]
        },
    )
    httpx_mock.add_response(method="POST", json={"arraySize": 0, "totalSearch": 0, "requests": []}, is_reusable=True)
    client = NetIqIgClient(target(lookup_attempts=2, lookup_retry_seconds=0))
    item = AccessItem("a" * 32, "entitlement", "X", extra={"uniqueId": "a" * 32})
    try:
        with pytest.raises(IgaUncertainError, match="does not list"):
            await client.submit_removals(IgaUser("b" * 32), removals([item]), "leaver-9-9")
    finally:
        await client.aclose()
    assert len(httpx_mock.get_requests(url=f"{BASE}/api/request/request")) == 1
    assert len([r for r in httpx_mock.get_requests() if r.url.path == "/api/request/requests"]) == 2


def test_batches_of_25() -> None:
    client = NetIqIgClient(target())
    item = AccessItem("a", "entitlement", "A")
    batches = client.batch_items([RemovalRequest(item, n, "r") for n in range(60)])
    assert [len(b) for b in batches] == [25, 25, 10]
    assert [b.plan_item_id for b in batches[2]] == list(range(50, 60))
    small = NetIqIgClient(target(batch_size=7))
    assert [len(b) for b in small.batch_items([RemovalRequest(item, n, "r") for n in range(8)])] == [7, 1]


# ---------------------------------------------------------------- find_existing


async def test_find_existing_matches_marker_item_and_type(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    user = await jdoe(client)
    items = await client.list_access(user)
    batch = removals([by_name(items, "VPN Users"), by_name(items, "Finance RW")], first=5)
    refs = await client.submit_removals(user, batch, "leaver-3-1")

    assert await client.find_existing(user, batch, "leaver-3-1") == refs
    assert await client.find_existing(user, batch, "leaver-3-10") == []  # no prefix matches
    shifted = removals([by_name(items, "VPN Users")], first=50)
    assert await client.find_existing(user, shifted, "leaver-3-1") == []  # marker :50 is not :5
    other = await client.find_user(UserIdentifiers(username="asmith"))
    assert await client.find_existing(other, batch, "leaver-3-1") == []
    sim.clock.advance(10)
    done = await client.find_existing(user, batch, "leaver-3-1")
    assert [r.tracking_id for r in done] == [r.tracking_id for r in refs]


async def test_lookup_pages_until_it_finds_the_items(app: FastAPI, sim: NetIqIgSimulator) -> None:
    async with connect(app, page_size=1) as client:
        user = await jdoe(client)
        items = await client.list_access(user)
        batch = removals([by_name(items, "VPN Users"), by_name(items, "Finance RW")])
        refs = await client.submit_removals(user, batch, "leaver-4-1")
        sim.log.clear()
        assert await client.find_existing(user, batch[:1], "leaver-4-1") == refs[:1]
    assert [query(e)["indexFrom"] for e in calls(sim, "/requests")] == ["0", "1"]


# ---------------------------------------------------------------- tracking


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            "REQUESTING APPROVING APPROVING_PSODV NO_DECISION WAITING_PSODV_APPROVAL TENTATIVE_APPROVED "
            "TENTATIVE_DENIED TENTATIVE_RETRACTED APPROVED INITIALIZED PENDING IN_PROGRESS RETRY",
            IgaStatus.PENDING,
        ),
        ("COMPLETED FULFILLED VERIFIED VERIFICATION_IGNORED SKIPPED", IgaStatus.COMPLETED),
        (
            "DENIED REFUSED REQUEST_DENIED REQUEST_AUTO_DENIED PROXY_REQUEST_DENIED PROXY_REQUEST_AUTO_DENIED",
            IgaStatus.REJECTED,
        ),
        ("RETRACTED CLEARED REQUEST_EXPIRED", IgaStatus.CANCELLED),
        (
            "ERROR_STARTING_REQUEST ERROR_STARTING_APPROVAL ERROR_STARTING_PSODV_APPROVAL INVALID_REQUEST_TYPE "
            "INVALID_EFFECTIVE_DATE ERROR TIMED_OUT NOT_VERIFIED VERIFICATION_TIMEOUT",
            IgaStatus.FAILED,
        ),
        ("DUPLICATE_REQUEST DUP_EXPIRATION_REQUEST SOMETHING_NEW", None),
    ],
)
def test_status_table(values: str, expected: IgaStatus | None) -> None:
    assert {v: map_status(v) for v in values.split()} == {v: expected for v in values.split()}


def _action(status: str | None, order: int = 1, update: int = 1, action: str = "REMOVE", **more: Any) -> Any:
    return {"order": order, "updateTime": update, "action": action, "status": status, **more}


@pytest.mark.parametrize(
    ("info", "status", "raw"),
    [
        ({"requestStatus": "NO_DECISION"}, IgaStatus.PENDING, "NO_DECISION"),
        ({"requestStatus": "APPROVED", "changeItemActions": []}, IgaStatus.PENDING, "APPROVED"),
        (
            {"requestStatus": "APPROVED", "changeItemActions": [_action("COMPLETED"), _action("IN_PROGRESS", 2)]},
            IgaStatus.PENDING,
            "IN_PROGRESS",
        ),
        (
            {
                "requestStatus": "APPROVED",
                "changeItemActions": [_action("IN_PROGRESS", 1, 5), _action("COMPLETED", 1, 9)],
            },
            IgaStatus.COMPLETED,
            "COMPLETED",
        ),
        (
            {"requestStatus": "APPROVED", "changeItemActions": [_action(None, action="FULFILLED")]},
            IgaStatus.COMPLETED,
            "FULFILLED",
        ),
        ({"requestStatus": "APPROVED", "changeItemActions": [_action("VERIFIED")]}, IgaStatus.COMPLETED, "VERIFIED"),
        (
            {"requestStatus": "APPROVED", "changeItemActions": [_action(None, action="TIMED_OUT")]},
            IgaStatus.FAILED,
            "TIMED_OUT",
        ),
        ({"itemApprovalStatus": "DENIED"}, IgaStatus.REJECTED, "DENIED"),
        ({"requestStatus": "CLEARED"}, IgaStatus.CANCELLED, "CLEARED"),
        ({"requestStatus": "WHATEVER"}, IgaStatus.PENDING, "WHATEVER"),
    ],
)
def test_item_state_derivation(info: dict[str, Any], status: IgaStatus, raw: str) -> None:
    state = item_state(info)
    assert (state.status, state.raw_status) == (status, raw)


def test_failed_action_carries_its_comment() -> None:
    state = item_state({"requestStatus": "APPROVED", "changeItemActions": [_action("ERROR", comment="LDAP down")]})
    assert (state.status, state.message) == (IgaStatus.FAILED, "LDAP down")


async def test_get_requests_polls_each_item(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    user = await jdoe(client)
    refs = await client.submit_removals(
        user, removals([by_name(await client.list_access(user), "VPN Users")]), "leaver-2-1"
    )
    sim.configure({"fail_status": "ERROR"})
    sim.log.clear()
    states = await client.get_requests(user, [*refs, RequestRef("x", "1", "123456")])
    assert [e.path for e in calls(sim)] == [
        "/api/request/requestItem/9901/info",
        "/api/request/requestItem/123456/info",
    ]
    assert states[refs[0].tracking_id].status is IgaStatus.PENDING
    assert (states["123456"].status, states["123456"].raw_status) == (IgaStatus.FAILED, "NOT_FOUND")
    sim.clock.advance(1.5)
    assert (await client.get_requests(user, refs))[refs[0].tracking_id].raw_status == "COMPLETED"


async def test_cancel_request(client: NetIqIgClient, sim: NetIqIgSimulator) -> None:
    user = await jdoe(client)
    items = await client.list_access(user)
    first, second = await client.submit_removals(
        user, removals([by_name(items, "VPN Users"), by_name(items, "Finance RW")]), "leaver-1-2"
    )
    sim.log.clear()
    assert await client.cancel_request(user, first, "rehired")
    (retract,) = calls(sim, "/retract")
    assert (retract.method, query(retract)) == ("PUT", {"id": first.tracking_id, "retractPerms": "false"})
    assert await client.cancel_request(user, first, "rehired")  # already retracted: still True
    assert (await client.get_requests(user, [first]))[first.tracking_id].status is IgaStatus.CANCELLED
    sim.clock.advance(1.5)
    assert not await client.cancel_request(user, second, "rehired")  # fulfilled already


async def test_lookup_that_cannot_read_to_the_end_is_uncertain_not_absent(app: FastAPI) -> None:
    """Recovery that stops reading before the list ends must not say "never sent": that would
    invite a second submission."""
    async with connect(app, page_size=1, lookup_max_pages=1) as client:
        user = await jdoe(client)
        items = await client.list_access(user)
        await client.submit_removals(user, removals([by_name(items, "VPN Users")]), "leaver-7-1")
        await client.submit_removals(user, removals([by_name(items, "Finance RW")], first=2), "leaver-7-2")
        older = removals([by_name(items, "VPN Users")])
        with pytest.raises(IgaUncertainError, match="lookup_max_pages"):
            await client.find_existing(user, older, "leaver-9-9")


async def test_the_recovery_lookup_is_narrowed_to_the_user(app: FastAPI, sim: NetIqIgSimulator) -> None:
    """A busy service account's requests for other people do not count against the page cap."""
    async with connect(app) as busy, connect(app, page_size=1, lookup_max_pages=1) as client:
        user = await jdoe(client)
        mine = removals([by_name(await client.list_access(user), "VPN Users")])
        await client.submit_removals(user, mine, "leaver-7-1")
        other = await busy.find_user(UserIdentifiers(username="asmith"))
        theirs = [i for i in await busy.list_access(other) if i.removable and i.type != "role"]
        assert len(theirs) >= 2
        for n, item in enumerate(theirs):  # newer than jdoe's, so first in the list
            await busy.submit_removals(other, removals([item], first=10 + n), f"leaver-8-{n}")
        sim.log.clear()
        (found,) = await client.find_existing(user, mine, "leaver-7-1")
    (lookup,) = calls(sim, "/api/request/requests")
    assert (query(lookup)["q"], query(lookup)["qMatch"]) == (user.display_name, "EXACT")
    assert found.item_id == mine[0].item.id and found.tracking_id.isdigit()


async def test_past_the_page_cap_an_item_no_longer_held_is_done_and_one_still_held_is_uncertain(
    app: FastAPI, sim: NetIqIgSimulator
) -> None:
    """When the list is too long to prove absence, the user's current access decides."""
    async with connect(app, page_size=1, lookup_max_pages=1) as client:
        user = await jdoe(client)
        items = await client.list_access(user)
        vpn, finance = removals([by_name(items, "VPN Users"), by_name(items, "Finance RW")])
        await client.submit_removals(user, [vpn], "leaver-7-1")
        await client.submit_removals(user, [finance], "leaver-7-2")
        sim.clock.advance(3600)  # both removals are carried out and gone from the user's access
        assert {vpn.item.id, finance.item.id}.isdisjoint(i.id for i in await client.list_access(user))
        # The first key's request sits beyond the one page read: the access decides.
        (gone,) = await client.find_existing(user, [vpn], "leaver-7-1")
        assert (gone.item_id, gone.status, gone.raw_status) == (vpn.item.id, IgaStatus.COMPLETED, "NOT_HELD")

        still = removals([by_name(items, "Helpdesk")], first=3) if any(i.name == "Helpdesk" for i in items) else None
        held = still or removals([i for i in items if i.removable and i.id not in (vpn.item.id, finance.item.id)][:1])
        with pytest.raises(IgaUncertainError, match="still held"):
            await client.find_existing(user, held, "leaver-7-3")
