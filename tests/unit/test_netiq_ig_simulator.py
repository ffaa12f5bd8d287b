"""The NetIQ IG simulator reproduces contract §9: auth, IDs, Faults, paging, requests over the clock."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.simulator.netiq_ig import (
    CLIENT_ID,
    CLIENT_SECRET,
    NO_RIGHTS_USER,
    OSP,
    SERVICE_PASSWORD,
    SERVICE_USER,
    NetIqIgSimulator,
    create_app,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")
GRANT = {
    "grant_type": "password",
    "username": SERVICE_USER,
    "password": SERVICE_PASSWORD,
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
}


@pytest.fixture
def app() -> FastAPI:
    return create_app()


@pytest.fixture
def sim(app: FastAPI) -> NetIqIgSimulator:
    state: NetIqIgSimulator = app.state.sim
    return state


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


async def bearer(http: httpx.AsyncClient, username: str = SERVICE_USER) -> dict[str, str]:
    resp = await http.post(f"{OSP}/token", data={**GRANT, "username": username})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@pytest.fixture
async def api(http: httpx.AsyncClient) -> httpx.AsyncClient:
    http.headers.update(await bearer(http))
    return http


def crit(key: str, value: str) -> dict[str, Any]:
    return {"operator": "AND", "childCriteria": [{"attributeKey": key, "operator": "EQ", "value": value}]}


async def search(api: httpx.AsyncClient, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    resp = await api.post("/api/data/users/search", json=body, params={"showCt": "true", **params})
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def uid(api: httpx.AsyncClient, username: str = "jdoe") -> str:
    body = await search(api, {"criterias": [json.dumps(crit("userId", username))]})
    unique: str = body["users"][0]["uniqueUserId"]
    return unique


async def perms(api: httpx.AsyncClient, user: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/request/users/{user}/perms", params={"indexFrom": 0, "size": 100, "showCt": "true"})
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()["permissions"]
    return rows


async def roles(api: httpx.AsyncClient, user: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/request/users/{user}/roles", params={"indexFrom": 0, "size": 100})
    rows: list[dict[str, Any]] = resp.json()["roles"]
    return rows


def perm_named(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["displayName"] == name)


async def submit(api: httpx.AsyncClient, *items: dict[str, Any], reason: str = "r") -> list[dict[str, Any]]:
    resp = await api.post("/api/request/request", json={"reason": reason, "requestItems": list(items)})
    assert resp.status_code == 200, resp.text
    statuses: list[dict[str, Any]] = resp.json()["requestItemsStatus"]
    return statuses


def removal(user: str, item: str, rtype: str = "REMOVE_PERMISSION_ASSIGNMENT", **extra: Any) -> dict[str, Any]:
    return {"requestType": rtype, "requestItem": item, "recipient": user, "reason": "leaver-1-1:1 test", **extra}


async def my_requests(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    query = {"indexFrom": 0, "size": 100, "showCt": "true", "getCompleted": "true", **params}
    resp = await api.post("/api/request/requests", params=query, json={})
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()["requests"]
    return rows


async def info(api: httpx.AsyncClient, item_id: int) -> dict[str, Any]:
    resp = await api.get(f"/api/request/requestItem/{item_id}/info")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def assert_fault(resp: httpx.Response, status: int, code: str, subcode: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    fault = resp.json()["Fault"]
    assert fault["Code"]["Value"] == code
    assert fault["Reason"]["Text"]
    if subcode:
        assert fault["Code"]["Subcode"]["Value"] == subcode


# ---------------------------------------------------------------- OSP


async def test_password_grant_issues_access_and_refresh_tokens(http: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    resp = await http.post(f"{OSP}/token", data=GRANT)
    body = resp.json()
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    assert body["token_type"] == "bearer" and body["expires_in"] == 119
    assert body["access_token"].count(".") == 2 and body["access_token"].startswith("eyJ")
    assert body["refresh_token"].count(".") == 2
    assert sim.current_config()["unrevoked_refresh_tokens"] == 1


async def test_grant_path_accepts_basic_client_auth(http: httpx.AsyncClient) -> None:
    form = {"grant_type": "password", "username": SERVICE_USER, "password": SERVICE_PASSWORD}
    resp = await http.post(f"{OSP}/grant", data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    assert resp.status_code == 200
    assert "access_token" in resp.json()


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "other"}, 401, "invalid_client"),
        ({"password": "wrong"}, 400, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
    ],
)
async def test_bad_grants_answer_oauth_errors(
    http: httpx.AsyncClient, change: dict[str, str], status: int, error: str
) -> None:
    resp = await http.post(f"{OSP}/token", data={**GRANT, **change})
    assert resp.status_code == status
    assert resp.json()["error"] == error
    assert resp.json()["error_description"]


async def test_refresh_tokens_are_counted_until_revoked(http: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    first = (await http.post(f"{OSP}/token", data=GRANT)).json()
    await http.post(f"{OSP}/token", data=GRANT)
    assert (await http.get("/_config")).json()["unrevoked_refresh_tokens"] == 2

    refreshed = await http.post(
        f"{OSP}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert refreshed.status_code == 200 and "refresh_token" not in refreshed.json()

    revoked = await http.post(
        f"{OSP}/revoke", data={"token": first["refresh_token"], "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    assert revoked.status_code == 200
    assert (await http.get("/_config")).json()["unrevoked_refresh_tokens"] == 1
    again = await http.post(
        f"{OSP}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert again.json()["error"] == "invalid_grant"


async def test_bearer_missing_unknown_expired_or_revoked_is_401(http: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    assert_fault(await http.get("/api/whoami"), 401, "Sender")
    assert_fault(await http.get("/api/whoami", headers={"Authorization": "Bearer nope"}), 401, "Sender")

    headers = await bearer(http)
    assert (await http.get("/api/whoami", headers=headers)).json()["principal"] == SERVICE_USER
    sim.clock.advance(120)
    expired = await http.get("/api/whoami", headers=headers)
    assert_fault(expired, 401, "Sender")
    assert expired.headers["www-authenticate"] == "Bearer"

    headers = await bearer(http)
    await http.post("/_config", json={"revoke_tokens": True})
    assert_fault(await http.get("/api/whoami", headers=headers), 401, "Sender")


async def test_token_lifetime_is_configurable(http: httpx.AsyncClient) -> None:
    await http.post("/_config", json={"token_lifetime": 30})
    assert (await http.post(f"{OSP}/token", data=GRANT)).json()["expires_in"] == 30


async def test_user_without_rights_gets_403_fault(http: httpx.AsyncClient) -> None:
    headers = await bearer(http, NO_RIGHTS_USER)
    assert (await http.get("/api/whoami", headers=headers)).status_code == 200
    resp = await http.post("/api/data/users/search", json={}, headers=headers)
    assert_fault(resp, 403, "Sender", "RestApiUnAuthorized")
    assert "Denying access to /data/users/search for user svc-norights" in resp.json()["Fault"]["Reason"]["Text"]


# ---------------------------------------------------------------- users and IDs


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("userDn", "cn=jdoe,ou=users,o=example"),
        ("userId", "jdoe"),
        ("email", "JDOE@example.com"),
        ("workforceId", "E1001"),
    ],
)
async def test_search_by_each_attribute_and_body_form(api: httpx.AsyncClient, key: str, value: str) -> None:
    forms: list[dict[str, Any]] = [
        {"criterias": [json.dumps(crit(key, value))]},
        {"criterias": [crit(key, value)]},
        {"searchCriteria": [{"attributeKey": key, "attributeMatch": "EXACT", "attributeValue": value}]},
    ]
    found = {(await search(api, body, size=2, qMatch="EXACT"))["users"][0]["uniqueUserId"] for body in forms}
    quick = await search(api, {}, q=value, qMatch="EXACT")
    assert len(found) == 1
    assert quick["users"][0]["uniqueUserId"] in found


async def test_shared_email_finds_two_and_deleted_user_is_flagged(api: httpx.AsyncClient) -> None:
    twins = await search(api, {"criterias": [json.dumps(crit("email", "twins@example.com"))]}, size=2)
    assert twins["totalSearch"] == 2 and twins["arraySize"] == 2
    gone = await search(api, {"criterias": [json.dumps(crit("userId", "gone"))]})
    assert gone["users"][0]["deleted"] is True
    user_id = gone["users"][0]["userId"]
    assert_fault(await api.get(f"/api/data/users/{user_id}"), 404, "Sender")
    assert (await api.get(f"/api/data/users/{user_id}", params={"allowDeleted": "true"})).json()["deleted"] is True


async def test_search_paging_defaults_and_limits(api: httpx.AsyncClient) -> None:
    everyone = await api.post("/api/data/users/search", json={})
    assert everyone.json()["arraySize"] == 10 and "totalSearch" not in everyone.json()
    counted = await search(api, {}, size=1000)
    assert counted["totalSearch"] == counted["arraySize"] == 46
    assert_fault(await api.post("/api/data/users/search", json={}, params={"size": 1001}), 400, "Sender")
    assert_fault(await api.post("/api/data/users/search", json={"criterias": ["{not json"]}), 400, "Sender")


async def test_id_formats(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    users = (await search(api, {}, size=1000))["users"]
    user = await uid(api)
    held = await perms(api, user)
    technical = await roles(api, user)
    accounts = (await api.get(f"/api/data/users/{users[0]['userId']}/accounts", params={"size": 100})).json()
    uniques = [u["uniqueUserId"] for u in users] + [p["uniquePermId"] for p in held]
    uniques += [r["uniquePolicyId"] for r in technical] + [a["uniqueAcctId"] for a in accounts["accounts"]]
    assert all(HEX32.match(u) for u in uniques)
    assert len(set(uniques)) == len(uniques)
    assert all(isinstance(u["userId"], int) and u["userId"] > 10000 for u in users)
    assert len({u["userId"] for u in users}) == len(users)
    assert {p["permId"] for p in held}.isdisjoint({u["userId"] for u in users})
    assert all(isinstance(p["startDate"], int) and p["startDate"] > 1_600_000_000_000 for p in held)


# ---------------------------------------------------------------- access


async def test_jdoe_access_carries_every_grant_source(api: httpx.AsyncClient) -> None:
    user = await uid(api)
    held = await perms(api, user)
    technical = await roles(api, user)
    assert len(held) + len(technical) >= 8
    by_role = perm_named(held, "Salesforce Sales User")
    assert by_role["permissionAssignmentInfo"]["revocable"] is False
    assert by_role["permissionAssignmentInfo"]["assocById"] == technical[0]["uniquePolicyId"]
    birthright = perm_named(held, "All Staff")
    assert birthright["authorizedBy"][0]["autoGrant"] is True
    assert birthright["permissionAssignmentInfo"]["revocable"] is False
    assert perm_named(held, "Domain Admins")["risk"] == "HIGH" and "privileged" not in perm_named(held, "Domain Admins")
    mailbox = perm_named(held, "Mailbox jdoe")
    assert mailbox["dynamic"] is True and HEX32.match(mailbox["instanceGuid"])
    direct = perm_named(held, "Finance RW")
    assert direct["permissionAssignmentInfo"]["revocable"] is True and direct["accountId"]
    assert direct["name"] == "cn=Finance RW,ou=groups,o=example"


async def test_request_lists_need_an_explicit_size_and_honour_page_max(
    api: httpx.AsyncClient, sim: NetIqIgSimulator
) -> None:
    user = await uid(api)
    unsized = (await api.get(f"/api/request/users/{user}/perms", params={"showCt": "true"})).json()
    assert unsized["arraySize"] == 0 and unsized["totalSearch"] == 9
    await api.post("/_config", json={"page_size_max": 4})
    page = (
        await api.get(f"/api/request/users/{user}/perms", params={"indexFrom": 8, "size": 100, "showCt": "true"})
    ).json()
    assert page["arraySize"] == 1 and page["totalSearch"] == 9 and page["size"] == 4
    first = (await api.get(f"/api/request/users/{user}/perms", params={"size": 100})).json()
    assert first["arraySize"] == 4 and "totalSearch" not in first


async def test_business_roles(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    user = await uid(api)
    requested = (await api.get(f"/api/request/users/{user}/broles", params={"size": 10})).json()
    every = (await api.get(f"/api/request/user/{user}/broles")).json()
    assert requested["roles"] == []
    assert [r["name"] for r in every["roles"]] == ["All Employees"]
    await api.post("/_config", json={"version": "3.7"})
    assert_fault(await api.get(f"/api/request/users/{user}/broles", params={"size": 10}), 404, "Sender")


# ---------------------------------------------------------------- submit


async def test_submit_answers_per_item_status_without_ids(api: httpx.AsyncClient) -> None:
    user = await uid(api)
    held = await perms(api, user)
    finance, vpn = perm_named(held, "Finance RW"), perm_named(held, "VPN Users")
    resp = await api.post(
        "/api/request/request",
        json={
            "reason": "leaver-1-1 bye",
            "requestItems": [removal(user, finance["uniquePermId"]), removal(user, vpn["uniquePermId"])],
        },
    )
    assert resp.status_code == 200
    assert 'Id"' not in resp.text.replace("instanceGuid", "")
    assert [s["itemStatus"] for s in resp.json()["requestItemsStatus"]] == ["REQUESTING", "REQUESTING"]

    rows = await my_requests(api)
    assert len(rows) == 2 and rows[0]["resourceRequestId"] == rows[1]["resourceRequestId"] == 3301
    assert sorted(r["resourceRequestItemId"] for r in rows) == [9901, 9902]
    assert all(r["reason"] == "leaver-1-1:1 test" for r in rows)


async def test_submit_refusals(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    user = await uid(api)
    held = await perms(api, user)
    other = await uid(api, "asmith")
    statuses = await submit(
        api,
        removal(user, perm_named(held, "Finance RW")["uniquePermId"], "REMOVE_EVERYTHING"),
        removal("0" * 32, perm_named(held, "Finance RW")["uniquePermId"]),
        removal(other, perm_named(held, "Finance RW")["uniquePermId"]),
        removal(user, perm_named(held, "Salesforce Sales User")["uniquePermId"]),
        removal(user, perm_named(held, "Finance RW")["uniquePermId"]),
        removal(user, perm_named(held, "Finance RW")["uniquePermId"]),
    )
    assert [s["itemStatus"] for s in statuses] == [
        "INVALID_REQUEST_TYPE",
        "ERROR_STARTING_REQUEST",
        "ERROR_STARTING_REQUEST",
        "ERROR_STARTING_REQUEST",
        "REQUESTING",
        "DUPLICATE_REQUEST",
    ]
    assert all(s["errMessage"] for s in statuses[:4])
    assert "not revocable" in statuses[3]["errMessage"]
    assert len(await my_requests(api)) == 1
    assert_fault(await api.post("/api/request/request", json={"reason": "x"}), 400, "Sender")
    assert_fault(await api.post("/api/request/request", content=b"{oops"), 400, "Sender")


async def test_duplicate_only_while_in_flight(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    user = await uid(api)
    item = removal(user, perm_named(await perms(api, user), "Finance RW")["uniquePermId"])
    await api.post("/_config", json={"outcome": "rejected"})
    assert (await submit(api, item))[0]["itemStatus"] == "APPROVING"  # denied at once: not in flight
    await api.post("/_config", json={"outcome": "completed", "approval_delay": 5})
    assert (await submit(api, item))[0]["itemStatus"] == "APPROVING"
    assert (await submit(api, item))[0]["itemStatus"] == "DUPLICATE_REQUEST"
    sim.clock.advance(5 + 1 + 1)  # COMPLETED, not yet verified: still in flight
    assert (await submit(api, item))[0]["itemStatus"] == "DUPLICATE_REQUEST"
    sim.clock.advance(2)  # VERIFIED: the permission is gone
    assert (await submit(api, item))[0]["itemStatus"] == "ERROR_STARTING_REQUEST"


async def test_forced_submit_status(api: httpx.AsyncClient) -> None:
    user = await uid(api)
    await api.post("/_config", json={"submit_item_status": "REQUEST_AUTO_DENIED"})
    statuses = await submit(api, removal(user, perm_named(await perms(api, user), "Finance RW")["uniquePermId"]))
    assert statuses[0]["itemStatus"] == "REQUEST_AUTO_DENIED"
    assert await my_requests(api) == []


async def test_requests_are_listed_for_their_requester_only(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    sim.credentials["svc-other"] = SERVICE_PASSWORD
    user = await uid(api)
    await submit(api, removal(user, perm_named(await perms(api, user), "Finance RW")["uniquePermId"]))
    other = {"Authorization": (await bearer(api, "svc-other"))["Authorization"]}
    mine = await api.post("/api/request/requests", params={"size": 10}, json={}, headers=other)
    everyone = await api.post("/api/request/requests", params={"size": 10, "getAll": "true"}, json={}, headers=other)
    assert mine.json()["requests"] == []
    assert len(everyone.json()["requests"]) == 1
    assert await my_requests(api, getRemoves="false") == []
    assert await my_requests(api, startDate=sim.clock.now_ms() + 60_000) == []


async def test_version_37_hides_business_roles_and_request_ids(api: httpx.AsyncClient) -> None:
    await api.post("/_config", json={"version": "3.7"})
    user = await uid(api)
    statuses = await submit(
        api,
        removal(user, "f" * 32, "REMOVE_BUSINESS_ROLE_MEMBERSHIP"),
        removal(user, perm_named(await perms(api, user), "Finance RW")["uniquePermId"]),
    )
    assert statuses[0]["itemStatus"] == "INVALID_REQUEST_TYPE"
    row = (await my_requests(api))[0]
    assert "resourceRequestId" not in row and row["resourceRequestItemId"] == 9901


# ---------------------------------------------------------------- transitions


async def test_statuses_move_with_the_clock(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    await api.post("/_config", json={"approval_delay": 5, "fulfil_delay": 4, "verify_delay": 10})
    user = await uid(api)
    finance = perm_named(await perms(api, user), "Finance RW")["uniquePermId"]
    assert (await submit(api, removal(user, finance)))[0]["itemStatus"] == "APPROVING"
    item_id = (await my_requests(api))[0]["resourceRequestItemId"]

    seen = []
    for step in (0, 5, 2, 2, 5, 5):
        sim.clock.advance(step)
        body = await info(api, item_id)
        actions = body["changeItemActions"]
        still_listed = any(p["uniquePermId"] == finance for p in await perms(api, user))
        seen.append((body["requestStatus"], actions[0]["status"] if actions else None, still_listed))
    assert seen == [
        ("NO_DECISION", None, True),
        ("APPROVED", "INITIALIZED", True),
        ("APPROVED", "IN_PROGRESS", True),
        ("APPROVED", "COMPLETED", True),
        ("APPROVED", "COMPLETED", True),
        ("APPROVED", "VERIFIED", False),
    ]
    assert body["requestItemReason"] == "leaver-1-1:1 test" and body["requestReason"] == "r"
    assert body["approvalSteps"][0]["stepApproveOrDenyStatus"] == "APPROVED"
    assert (await my_requests(api))[0]["decision"] == "APPROVED"


@pytest.mark.parametrize(
    ("config", "decision", "status", "listed"),
    [
        ({"outcome": "rejected"}, "DENIED", None, True),
        ({"outcome": "cancelled"}, "CLEARED", None, True),
        ({"outcome": "failed"}, "APPROVED", "ERROR", True),
        ({"outcome": "failed", "fail_status": "REFUSED"}, "APPROVED", "REFUSED", True),
        ({"verify_result": "NOT_VERIFIED"}, "APPROVED", "NOT_VERIFIED", True),
    ],
)
async def test_other_endings(
    api: httpx.AsyncClient,
    sim: NetIqIgSimulator,
    config: dict[str, str],
    decision: str,
    status: str | None,
    listed: bool,
) -> None:
    await api.post("/_config", json=config)
    user = await uid(api)
    finance = perm_named(await perms(api, user), "Finance RW")["uniquePermId"]
    await submit(api, removal(user, finance))
    sim.clock.advance(10)
    body = await info(api, (await my_requests(api))[0]["resourceRequestItemId"])
    assert body["requestStatus"] == decision
    assert (body["changeItemActions"][0]["status"] if body["changeItemActions"] else None) == status
    if status in ("ERROR", "REFUSED"):
        assert body["changeItemActions"][0]["comment"]
    assert any(p["uniquePermId"] == finance for p in await perms(api, user)) is listed


async def test_tech_role_removal_removes_its_permissions(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    user = await uid(api)
    role = (await roles(api, user))[0]
    sales_user = perm_named(await perms(api, user), "Salesforce Sales User")["uniquePermId"]
    await submit(api, removal(user, role["uniquePolicyId"], "REMOVE_TECH_ROLE_ASSIGNMENT"))

    rows = await my_requests(api)
    assert sorted((r["requestType"], r["requestItem"]) for r in rows) == sorted(
        [("REMOVE_TECH_ROLE_ASSIGNMENT", role["uniquePolicyId"]), ("REMOVE_PERMISSION_ASSIGNMENT", sales_user)]
    )
    assert len({r["resourceRequestId"] for r in rows}) == 1
    sim.clock.advance(2)
    assert await roles(api, user) != []
    sim.clock.advance(2)
    assert await roles(api, user) == []
    assert all(p["uniquePermId"] != sales_user for p in await perms(api, user))


# ---------------------------------------------------------------- retract


async def test_retract_before_fulfilment_only(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    user = await uid(api)
    held = await perms(api, user)
    await submit(
        api,
        removal(user, perm_named(held, "Finance RW")["uniquePermId"]),
        removal(user, perm_named(held, "VPN Users")["uniquePermId"]),
    )
    first, second = sorted(r["resourceRequestItemId"] for r in await my_requests(api))

    done = await api.put("/api/request/resourceItem/retract", params={"id": first, "retractPerms": "false"})
    assert done.json()["succeeded"] == [first] and done.json()["failed"] == []
    assert (await info(api, first))["requestStatus"] == "RETRACTED"
    twice = await api.put("/api/request/resourceItem/retract", params={"id": first})
    assert twice.json()["failed"] == [first]

    sim.clock.advance(1.5)  # the second one is COMPLETED now
    late = await api.put("/api/request/resourceItem/retract", params={"id": second})
    assert late.json()["succeeded"] == [] and late.json()["failed"] == [second] and late.json()["reason"]
    unknown = await api.put("/api/request/resourceItem/retract", params={"id": 1})
    assert unknown.json()["failed"] == [1]
    sim.clock.advance(10)
    still = [p["displayName"] for p in await perms(api, user)]
    assert "Finance RW" in still and "VPN Users" not in still


# ---------------------------------------------------------------- plumbing


async def test_faults_render_as_ig_faults(api: httpx.AsyncClient) -> None:
    await api.post(
        "/_faults",
        json={
            "rules": [
                {"path": "/api/whoami", "status": 500, "count": 1},
                {"path": "/api/whoami", "status": 429, "retry_after": 2, "count": 1},
            ]
        },
    )
    assert_fault(await api.get("/api/whoami"), 500, "Receiver")
    throttled = await api.get("/api/whoami")
    assert_fault(throttled, 429, "Sender")
    assert throttled.headers["retry-after"] == "2"
    assert_fault(await api.get("/api/nothing-here"), 404, "Sender")
    assert_fault(await api.get("/api/request/requestItem/424242/info"), 404, "Sender", "NotFound")
    assert_fault(await api.get("/api/request/users/nobody/perms", params={"size": 5}), 404, "Sender")


async def test_config_and_reset(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    config = (await api.get("/_config")).json()
    assert {
        k: config[k]
        for k in (
            "approval_delay",
            "fulfil_delay",
            "verify_delay",
            "outcome",
            "token_lifetime",
            "revoke_tokens",
            "page_size_max",
        )
    } == {
        "approval_delay": 0.0,
        "fulfil_delay": 1.0,
        "verify_delay": 2.0,
        "outcome": "completed",
        "token_lifetime": 119,
        "revoke_tokens": False,
        "page_size_max": 1000,
    }
    assert_fault(await api.post("/_config", json={"outcome": "maybe"}), 400, "Sender")
    assert_fault(await api.post("/_config", json={"nonsense": 1}), 400, "Sender")

    user = await uid(api)
    before = sorted(p["uniquePermId"] for p in await perms(api, user))
    await submit(api, removal(user, before[0]))
    sim.clock.advance(5)
    assert len(await perms(api, user)) == len(before) - 1
    await api.post("/_reset")
    api.headers.update(await bearer(api))
    assert sorted(p["uniquePermId"] for p in await perms(api, user)) == before
    assert await my_requests(api) == []


async def test_state_helper_lists_what_a_user_holds(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    state = (await api.get("/_state/users/jdoe/access")).json()
    assert len(state) == 11  # 9 permissions, 1 technical role, 1 business role by criteria
    assert {s["kind"] for s in state} == {"perm", "role", "brole"}
    assert not [e for e in sim.log if e.path.startswith("/_state")]


# ---------------------------------------------------------------- probes


async def test_submissions_are_what_the_submit_handler_accepted(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    user = await uid(api)
    held = await perms(api, user)
    finance, vpn, mailbox = (perm_named(held, n) for n in ("Finance RW", "VPN Users", "Mailbox jdoe"))
    rule = {"method": "POST", "path": "/api/request/request", "count": 1}

    await api.post("/_faults", json={"rules": [{**rule, "status": 503, "when": "before"}]})
    lost = await api.post("/api/request/request", json={"requestItems": [removal(user, finance["uniquePermId"])]})
    assert lost.status_code == 503
    refused = await api.post("/api/request/request", json={"requestItems": "not a list"})
    assert refused.status_code == 400
    assert sim.submissions() == []

    await api.post("/_faults", json={"rules": [{**rule, "status": 500, "when": "after"}]})
    marker = {"reason": "leaver-7-2:41 terminated"}
    dynamic = removal(user, mailbox["uniquePermId"], instanceGuid=mailbox["instanceGuid"], **marker)
    answer_lost = await api.post("/api/request/request", json={"requestItems": [dynamic]})
    assert answer_lost.status_code == 500
    await submit(api, removal(user, vpn["uniquePermId"]))

    first, second = sim.submissions()
    assert (first.user, first.item) == (user, f"{mailbox['uniquePermId']}:{mailbox['instanceGuid']}")
    assert (first.key, first.plan_item_id) == ("leaver-7-2", 41)
    assert (second.item, second.key, second.plan_item_id) == (vpn["uniquePermId"], "leaver-1-1", 1)
    assert first.at <= second.at and abs(first.at - sim.log[-1].at) < 60
    assert [e.handled_status for e in sim.log if e.path == "/api/request/request"] == [None, 400, 200, 200]
    probed = (await api.get("/_probe/submissions")).json()
    assert [s["item"] for s in probed] == [first.item, second.item]


async def test_withdrawn_and_user_id_probes(api: httpx.AsyncClient, sim: NetIqIgSimulator) -> None:
    user = await uid(api)
    assert (await api.get("/_probe/users/jdoe")).json() == {"id": user} and sim.user_id("jdoe") == user
    assert (await api.get("/_probe/users/nobody")).status_code == 404
    finance = perm_named(await perms(api, user), "Finance RW")["uniquePermId"]
    await submit(api, removal(user, finance))
    (item,) = [r["resourceRequestItemId"] for r in await my_requests(api)]
    await api.put("/api/request/resourceItem/retract", params={"id": item})
    assert (await api.get("/_probe/withdrawn")).json() == [{"user": user, "item": finance}]


async def test_config_refusals_name_the_key(api: httpx.AsyncClient) -> None:
    unknown = await api.post("/_config", json={"nonsense": 1})
    assert "nonsense" in unknown.json()["Fault"]["Reason"]["Text"]
    bad = await api.post("/_config", json={"fail_status": "MAYBE"})
    assert "fail_status" in bad.json()["Fault"]["Reason"]["Text"]
    assert (await api.get("/_config")).json()["fail_status"] == "ERROR"
