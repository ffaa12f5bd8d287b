"""The IDHub simulator on its own: wire shapes and ID formats of the seed's samples, sign-in and
tenant checks, carts and the requests their submit makes, the workflow over the simulator clock,
approval tasks, paging, errors, faults, duplicates, and each switch of a contract assumption."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.simulator.demo_users import DemoAccess, DemoPerson
from app.simulator.idhub import SERVICE_USER, SPEC, IdHubSimulator, create_app
from app.simulator.idhub.api import CLIENT_ID, CLIENT_SECRET
from tests.servers import serve_in_thread

TOKEN = "/auth/realms/demo/protocol/openid-connect/token"
HEX24, HEX32, HEX5 = re.compile(r"^[0-9a-f]{24}$"), re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{5}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ISO_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
REQUESTER = {"login": "svc-leaver", "employeeNumber": "SVC0001", "displayName": "Leaver Service"}


class Hub:
    """A simulator served on loopback, signed in, with helpers for its API."""

    def __init__(self, http: httpx.Client, sim: IdHubSimulator) -> None:
        self.http = http
        self.sim = sim
        self.headers = {"Authorization": f"Bearer {self.token()}", "tenant": "demo"}

    def token(self, **form: str) -> str:
        data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
        resp = self.http.post(TOKEN, data=data)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def call(self, method: str, path: str, **kw: Any) -> Any:
        return self.http.request(method, path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def config(self, **changes: Any) -> dict[str, Any]:
        resp = self.http.post("/_config", json=changes)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def advance(self, seconds: float) -> None:
        self.http.post("/_clock", json={"advance": seconds}).raise_for_status()

    def user(self, login: str) -> dict[str, Any]:
        docs: list[dict[str, Any]] = self.call(
            "GET", "/api/v1/request/search", params={"collection": "Users", "keyword": login}
        ).json()
        [doc] = [d for d in docs if d["login"] == login]
        return doc

    def accounts(self, login: str) -> list[dict[str, Any]]:
        params = {"userid": self.user(login)["_id"], "status": "Provisioned"}
        found: list[dict[str, Any]] = self.call("GET", "/api/v1/user/account", params=params).json()
        return found

    def entities(self, login: str) -> dict[str, tuple[str, str]]:
        """name -> (entityId, entityType) of what the user holds."""
        doc = self.user(login)["accessList"]
        held = {r["name"]: (r["_id"], "Role") for r in doc["roles"]}
        for app in doc["applications"]:
            held[app["name"]] = (app["_id"], "TargetSystem")
            held.update({e["name"]: (e["_id"], "Entitlement") for e in app["entitlements"]})
        return held

    def cart(self, login: str, names: list[str], name: str = "leaver-1-1", kind: str = "revoke") -> dict[str, Any]:
        doc, held = self.user(login), self.entities(login)
        who = {"login": login, "employeeNumber": doc["employeeNumber"], "displayName": doc["displayName"]}
        items = [
            {"beneficiaries": [{**who, "type": kind}], "entityId": held[n][0], "entityType": held[n][1]} for n in names
        ]
        return {"requester": REQUESTER, "cartItems": items, "owner": f"User/{SERVICE_USER['user_id']}", "name": name}

    def submit(self, cart: dict[str, Any], **extra: Any) -> Any:
        created = self.call("POST", "/api/v1/request/cart", json=cart)
        assert created.status_code == 201, created.text
        body = {**cart, "justification": f"{cart['name']}: leaver", "archive": False, "collection": "UserCart", **extra}
        return self.call("POST", "/api/v1/request/cart/submit", json=body)

    def listing(self, **params: Any) -> list[dict[str, Any]]:
        resp = self.call("GET", "/api/v1/request", params={"filter": "revoke", "pagesize": "100", **params})
        assert resp.status_code == 200, resp.text
        rows: list[dict[str, Any]] = resp.json()
        return rows

    def request(self, oid: str) -> dict[str, Any]:
        rows: list[dict[str, Any]] = self.call("GET", f"/api/v1/request/{oid}").json()
        [row] = rows
        return row


@pytest.fixture()
def hub() -> Iterator[Hub]:
    app = create_app()
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        h = Hub(http, app.state.sim)
        h.config(**SPEC.test_config)
        yield h


# ---------------------------------------------------------------- sign-in and tenant


def test_keycloak_token_and_credentials_masked_in_the_log(hub: Hub) -> None:
    resp = hub.http.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    body = resp.json()
    assert resp.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 300
    wrong = hub.http.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "x"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert hub.http.post("/auth/realms/nope/protocol/openid-connect/token", data={}).status_code == 404
    exchange = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "subject_token": body["access_token"],
    }
    exchanged = hub.http.post("/auth/realms/IDHUB/protocol/openid-connect/token", data=exchange)
    assert exchanged.status_code == 200
    assert hub.http.post(TOKEN, data=exchange).status_code == 400  # exchanges happen at the IDHUB realm only
    logged = [e for e in hub.http.get("/_log").json() if e["path"].endswith("/openid-connect/token") and e["body"]]
    assert logged and all(e["body"]["client_secret"] == "***" for e in logged)
    assert [e["body"].get("subject_token") for e in logged].count("***") == 2
    log = str(hub.http.get("/_log").json())
    assert CLIENT_SECRET not in log and body["access_token"] not in log


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": "Bearer nope"}, 401),
        ({"tenant": ""}, 400),
        ({"tenant": "vc3"}, 403),
    ],
)
def test_bearer_token_and_tenant_are_checked(hub: Hub, headers: dict[str, str], status: int) -> None:
    resp = hub.call("GET", "/api/v1/request", headers=headers)
    assert resp.status_code == status
    assert resp.json()["http status code"] == status and resp.json()["message"]


def test_tokens_expire_on_the_simulator_clock_and_can_be_revoked(hub: Hub) -> None:
    assert hub.call("GET", "/api/v1/request").status_code == 200
    hub.advance(301)
    assert hub.call("GET", "/api/v1/request").status_code == 401
    hub.headers["Authorization"] = f"Bearer {hub.token()}"
    hub.config(revoke_tokens=True)
    assert hub.call("GET", "/api/v1/request").status_code == 401


def test_token_exchange_switch_accepts_only_exchanged_tokens(hub: Hub) -> None:
    hub.config(require_token_exchange=True)
    assert hub.call("GET", "/api/v1/request").status_code == 401
    direct = hub.headers["Authorization"][7:]
    exchanged = hub.http.post(
        "/auth/realms/IDHUB/protocol/openid-connect/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "subject_token": direct,
        },
    ).json()["access_token"]
    assert hub.call("GET", "/api/v1/request", headers={"Authorization": f"Bearer {exchanged}"}).status_code == 200


# ---------------------------------------------------------------- catalog and accounts


def test_user_document_shape_and_live_access_list(hub: Hub) -> None:
    doc = hub.user("jdoe")
    assert HEX24.match(doc["_id"]) and doc["id"] == {"$oid": doc["_id"]}
    assert (doc["collection"], doc["IDM"], doc["email"], doc["employeeNumber"]) == (
        "User",
        "IDE",
        "jdoe@example.com",
        "E1001",
    )
    assert doc["displayName"] == "Jane Doe" and doc["legalHold"] == "false" and doc["status"] == "Active"
    access = doc["accessList"]
    assert isinstance(access["roles"], list) and isinstance(access["applications"], list)
    assert access["applicationCount"] == len(access["applications"])
    assert access["entitlementCount"] == sum(len(a["entitlements"]) for a in access["applications"])
    roles = {r["name"]: r for r in access["roles"]}
    assert roles["All Employees"]["rule"] != '{"$and":[]}' and roles["Sales Global"]["rule"] == '{"$and":[]}'
    apps = {a["name"]: a for a in access["applications"]}
    assert apps["SAP ERP"]["integrationLevel"] == "Disconnected" and apps["SAP ERP"]["performer"] == "Manual Fulfiller"
    admins = next(e for e in apps["Active Directory"]["entitlements"] if e["name"] == "Domain Admins")
    assert (
        admins["riskLevel"] == "high"
        and admins["collection"] == "Entitlement"
        and admins["id"]["$oid"] == admins["_id"]
    )
    assert hub.user("jdoe")["_id"] == hub.sim.user_id("jdoe") == hub.http.get("/_probe/users/jdoe").json()["id"]


def test_keyword_matching_strict_and_not(hub: Hub) -> None:
    def logins(keyword: str) -> set[str]:
        params = {"collection": "Users", "keyword": keyword}
        return {d["login"] for d in hub.call("GET", "/api/v1/request/search", params=params).json()}

    assert logins("jdoe") == {"jdoe"} and logins("twins@example.com") == {"twin1", "twin2"}
    assert logins("jane d") == {"jdoe"}
    hub.config(strict_keyword=True)
    assert logins("jdoe") == set() and logins("Jane Doe") == {"jdoe"}
    assert len(logins("")) == 45  # every user; the deleted one is gone
    bad = hub.call("GET", "/api/v1/request/search", params={"collection": "People"})
    assert bad.status_code == 400


def test_accounts_carry_mechanism_and_roles(hub: Hub) -> None:
    accounts = {a["targetSystemName"]: a for a in hub.accounts("jdoe")}
    assert set(accounts) == {"Active Directory", "Exchange Online", "SAP ERP", "Salesforce", "Jira", "GitHub"}
    sales = accounts["Salesforce"]
    assert (
        HEX24.match(sales["_id"]["$oid"]) and sales["collection"] == "UserAccount" and sales["status"] == "Provisioned"
    )
    [ent] = sales["entitlements"]
    assert (ent["entitlementName"], ent["provisionMechanism"], ent["associatedRoles"]) == (
        "Salesforce Sales User",
        "Role",
        ["Sales Global"],
    )
    assert ISO_OFFSET.match(ent["provisionedDate"])
    assert accounts["Jira"]["entitlements"] == []
    assert sales["form"]["User Login"] == "jdoe"
    assert hub.call("GET", "/api/v1/user/account").status_code == 400
    by_login = hub.call("GET", "/api/v1/user/account", params={"login": "jdoe"}).json()
    assert {a["userId"] for a in by_login} == {hub.sim.user_id("jdoe")}


# ---------------------------------------------------------------- carts and requests


def test_submit_makes_one_request_per_item_with_the_seeds_shapes(hub: Hub) -> None:
    cart = hub.cart("jdoe", ["Finance RW", "Jira", "Sales Global"])
    created = hub.call("POST", "/api/v1/request/cart", json=cart)
    assert created.status_code == 201 and created.json()["result"] is True
    correlation = created.json()["correlationId"]
    assert HEX24.match(correlation) and set(created.json()) == {"correlationId", "result"}
    body = {**cart, "justification": "leaver-1-1: go", "archive": False, "collection": "UserCart"}
    submitted = hub.call("POST", "/api/v1/request/cart/submit", json=body)
    assert submitted.status_code == 200 and submitted.json() == {"correlationId": correlation, "result": True}

    rows = hub.listing()
    assert len(rows) == 3
    for row in rows:
        assert HEX24.match(row["_id"]["$oid"]) and HEX24.match(row["_etag"]["$oid"])
        assert HEX32.match(row["correlationId"]) and row["correlationId"] != correlation
        assert HEX5.match(row["requestId"]) and ISO_Z.match(row["createDate"])
        assert (row["collection"], row["requestType"], row["justification"]) == (
            "UserRequest",
            "Access",
            "leaver-1-1: go",
        )
        assert row["beneficiary"] == {"displayName": "Jane Doe", "employeeNumber": "E1001", "login": "jdoe"}
        assert row["requester"] == REQUESTER and row["payload"]["type"] == "revoke"
        assert all(ISO_OFFSET.match(h["timeStamp"]) for h in row["history"])
    assert {r["payload"]["entityType"] for r in rows} == {"Entitlement", "TargetSystem", "Role"}
    probes = hub.http.get("/_probe/submissions").json()
    held = hub.entities("jdoe")
    assert sorted(p["item"] for p in probes) == sorted(held[n][0] for n in ("Finance RW", "Jira", "Sales Global"))
    assert {(p["user"], p["key"], p["plan_item_id"]) for p in probes} == {(hub.sim.user_id("jdoe"), "leaver-1-1", None)}


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda c: c.update(cartItems=[]), 400, "cartItems"),
        (lambda c: c["cartItems"][0].update(entityId="0" * 24), 400, "not found"),
        (lambda c: c["cartItems"][0].update(entityType="Role"), 400, "does not match"),
        (lambda c: c.pop("requester"), 400, "requester"),
        (lambda c: c["cartItems"][0]["beneficiaries"][0].update(type="remove"), 400, "not one of"),
        (lambda c: c["cartItems"][0]["beneficiaries"][0].update(login="nobody"), 400, "not an IDHub user"),
    ],
)
def test_bad_carts_are_refused_and_nothing_is_requested(hub: Hub, change: Any, status: int, message: str) -> None:
    cart = hub.cart("jdoe", ["Finance RW", "VPN Users"])
    change(cart)
    created = hub.call("POST", "/api/v1/request/cart", json=cart)
    if created.status_code == 201:  # only a submit checks beneficiaries
        created = hub.call("POST", "/api/v1/request/cart/submit", json={**cart, "justification": "x"})
    assert created.status_code == status and message in created.json()["message"]
    assert hub.listing() == [] and hub.sim.submissions() == []


def test_an_item_not_held_fails_the_whole_cart(hub: Hub) -> None:
    cart = hub.cart("jdoe", ["Finance RW"])
    cart["cartItems"].append({**cart["cartItems"][0], "entityId": hub.entities("asmith")["HR Readers"][0]})
    resp = hub.submit(cart)
    assert resp.status_code == 400 and "does not hold" in resp.json()["message"]
    assert hub.listing() == []


def test_submit_needs_a_created_cart_and_refuses_nothing_twice_made(hub: Hub) -> None:
    cart = hub.cart("jdoe", ["Finance RW"])
    lone = hub.call("POST", "/api/v1/request/cart/submit", json={**cart, "justification": "x"})
    assert lone.status_code == 404
    assert hub.submit(cart).status_code == 200
    # IDHub has no duplicate detection: the same cart made and submitted again is a second request.
    assert hub.submit(cart).status_code == 200
    assert len(hub.listing()) == 2 and len(hub.sim.submissions()) == 2


# ---------------------------------------------------------------- the workflow over the clock


def test_lifecycle_with_approval_task_fulfilment_and_removal(hub: Hub) -> None:
    hub.config(approval_delay=60, fulfil_delay=30, verify_delay=10)
    assert hub.submit(hub.cart("jdoe", ["Payroll Approver", "Sales Global"])).status_code == 200
    rows = {r["payload"]["entityType"]: r for r in hub.listing()}
    assert {r["status"] for r in rows.values()} == {"Waiting for Approval"}
    tasks = hub.call("GET", "/api/v1/task", params={"filter": "{status:Assigned,userLogin:spencer}"}).json()
    assert sorted(t["requestObjectId"] for t in tasks) == sorted(r["_id"]["$oid"] for r in rows.values())
    assert all(t["type"] == "ApprovalTask" and t["state"] == "Assigned" for t in tasks)

    hub.advance(61)
    payroll, role = hub.request(rows["Entitlement"]["_id"]["$oid"]), hub.request(rows["Role"]["_id"]["$oid"])
    assert payroll["status"] == "Waiting for Fulfiller"  # SAP ERP is disconnected
    assert role["status"] == "Request Approved"
    hub.advance(30)
    done = hub.request(rows["Role"]["_id"]["$oid"])
    assert (done["status"], done["resolution"]) == ("Request Completed", "Success")
    assert [h["diff"]["status"] for h in done["history"]] == [
        "Request Submitted",
        "Waiting for Approval",
        "Request Approved",
        "Request Completed",
    ]
    assert "Sales Global" in hub.entities("jdoe")  # still listed until verify_delay passed
    hub.advance(10)
    held = hub.entities("jdoe")
    assert not {"Sales Global", "Salesforce Sales User", "Payroll Approver"} & set(
        held
    )  # the role took its entitlement
    assert "Salesforce" not in {a["targetSystemName"] for a in hub.accounts("jdoe")}
    assert hub.call("GET", "/api/v1/task", params={"filter": "{status:Completed}"}).json()


def test_revoking_an_application_takes_its_account(hub: Hub) -> None:
    hub.config(fulfil_delay=0, verify_delay=0)
    assert hub.submit(hub.cart("jdoe", ["Jira"])).status_code == 200
    hub.advance(0.1)
    assert "Jira" not in hub.entities("jdoe")


def test_task_actions_approve_early_or_reject(hub: Hub) -> None:
    hub.config(approval_delay=3600, fulfil_delay=0)
    hub.submit(hub.cart("jdoe", ["Finance RW", "VPN Users"]))
    tasks = {t["title"]: t for t in hub.call("GET", "/api/v1/task", params={"filter": "{status:Assigned}"}).json()}
    ok = hub.call("POST", f"/api/v1/task/{tasks['Finance RW']['_id']['$oid']}/Approve", json={"userLogin": "spencer"})
    no = hub.call(
        "POST",
        f"/api/v1/task/{tasks['VPN Users']['_id']['$oid']}/Reject",
        json={"userLogin": "spencer", "comment": "no"},
    )
    assert ok.status_code == no.status_code == 200
    states = {r["payload"]["entityId"]: (r["status"], r["resolution"]) for r in hub.listing()}
    held = hub.entities("jdoe")
    assert states[held["Finance RW"][0]] == ("Request Completed", "Success")
    assert states[held["VPN Users"][0]] == ("Request Rejected", "Rejected")
    again = hub.call("POST", f"/api/v1/task/{tasks['VPN Users']['_id']['$oid']}/Approve", json={})
    assert again.status_code == 400
    assert hub.call("POST", "/api/v1/task/" + "0" * 24 + "/Approve", json={}).status_code == 404
    assert hub.call("POST", f"/api/v1/task/{tasks['VPN Users']['_id']['$oid']}/Delete", json={}).status_code == 400


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"outcome": "rejected"}, ("Request Rejected", "Rejected")),
        ({"outcome": "rejected", "rejected_as": "resolution"}, ("Request Completed", "Rejected")),
        ({"outcome": "failed"}, ("Request Failed", "Failed")),
        ({"outcome": "cancelled"}, ("Request Completed", "cancelled")),
        (
            {"outcome": "rejected", "rejected_as": "resolution", "resolutions": {"rejected": "Denied"}},
            ("Request Completed", "Denied"),
        ),
    ],
)
def test_outcomes(hub: Hub, config: dict[str, Any], expected: tuple[str, str]) -> None:
    hub.config(**config)
    hub.submit(hub.cart("jdoe", ["Finance RW"]))
    hub.advance(5)
    [row] = hub.listing()
    assert (row["status"], row["resolution"]) == expected
    assert "Finance RW" in hub.entities("jdoe")


def test_outcome_per_item_and_completed_but_still_held(hub: Hub) -> None:
    held = hub.entities("jdoe")
    hub.config(item_outcomes={held["VPN Users"][0]: "failed"}, still_held=True)
    hub.submit(hub.cart("jdoe", ["Finance RW", "VPN Users"]))
    hub.advance(5)
    states = {r["payload"]["entityId"]: r["status"] for r in hub.listing()}
    assert states == {held["Finance RW"][0]: "Request Completed", held["VPN Users"][0]: "Request Failed"}
    assert "Finance RW" in hub.entities("jdoe")


# ---------------------------------------------------------------- listing, paging, fetch by ID


def test_listing_pages_newest_first_and_filters_by_type(hub: Hub) -> None:
    names = ["Finance RW", "VPN Users", "Domain Admins", "Mailbox jdoe", "Payroll Approver"]
    for n, name in enumerate(names):
        hub.submit(hub.cart("jdoe", [name], name=f"leaver-1-{n}"))
        hub.advance(1)
    pages = [hub.listing(pagesize="2", page=str(p)) for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    keys = [r["justification"].split(":")[0] for p in pages for r in p]
    assert keys == [f"leaver-1-{n}" for n in reversed(range(5))]
    assert hub.listing(filter="create") == []
    assert hub.call("GET", "/api/v1/request", params={"filter": "delete"}).status_code == 400
    assert hub.call("GET", "/api/v1/request", params={"pagesize": "1001"}).status_code == 400
    assert hub.call("GET", "/api/v1/request", params={"page": "0"}).status_code == 400
    hub.config(newest_first=False, page_param="pageNo", page_size_max=3)
    assert hub.listing(pagesize="2", pageNo="1")[0]["justification"].startswith("leaver-1-0")
    assert hub.listing(pagesize="2", page="3") == hub.listing(pagesize="2")  # `page` is not read any more
    assert hub.call("GET", "/api/v1/request", params={"pagesize": "4"}).status_code == 400


def test_fetch_by_id_is_a_one_element_array_and_unknown_is_404(hub: Hub) -> None:
    hub.submit(hub.cart("jdoe", ["Finance RW"]))
    [row] = hub.listing()
    resp = hub.call("GET", f"/api/v1/request/{row['_id']['$oid']}")
    assert resp.status_code == 200 and isinstance(resp.json(), list) and len(resp.json()) == 1
    missing = hub.call("GET", "/api/v1/request/" + "0" * 24)
    assert missing.status_code == 404
    assert missing.json() == {
        "http status code": 404,
        "http status description": "Not Found",
        "message": missing.json()["message"],
    }


def test_asynchronous_creation_hides_new_requests_for_a_while(hub: Hub) -> None:
    hub.config(request_lag=20)
    hub.submit(hub.cart("jdoe", ["Finance RW"]))
    assert hub.listing() == [] and len(hub.sim.submissions()) == 1
    hub.advance(21)
    assert len(hub.listing()) == 1


# ---------------------------------------------------------------- faults and switches


def test_a_fault_after_the_submit_keeps_its_effect(hub: Hub) -> None:
    method, path = hub.sim.endpoints["submit"]
    hub.http.post(
        "/_faults", json={"rules": [{"method": method, "path": path, "status": 500, "when": "after", "count": 1}]}
    )
    resp = hub.submit(hub.cart("jdoe", ["Finance RW"]))
    assert resp.status_code == 500 and resp.json()["http status code"] == 500
    assert len(hub.listing()) == 1 and len(hub.sim.submissions()) == 1


def test_throttling_answers_retry_after(hub: Hub) -> None:
    hub.http.post("/_faults", json={"rules": [{"path": "/api/v1/*", "status": 429, "retry_after": 2, "count": 1}]})
    resp = hub.call("GET", "/api/v1/request")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
    assert hub.call("GET", "/api/v1/request").status_code == 200


def test_endpoint_globs_name_only_their_calls(hub: Hub) -> None:
    import fnmatch

    _, status = hub.sim.endpoints["status"]
    assert fnmatch.fnmatchcase("/api/v1/request/6565b512425c8055c059d598", status)
    assert not any(fnmatch.fnmatchcase(p, status) for p in ("/api/v1/request/cart", "/api/v1/request/search"))


def test_routes_can_move(hub: Hub) -> None:
    hub.config(routes={"requests_by_type": "POST /v2/requests/list", "cart_submit": "PUT /v2/carts/{cart}/submit"})
    assert hub.call("GET", "/api/v1/request").status_code == 404
    assert hub.call("POST", "/v2/requests/list", params={"filter": "revoke"}).status_code == 200
    cart = hub.cart("jdoe", ["Finance RW"])
    cart_id = hub.call("POST", "/api/v1/request/cart", json=cart).json()["correlationId"]
    resp = hub.call("PUT", f"/v2/carts/{cart_id}/submit", json={**cart, "justification": "x"})
    assert resp.status_code == 200 and resp.json()["correlationId"] == cart_id
    assert hub.http.post("/_config", json={"routes": {"cart_delete": "DELETE /x"}}).status_code == 400


def test_etag_switch(hub: Hub) -> None:
    hub.config(require_etag=True)
    cart = hub.cart("jdoe", ["Finance RW"])
    assert hub.submit(cart).status_code == 409
    created = hub.call("POST", "/api/v1/request/cart", json=cart)
    etag = created.json()["_etag"]["$oid"]
    assert created.headers["etag"] == etag
    body = {**cart, "justification": "x"}
    assert hub.call("POST", "/api/v1/request/cart/submit", json={**body, "_etag": {"oid": "0" * 24}}).status_code == 412
    assert hub.call("POST", "/api/v1/request/cart/submit", json={**body, "_etag": {"oid": etag}}).status_code == 200


def test_tenant_header_revoke_type_and_correlation_switches(hub: Hub) -> None:
    hub.config(tenant_header="X-Tenant-ID", revoke_type="REVOKE", request_correlation_is_submit_id=True)
    assert hub.call("GET", "/api/v1/request").status_code == 400
    hub.headers = {"Authorization": hub.headers["Authorization"], "X-Tenant-ID": "demo"}
    assert hub.submit(hub.cart("jdoe", ["Finance RW"])).status_code == 400  # "revoke" is not a type here
    resp = hub.submit(hub.cart("jdoe", ["Finance RW"], kind="REVOKE"))
    [row] = hub.listing(filter="REVOKE")
    assert row["correlationId"] == resp.json()["correlationId"]


def test_config_refuses_unknown_keys_and_reset_restores_the_demo(hub: Hub) -> None:
    assert hub.http.post("/_config", json={"no_such_switch": 1}).status_code == 400
    assert hub.http.get("/_config").json()["fulfil_delay"] == 0.2
    hub.submit(hub.cart("jdoe", ["Finance RW"]))
    hub.http.post("/_reset").raise_for_status()
    assert hub.sim.submissions() == [] and hub.http.get("/_config").json()["fulfil_delay"] == 1.0


def test_more_people_can_be_seeded(hub: Hub) -> None:
    extra = DemoPerson(
        "zed",
        "Zed Extra",
        "zed@example.com",
        "E9999",
        "cn=zed",
        (DemoAccess("entitlement", "VPN Users", "Active Directory"),),
    )
    hub.sim.add_people([extra])
    assert set(hub.entities("zed")) == {"Active Directory", "VPN Users"}
    with pytest.raises(KeyError):
        hub.sim.user_id("gone")
