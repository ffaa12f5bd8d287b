"""The PingOne AIC simulator as a test oracle, on its own: AM's token endpoints and their refusals,
bearer and scope checks, IDM's query filters and paging, the IGA grant shapes and ID formats, the
remove requests with their validation, duplicates and drafts, the decision over the simulator
clock, the request actions and search, and the shared control routes (faults, log, probes)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.simulator import simulator_spec
from app.simulator.pingone_aic import PingOneAicSimulator, create_app
from app.simulator.pingone_aic.filters import FilterError, crest_filter, target_filter
from app.simulator.pingone_aic.keys import CLIENT_ID, CLIENT_SECRET, DEMO_PRIVATE_JWK, SERVICE_ACCOUNT_ID

BASE = "http://aic.test"
AUD = "http://aic.test:80/am/oauth2/access_token"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
KEY = RSAKey.import_key(DEMO_PRIVATE_JWK)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def assertion(**claims: Any) -> str:
    base = {"iss": SERVICE_ACCOUNT_ID, "sub": SERVICE_ACCOUNT_ID, "aud": AUD, "exp": int(time.time()) + 180}
    return jwt.encode({"alg": "RS256"}, {**base, "jti": str(uuid.uuid4()), **claims}, KEY)


def token_form(**changes: Any) -> dict[str, str]:
    form = {"client_id": "service-account", "grant_type": JWT_BEARER, "assertion": assertion()}
    form["scope"] = "fr:am:* fr:idm:* fr:iga:*"
    return {k: v for k, v in {**form, **changes}.items() if v is not None}


class Aic:
    """A client of the simulator in-process, signed in as the demo service account."""

    def __init__(self, http: httpx.AsyncClient, sim: PingOneAicSimulator) -> None:
        self.http, self.sim = http, sim
        self.bearer = ""

    async def sign_in(self) -> None:
        resp = await self.http.post("/am/oauth2/access_token", data=token_form())
        assert resp.status_code == 200, resp.text
        self.bearer = resp.json()["access_token"]

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, path, headers={"Authorization": f"Bearer {self.bearer}"}, **kw)

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self.call(method, path, **kw)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def advance(self, seconds: float) -> None:
        self.sim.clock.advance(seconds)

    async def user(self, username: str = "jdoe") -> dict[str, Any]:
        found = await self.ok(
            "GET", "/openidm/managed/alpha_user", params={"_queryFilter": f'userName eq "{username}"'}
        )
        return dict(found["result"][0])

    async def grants(self, user_id: str, kind: str, **params: Any) -> dict[str, Any]:
        query = {"grantType": kind, "_pageSize": 100, "_pagedResultsOffset": 0, **params}
        return dict(await self.ok("GET", f"/iga/governance/user/{user_id}/grants", params=query))

    async def entitlement(self, user_id: str, name: str) -> dict[str, Any]:
        page = await self.grants(user_id, "entitlement", _fields="assignment.id,descriptor,relationship,keys")
        return next(g for g in page["result"] if g["descriptor"]["idx"]["/entitlement"]["displayName"] == name)

    async def publish(self, kind: str, common: dict[str, Any], **params: Any) -> httpx.Response:
        return await self.call(
            "POST", f"/iga/governance/requests/{kind}", params={"_action": "publish", **params}, json={"common": common}
        )

    async def remove(self, user_id: str, assignment: str, key: str = "leaver-1-1", **more: Any) -> dict[str, Any]:
        common = {"userId": user_id, "entitlementId": assignment, "externalRequestId": key, **more}
        resp = await self.publish("entitlementRemove", {"justification": f"[{key}] test", **common})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


@pytest.fixture()
async def aic() -> AsyncIterator[Aic]:
    app = create_app()
    sim: PingOneAicSimulator = app.state.sim
    sim.configure({"approval_delay": 0, "fulfil_delay": 5, "verify_delay": 2})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        client = Aic(http, sim)
        await client.sign_in()
        yield client


# ---------------------------------------------------------------- sign-in


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (lambda: token_form(assertion=assertion(aud="http://aic.test/am/oauth2/access_token")), 400, "invalid_grant"),
        (lambda: token_form(assertion=assertion(exp=int(time.time()) - 1)), 400, "invalid_grant"),
        (lambda: token_form(assertion=assertion(exp=int(time.time()) + 3600)), 400, "invalid_grant"),
        (lambda: token_form(assertion=assertion(iss="someone-else")), 400, "invalid_grant"),
        (
            lambda: token_form(assertion=jwt.encode({"alg": "RS256"}, {"iss": "x"}, RSAKey.generate_key(2048))),
            400,
            "invalid_grant",
        ),
        (lambda: token_form(client_id="leaver"), 401, "invalid_client"),
        (lambda: token_form(grant_type="client_credentials"), 400, "unsupported_grant_type"),
        (lambda: token_form(scope="fr:am:* fr:idm:* fr:iga:* openid"), 400, "invalid_scope"),
    ],
    ids=["audience-without-port", "expired", "too-long", "wrong-issuer", "wrong-key", "client", "grant", "scope"],
)
async def test_bad_assertions_are_refused_as_am_does(
    aic: Aic, form: Callable[[], dict[str, str]], status: int, error: str
) -> None:
    """Each form is built when its test runs: an assertion made at collection could expire first."""
    resp = await aic.http.post("/am/oauth2/access_token", data=form())
    assert (resp.status_code, resp.json()["error"]) == (status, error)
    assert resp.json()["error_description"]


async def test_an_assertion_is_good_for_one_token_only(aic: Aic) -> None:
    form = token_form()
    first = await aic.http.post("/am/oauth2/access_token", data=form)
    again = await aic.http.post("/am/oauth2/access_token", data=form)
    assert first.status_code == 200 and set(first.json()) == {"access_token", "scope", "token_type", "expires_in"}
    assert (first.json()["expires_in"], first.json()["token_type"]) == (899, "Bearer")
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


async def test_a_missing_scope_of_the_service_account_is_invalid_scope(aic: Aic) -> None:
    aic.sim.configure({"service_account_scopes": ["fr:am:*", "fr:idm:*"]})
    resp = await aic.http.post("/am/oauth2/access_token", data=token_form())
    assert resp.json() == {
        "error": "invalid_scope",
        "error_description": "Unsupported scope for service account: fr:iga:*",
    }


async def test_client_credentials_at_the_realm(aic: Aic) -> None:
    path = "/am/oauth2/realms/root/realms/alpha/access_token"
    form = {"grant_type": "client_credentials", "scope": "fr:idm:* fr:iga:*"}
    good = await aic.http.post(path, data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    bad = await aic.http.post(path, data=form, auth=(CLIENT_ID, "wrong"))
    assert good.status_code == 200 and good.json()["scope"] == "fr:idm:* fr:iga:*"
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_client")


async def test_bearers_expire_on_the_clock_and_need_their_scope(aic: Aic) -> None:
    assert (await aic.call("GET", "/openidm/managed/alpha_user", params={"_queryFilter": "true"})).status_code == 200
    aic.advance(900)
    expired = await aic.call("GET", "/openidm/managed/alpha_user", params={"_queryFilter": "true"})
    iga = await aic.call("POST", "/iga/governance/requests/search", params={"_action": "search"})
    assert expired.status_code == 401 and expired.json() == {
        "code": 401,
        "reason": "Unauthorized",
        "message": "Access Denied",
    }
    assert iga.status_code == 401 and iga.json() == {"message": "Access Denied"}
    resp = await aic.http.post("/am/oauth2/access_token", data=token_form(scope="fr:idm:*"))
    aic.bearer = resp.json()["access_token"]
    assert (await aic.call("POST", "/iga/governance/requests/search", params={"_action": "search"})).status_code == 403


# ---------------------------------------------------------------- IDM


async def test_managed_user_queries_filter_project_and_page(aic: Aic) -> None:
    q = {"_queryFilter": 'mail eq "twins@example.com" or (userName sw "user00" and !(userName eq "user001"))'}
    found = await aic.ok("GET", "/openidm/managed/alpha_user", params={**q, "_fields": "userName", "_pageSize": 5})
    assert [u["userName"] for u in found["result"]] == ["twin1", "twin2", "user000", "user002", "user003"]
    assert set(found["result"][0]) == {"_id", "_rev", "userName"}
    assert found["totalPagedResults"] == -1 and found["pagedResultsCookie"]
    rest = await aic.ok(
        "GET",
        "/openidm/managed/alpha_user",
        params={
            **q,
            "_pageSize": 5,
            "_pagedResultsCookie": found["pagedResultsCookie"],
            "_totalPagedResultsPolicy": "EXACT",
        },
    )
    assert [u["userName"] for u in rest["result"]] == ["user004", "user005", "user006", "user007", "user008"]
    assert rest["totalPagedResults"] == 11

    jdoe = await aic.user()
    assert UUID.match(jdoe["_id"]) and jdoe["frIndexedString1"] == "E1001"
    assert jdoe["custom_legalHold"] == "false" and jdoe["accountStatus"] == "active"
    assert (await aic.ok("GET", f"/openidm/managed/alpha_user/{jdoe['_id']}"))["userName"] == "jdoe"
    gone = await aic.ok("GET", "/openidm/managed/alpha_user", params={"_queryFilter": 'userName eq "gone"'})
    assert gone["result"] == []
    empty = await aic.ok("GET", "/openidm/managed/bravo_user", params={"_queryFilter": "true"})
    assert empty["result"] == []


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/openidm/managed/alpha_user", {"_queryFilter": 'userName eq "jdoe'}, 400),
        ("/openidm/managed/alpha_user", {}, 400),
        ("/openidm/managed/gamma_user", {"_queryFilter": "true"}, 404),
        ("/openidm/managed/alpha_user/nobody", {}, 404),
    ],
)
async def test_idm_errors_are_crest_shaped(aic: Aic, path: str, params: dict[str, str], status: int) -> None:
    resp = await aic.call("GET", path, params=params)
    assert resp.status_code == status and set(resp.json()) == {"code", "reason", "message"}


def test_the_filter_languages() -> None:
    doc = {"userName": "JDoe", "n": 3, "a": {"b": ["x", "y"]}}
    assert crest_filter('userName eq "jdoe" and n ge 3 and /a/b eq "y" and a pr')(doc)
    assert not crest_filter('userName co "x" or n lt 3 or zz pr')(doc)
    assert crest_filter('userName eq "J\\"Doe" or true')(doc)
    for bad in ('userName eq "x', "userName zz 1", "(true", "and true"):
        with pytest.raises(FilterError):
            crest_filter(bad)
    tree = {
        "operator": "AND",
        "operand": [{"operator": "EQUALS", "operand": {"targetName": "a.b", "targetValue": "x"}}],
    }
    assert target_filter(tree)(doc) and not target_filter({"operator": "NOT", "operand": [tree]})(doc)
    with pytest.raises(FilterError):
        target_filter({"operator": "LIKE", "operand": {}})


# ---------------------------------------------------------------- IGA grants and accounts


async def test_grants_have_the_contract_shapes_and_id_formats(aic: Aic) -> None:
    jdoe = await aic.user()
    ents = await aic.grants(jdoe["_id"], "entitlement")
    with_fields = await aic.grants(
        jdoe["_id"],
        "entitlement",
        _fields="application,catalog,descriptor,entitlement,glossary,item,keys,relationship,assignment.id,user",
    )
    accounts, roles = await aic.grants(jdoe["_id"], "account"), await aic.grants(jdoe["_id"], "role")

    assert "assignment" not in ents["result"][0]  # returned only when `_fields` asks for it
    grant = with_fields["result"][0]
    assert set(grant["assignment"]) == {"id"}
    assignment, keys = grant["assignment"]["id"], grant["keys"]
    assert re.fullmatch(r"system_[A-Za-z0-9]+_Group_[0-9a-f-]{36}", assignment)
    assert keys["entitlementId"] == assignment.replace("_", "/", 3).replace("system/", "system/", 1)
    assert re.fullmatch(r"system/[A-Za-z0-9]+/User/[0-9a-f-]{36}", keys["accountId"])
    assert re.fullmatch(r"[0-9a-f]{128}", grant["catalog"]["id"]) and UUID.match(keys["applicationId"])
    assert {g["grantType"] for e in with_fields["result"] for g in e["relationship"]["properties"]["grantTypes"]} == {
        "recon",
        "request",
        "role",
    }
    assert with_fields["totalCount"] == with_fields["resultCount"] == 8 and with_fields["searchAfterKey"]
    assert accounts["result"][0]["item"]["type"] == "accountGrant" and "__NAME__" in accounts["result"][0]["account"]
    assert sorted(r["relationship"]["conditional"] for r in roles["result"]) == [False, True]
    assert all(UUID.match(r["keys"]["roleId"]) for r in roles["result"])


async def test_grant_paging_and_its_limits(aic: Aic) -> None:
    jdoe = await aic.user()
    page = await aic.grants(jdoe["_id"], "entitlement", _pageSize=3, _pagedResultsOffset=6)
    assert (page["resultCount"], page["totalCount"]) == (2, 8)
    aic.sim.configure({"zero_total_count": True, "page_size_max": 3})
    assert (await aic.grants(jdoe["_id"], "entitlement", _pageSize=3))["totalCount"] == 0
    too_big = await aic.call("GET", f"/iga/governance/user/{jdoe['_id']}/grants", params={"_pageSize": 4})
    bad_type = await aic.call("GET", f"/iga/governance/user/{jdoe['_id']}/grants", params={"grantType": "group"})
    nobody = await aic.call("GET", "/iga/governance/user/nobody/grants", params={"grantType": "role"})
    assert [r.status_code for r in (too_big, bad_type, nobody)] == [400, 400, 404]
    assert all(set(r.json()) == {"message"} for r in (too_big, bad_type, nobody))


async def test_the_account_search_finds_a_dn(aic: Aic) -> None:
    flt = {
        "operator": "EQUALS",
        "operand": {"targetName": "account.__NAME__", "targetValue": "cn=jdoe,ou=users,o=example"},
    }
    found = await aic.ok(
        "POST", "/iga/governance/account", params={"_action": "search", "_pageSize": 2}, json={"targetFilter": flt}
    )
    assert [a["keys"]["userId"] for a in found["result"]] == [(await aic.user())["_id"]]


# ---------------------------------------------------------------- requests


async def test_publish_answers_the_full_request_and_records_the_submission(aic: Aic) -> None:
    jdoe = await aic.user()
    ent = await aic.entitlement(jdoe["_id"], "Finance RW")
    doc = await aic.remove(jdoe["_id"], ent["assignment"]["id"], context={"type": "admin"}, priority="low")

    assert UUID.match(doc["id"]) and doc["requestType"] == "entitlementRemove"
    assert (
        doc["request"]["common"]["externalRequestId"] == "leaver-1-1" and doc["request"]["common"]["isDraft"] is False
    )
    assert doc["workflow"]["id"] == "BasicEntitlementRemove"
    decision = doc["decision"]
    assert (decision["status"], decision["decision"], decision["outcome"]) == ("in-progress", "approved", None)
    assert decision["comments"][0]["comment"] == "Request auto-approved due to request context: admin"
    assert [(s.user, s.item, s.key) for s in aic.sim.submissions()] == [
        (jdoe["_id"], ent["assignment"]["id"], "leaver-1-1")
    ]


@pytest.mark.parametrize(
    ("kind", "common", "status", "message"),
    [
        ("entitlementGrantX", {}, 404, "Request Type Id doesn't exist"),
        ("entitlementRemove", {"userId": "{user}"}, 400, "common.entitlementId is required"),
        ("entitlementRemove", {"userId": "{user}", "entitlementId": "system_X_Group_1"}, 400, "not found"),
        ("entitlementRemove", {"userId": "nobody", "entitlementId": "{ent}"}, 400, "user nobody not found"),
        (
            "entitlementRemove",
            {"userId": "{user}", "entitlementId": "{ent}", "accountId": "a"},
            400,
            "accountId is not defined",
        ),
        ("entitlementRemove", {"userId": "{user}", "entitlementId": "{ent}", "priority": "urgent"}, 400, "priority"),
        ("roleRemove", {"userId": "{user}", "entitlementId": "{ent}"}, 400, "entitlementId is not defined"),
    ],
)
async def test_bad_requests_are_refused_with_igas_message(
    aic: Aic, kind: str, common: dict[str, str], status: int, message: str
) -> None:
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"]
    filled = {k: v.replace("{user}", jdoe["_id"]).replace("{ent}", ent) for k, v in common.items()}
    resp = await aic.publish(kind, filled)
    assert resp.status_code == status and message in resp.json()["message"]
    assert aic.sim.submissions() == []


async def test_switches_for_account_id_and_required_justification(aic: Aic) -> None:
    jdoe = await aic.user()
    ent = await aic.entitlement(jdoe["_id"], "Finance RW")
    aic.sim.configure({"accept_account_id": True, "require_justification": True})
    common = {"userId": jdoe["_id"], "entitlementId": ent["assignment"]["id"], "accountId": ent["keys"]["accountId"]}
    refused = await aic.publish("entitlementRemove", common)
    assert (refused.status_code, refused.json()) == (400, {"message": "Justification is required"})
    assert (await aic.publish("entitlementRemove", {**common, "justification": "leaver"})).status_code == 200


async def test_a_second_open_request_is_a_duplicate_by_default_as_a_200_with_errors(aic: Aic) -> None:
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "VPN Users"))["assignment"]["id"]  # a draft exists for it
    first = await aic.remove(jdoe["_id"], ent)
    again = await aic.publish("entitlementRemove", {"userId": jdoe["_id"], "entitlementId": ent})
    assert again.status_code == 200 and "id" not in again.json()
    error = again.json()["errors"][0]
    assert (error["error"], error["message"], error["requestId"]) == (
        "DUPLICATE",
        "Duplicate request already exists.",
        first["id"],
    )
    assert re.fullmatch(r"[0-9a-f]{128}", error["catalogId"])
    aic.sim.configure({"duplicate_as": "http400"})
    as_400 = await aic.publish("entitlementRemove", {"userId": jdoe["_id"], "entitlementId": ent})
    assert (as_400.status_code, as_400.json()) == (
        400,
        {"message": "Duplicate request already exists.", "requestId": first["id"]},
    )
    aic.advance(6)  # complete: no longer open, a new request is fine
    assert (await aic.publish("entitlementRemove", {"userId": jdoe["_id"], "entitlementId": ent})).status_code == 200
    assert len(aic.sim.submissions()) == 2


async def decision(aic: Aic, request_id: str) -> tuple[str, str | None, str | None]:
    d = (await aic.ok("GET", f"/iga/governance/requests/{request_id}"))["decision"]
    return d["status"], d["decision"], d["outcome"]


async def test_a_removal_completes_on_the_clock_and_the_grant_goes_after_verify_delay(aic: Aic) -> None:
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"]
    doc = await aic.remove(jdoe["_id"], ent, context={"type": "admin"})
    aic.advance(4)
    assert await decision(aic, doc["id"]) == ("in-progress", "approved", None)
    aic.advance(1.5)
    assert await decision(aic, doc["id"]) == ("complete", "approved", "provisioned")
    held = {
        g["assignment"]["id"] for g in (await aic.grants(jdoe["_id"], "entitlement", _fields="assignment.id"))["result"]
    }
    assert ent in held  # still listed during verify_delay
    aic.advance(2)
    held = {
        g["assignment"]["id"] for g in (await aic.grants(jdoe["_id"], "entitlement", _fields="assignment.id"))["result"]
    }
    assert ent not in held


@pytest.mark.parametrize(
    ("outcome", "after", "expected"),
    [
        ("rejected", 0.1, ("complete", "rejected", "denied")),
        ("failed", 6, ("complete", "approved", "not provisioned")),
        ("cancelled", 0.1, ("cancelled", None, "cancelled")),
        ("stuck", 600, ("in-progress", "approved", None)),
        ("suspended", 600, ("suspended", "approved", None)),
    ],
)
async def test_scenarios_end_as_configured(aic: Aic, outcome: str, after: float, expected: tuple[str, ...]) -> None:
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"]
    aic.sim.configure({"item_outcomes": {ent: outcome}})
    doc = await aic.remove(jdoe["_id"], ent, context={"type": "admin"})
    aic.advance(after)
    assert await decision(aic, doc["id"]) == expected
    if outcome == "failed":
        full = (await aic.ok("GET", f"/iga/governance/requests/{doc['id']}"))["decision"]
        assert full["failure"] is True and full["comments"][-1]["comment"].startswith("Deprovisioning failed")


@pytest.mark.parametrize("admin", [True, False])
async def test_a_request_is_decided_after_the_approval_delay(aic: Aic, admin: bool) -> None:
    """`approval_delay` is the time to the decision; `context.type: admin` only says who gives it."""
    aic.sim.configure({"approval_delay": 60})
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"]
    doc = await aic.remove(jdoe["_id"], ent, "leaver-1-1", **({"context": {"type": "admin"}} if admin else {}))
    aic.advance(59)
    assert await decision(aic, doc["id"]) == ("in-progress", None, None)
    aic.advance(7)
    assert await decision(aic, doc["id"]) == ("complete", "approved", "provisioned")
    comments = (await aic.ok("GET", f"/iga/governance/requests/{doc['id']}"))["decision"]["comments"]
    auto = [c for c in comments if c["comment"] == "Request auto-approved due to request context: admin"]
    assert len(auto) == (1 if admin else 0)


async def test_an_end_date_suspends_the_removal_until_then(aic: Aic) -> None:
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"]
    end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(aic.sim.clock.now() + 100))
    doc = await aic.remove(jdoe["_id"], ent, context={"type": "admin"}, endDate=end)
    aic.advance(50)
    assert (await decision(aic, doc["id"]))[0] == "suspended"
    aic.advance(60)
    assert await decision(aic, doc["id"]) == ("complete", "approved", "provisioned")


async def test_a_role_takes_its_access_and_role_only_access_survives_an_item_removal(aic: Aic) -> None:
    aic.sim.configure({"verify_delay": 0})
    jdoe = await aic.user()
    roles = {r["role"]["name"]: r for r in (await aic.grants(jdoe["_id"], "role"))["result"]}
    via_role = (await aic.entitlement(jdoe["_id"], "Salesforce Sales User"))["assignment"]["id"]
    item = await aic.remove(jdoe["_id"], via_role, key="leaver-1-1", context={"type": "admin"})
    birthright = await aic.publish(
        "roleRemove",
        {"userId": jdoe["_id"], "roleId": roles["All Employees"]["keys"]["roleId"], "context": {"type": "admin"}},
    )
    aic.advance(6)
    assert await decision(aic, item["id"]) == ("complete", "approved", "provisioned")
    assert await decision(aic, birthright.json()["id"]) == ("complete", "approved", "provisioned")
    names = {
        g["descriptor"]["idx"]["/entitlement"]["displayName"]
        for g in (await aic.grants(jdoe["_id"], "entitlement"))["result"]
    }
    assert {"Salesforce Sales User", "All Staff"} <= names  # held through roles: they stay
    role = await aic.publish(
        "roleRemove",
        {"userId": jdoe["_id"], "roleId": roles["Sales Global"]["keys"]["roleId"], "context": {"type": "admin"}},
    )
    aic.advance(6)
    assert await decision(aic, role.json()["id"]) == ("complete", "approved", "provisioned")
    names = {
        g["descriptor"]["idx"]["/entitlement"]["displayName"]
        for g in (await aic.grants(jdoe["_id"], "entitlement"))["result"]
    }
    assert "Salesforce Sales User" not in names and "All Staff" in names
    assert "Sales Global" not in {r["role"]["name"] for r in (await aic.grants(jdoe["_id"], "role"))["result"]}


async def test_cancel_withdraws_an_open_request_and_refuses_a_finished_one(aic: Aic) -> None:
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"]
    doc = await aic.remove(jdoe["_id"], ent, context={"type": "admin"})
    cancelled = await aic.ok(
        "POST", f"/iga/governance/requests/{doc['id']}", params={"_action": "cancel"}, json={"comment": "rehire"}
    )
    assert (
        cancelled["decision"]["status"] == "cancelled" and cancelled["decision"]["comments"][-1]["comment"] == "rehire"
    )
    again = await aic.call("POST", f"/iga/governance/requests/{doc['id']}", params={"_action": "cancel"}, json={})
    unknown = await aic.call("POST", f"/iga/governance/requests/{uuid.uuid4()}", params={"_action": "cancel"}, json={})
    bad = await aic.call("POST", f"/iga/governance/requests/{doc['id']}", params={"_action": "explode"}, json={})
    assert [r.status_code for r in (again, unknown, bad)] == [400, 404, 400]
    assert [(w.user, w.item) for w in aic.sim.withdrawn()] == [(jdoe["_id"], ent)]
    assert (await aic.call("GET", f"/iga/governance/requests/{uuid.uuid4()}")).status_code == 404


async def test_the_request_search_filters_by_pair_and_lists_drafts(aic: Aic) -> None:
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "VPN Users"))["assignment"]["id"]
    mine = await aic.remove(jdoe["_id"], ent, key="leaver-9-1")

    def search(*terms: tuple[str, str]) -> dict[str, Any]:
        operand = [{"operator": "EQUALS", "operand": {"targetName": n, "targetValue": v}} for n, v in terms]
        return {"targetFilter": {"operator": "AND", "operand": operand}}

    pair = search(("request.common.userId", jdoe["_id"]), ("request.common.entitlementId", ent))
    found = await aic.ok(
        "POST", "/iga/governance/requests/search", params={"_action": "search", "_pageSize": 10}, json=pair
    )
    assert sorted((h["id"] == mine["id"], h["request"]["common"]["isDraft"]) for h in found["result"]) == [
        (False, True),
        (True, False),
    ]
    by_key = search(("request.common.externalRequestId", "leaver-0-0"))
    assert (await aic.ok("POST", "/iga/governance/requests/search", params={"_action": "search"}, json=by_key))[
        "result"
    ] == []
    aic.sim.configure({"external_id_searchable": False})  # the term is ignored: every request matches
    ignored = await aic.ok("POST", "/iga/governance/requests/search", params={"_action": "search"}, json=by_key)
    assert len(ignored["result"]) == 3
    no_action = await aic.call("POST", "/iga/governance/requests/search", json=pair)
    assert no_action.status_code == 400


# ---------------------------------------------------------------- plumbing and spec


async def test_faults_log_and_transaction_ids(aic: Aic) -> None:
    method, path = PingOneAicSimulator.endpoints["submit"]
    aic.sim.faults.rules.clear()
    faulted = await aic.http.post(
        "/_faults", json={"rules": [{"method": method, "path": path, "status": 429, "retry_after": 2, "count": 1}]}
    )
    assert faulted.status_code == 200
    jdoe = await aic.user()
    ent = (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"]
    throttled = await aic.publish("entitlementRemove", {"userId": jdoe["_id"], "entitlementId": ent})
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2"
    assert throttled.headers["x-forgerock-transactionid"] and "message" in throttled.json()
    assert (await aic.publish("entitlementRemove", {"userId": jdoe["_id"], "entitlementId": ent})).status_code == 200
    log = (await aic.http.get("/_log", params={"path": "/am/*"})).json()
    assert log and all(e["body"]["assertion"] == "***" for e in log)
    assert (await aic.http.get("/_probe/users/jdoe")).json() == {"id": jdoe["_id"]}


async def test_reset_and_revoke_tokens(aic: Aic) -> None:
    jdoe = await aic.user()
    await aic.remove(jdoe["_id"], (await aic.entitlement(jdoe["_id"], "Finance RW"))["assignment"]["id"])
    await aic.http.post("/_config", json={"revoke_tokens": True})
    assert (await aic.call("GET", "/openidm/managed/alpha_user", params={"_queryFilter": "true"})).status_code == 401
    bad = await aic.http.post("/_config", json={"outcome": "exploded"})
    assert bad.status_code == 400 and "outcome" in bad.json()["message"]
    await aic.http.post("/_reset")
    await aic.sign_in()
    assert aic.sim.submissions() == [] and (await aic.user())["_id"] == jdoe["_id"]


def test_the_spec_and_its_demo_target() -> None:
    spec = simulator_spec("pingone-aic")
    target = spec.demo_target("http://127.0.0.1:9/sim/pingone-aic/", "aic")
    assert (target.name, target.system) == ("aic", "pingone-aic")
    assert target.token_url == "http://127.0.0.1:9/sim/pingone-aic/am/oauth2/access_token"
    assert target.options["service_account_id"] == SERVICE_ACCOUNT_ID
    assert spec.withdraws and spec.small_pages == {"page_size": 3, "lookup_page_size": 3}
    sim = spec.create_app().state.sim
    assert sim.user_id("jdoe") and sim.submissions() == [] and sim.withdrawn() == []
