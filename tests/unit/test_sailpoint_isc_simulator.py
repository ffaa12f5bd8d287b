"""The ISC simulator on its own: what a faithful fake of the tenant must do (contract §9)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.simulator.sailpoint_isc import (
    API_CLIENT_ID,
    API_CLIENT_SECRET,
    PAT_CLIENT_ID,
    PAT_CLIENT_SECRET,
    IscSimulator,
    create_app,
    hex_id,
    iso,
)
from tests.servers import serve_in_thread

HEX32 = re.compile(r"^[0-9a-f]{32}$")
FINANCE_RW = hex_id("ENTITLEMENT", "Active Directory", "Finance RW")
BAD_REQUEST_TEXT = "The request was syntactically correct but its content is semantically invalid."


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[IscSimulator, str]]:
    app = create_app()
    with serve_in_thread(app) as url:
        yield app.state.sim, url


def token(http: httpx.Client, client_id: str = PAT_CLIENT_ID, secret: str = PAT_CLIENT_SECRET) -> dict[str, str]:
    resp = http.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@dataclass
class Isc:
    sim: IscSimulator
    http: httpx.Client
    auth: dict[str, str]

    def config(self, **changes: Any) -> dict[str, Any]:
        resp = self.http.post("/_config", json=changes)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def advance(self, seconds: float) -> None:
        self.http.post("/_clock", json={"advance": seconds})

    def search(self, query: str, **params: Any) -> httpx.Response:
        return self.http.post(
            "/v3/search",
            params=params,
            headers=self.auth,
            json={"indices": ["identities"], "query": {"query": query}, "sort": ["id"]},
        )

    def person(self, username: str) -> dict[str, Any]:
        [doc] = self.search(f'attributes.uid:"{username}"').json()
        fresh = self.http.get(f"/v3/search/identities/{doc['id']}", headers=self.auth).json()
        assert isinstance(fresh, dict)
        return fresh

    def access(self, username: str) -> dict[str, dict[str, Any]]:
        return {a["name"]: a for a in self.person(username)["access"]}

    def revoke(self, username: str, *names: str, key: str = "k", **extra: Any) -> httpx.Response:
        doc = self.person(username)
        catalog = {i.name: i for i in self.sim.items.values()}  # by name, held or not
        items = [
            {
                "type": catalog[n].type,
                "id": catalog[n].id,
                "comment": "leaver",
                "clientMetadata": {"leaverKey": key, "leaverItem": f"{catalog[n].type}:{catalog[n].id}"},
                **extra,
            }
            for n in names
        ]
        return self.http.post(
            "/v3/access-requests",
            headers=self.auth,
            json={
                "requestType": "REVOKE_ACCESS",
                "requestedFor": [doc["id"]],
                "requestedItems": items,
                "clientMetadata": {"leaverKey": key},
            },
        )

    def rows(self, **params: Any) -> list[dict[str, Any]]:
        resp = self.http.get("/v3/access-request-status", params=params, headers=self.auth)
        assert resp.status_code == 200, resp.text
        rows: list[dict[str, Any]] = resp.json()
        return rows


@pytest.fixture()
def isc(server: tuple[IscSimulator, str]) -> Iterator[Isc]:
    sim, url = server
    with httpx.Client(base_url=url) as http:
        assert http.post("/_reset").status_code == 200
        yield Isc(sim, http, token(http))


def assert_error(resp: httpx.Response, status: int, cause: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"detailCode", "trackingId", "messages", "causes"}
    assert HEX32.match(body["trackingId"])
    assert body["messages"][0]["locale"] == "en-US" and body["messages"][0]["localeOrigin"] == "DEFAULT"
    if status == 400:
        assert body["detailCode"] == "400.1 Bad Request Content" and body["messages"][0]["text"] == BAD_REQUEST_TEXT
    if cause:
        assert cause.lower() in " ".join(c["text"] for c in body["causes"]).lower()


# ---- tokens


def test_tokens_by_form_query_or_basic(isc: Isc) -> None:
    form = {"grant_type": "client_credentials", "client_id": PAT_CLIENT_ID, "client_secret": PAT_CLIENT_SECRET}
    basic = base64.b64encode(f"{PAT_CLIENT_ID}:{PAT_CLIENT_SECRET}".encode()).decode()
    answers = [
        isc.http.post("/oauth/token", data=form),
        isc.http.post("/oauth/token", params=form),
        isc.http.post(
            "/oauth/token", params={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
        ),
    ]
    for resp in answers:
        body = resp.json()
        assert resp.status_code == 200 and body["expires_in"] == 749 and body["token_type"] == "bearer"
        _, payload, _ = body["access_token"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["authorities"] == ["ORG_ADMIN"] and HEX32.match(claims["identity_id"])
    api = isc.http.post("/oauth/token", data={**form, "client_id": API_CLIENT_ID, "client_secret": API_CLIENT_SECRET})
    payload = api.json()["access_token"].split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["authorities"] == ["API"]
    bad = isc.http.post("/oauth/token", data={**form, "client_secret": "wrong"})
    assert bad.status_code == 401 and bad.json() == {"error": "invalid_client", "error_description": "Bad credentials"}
    assert isc.http.post("/oauth/token", data={**form, "grant_type": "password"}).status_code == 400


def test_expired_revoked_and_missing_tokens_get_401(isc: Isc) -> None:
    isc.config(token_lifetime=5)
    short = token(isc.http)
    isc.advance(6)
    resp = isc.http.get("/v3/accounts", headers=short)
    assert resp.status_code == 401 and resp.json() == {"error": "JWT validation failed: JWT is expired"}
    fresh = token(isc.http)
    isc.config(revoke_tokens=True)
    assert isc.http.get("/v3/accounts", headers=fresh).json() == {"error": "JWT validation failed: JWT is invalid"}
    assert isc.http.get("/v3/accounts").status_code == 401


def test_api_authority_may_search_but_not_request(isc: Isc) -> None:
    api = token(isc.http, API_CLIENT_ID, API_CLIENT_SECRET)
    assert isc.http.post("/v3/search", json={"query": {"query": "*"}}, headers=api).status_code == 200
    assert isc.http.get("/v3/accounts", headers=api).status_code == 200
    for method, path, body in [
        ("POST", "/v3/access-requests", {}),
        ("GET", "/v3/access-request-status", None),
        ("POST", "/v3/access-requests/cancel", {"accountActivityId": "x", "comment": "c"}),
    ]:
        assert_error(isc.http.request(method, path, json=body, headers=api), 403, "API authority")


# ---- demo data and search


def test_demo_people(isc: Isc) -> None:
    jdoe = isc.person("jdoe")
    access = {a["name"]: a for a in jdoe["access"]}
    assert len(access) >= 8 and jdoe["accessCount"] == len(access) and HEX32.match(jdoe["id"])
    assert access["Domain Admins"]["privileged"] is True and access["Domain Admins"]["standalone"] is True
    assert access["Salesforce Sales User"]["standalone"] is False
    assert access["All Staff"]["standalone"] is False and access["All Staff"]["revocable"] is False
    assert access["Sales Global"]["revocable"] is True and "source" not in access["Sales Global"]
    assert access["Jira Developers"]["source"]["name"] == "Jira" and access["Jira Developers"]["revocable"] is True
    assert all(HEX32.match(a["id"]) for a in access.values())
    assert {a["accountId"] for a in jdoe["accounts"]} >= {"cn=jdoe,ou=users,o=example", "jdoe"}
    assert len(isc.search('email:"twins@example.com"').json()) == 2
    assert isc.search('email:"gone@example.com"').json() == []


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ('email:"JDOE@Example.com"', ["jdoe"]),
        ('employeeNumber:"E1002"', ["asmith"]),
        ('@accounts(accountId:"cn=asmith,ou=users,o=example")', ["asmith"]),
        ('attributes.uid:"twin1" OR attributes.uid:"twin2"', ["twin1", "twin2"]),
        ('email:"twins@example.com" AND attributes.uid:"twin2"', ["twin2"]),
        ("name:twin*", ["twin1", "twin2"]),
        ('attributes.department:"Legal"', ["lhold"]),
    ],
)
def test_search_queries(isc: Isc, query: str, names: list[str]) -> None:
    resp = isc.search(query)
    assert resp.status_code == 200
    assert sorted(d["name"] for d in resp.json()) == names


def test_search_by_id_and_paging(isc: Isc) -> None:
    jdoe = isc.person("jdoe")
    assert [d["name"] for d in isc.search(f"id:{jdoe['id']}").json()] == ["jdoe"]
    everyone = isc.search("*", count="true")
    total = int(everyone.headers["x-total-count"])
    assert total == len(everyone.json()) >= 40
    page = isc.search("*", limit=5, offset=5, count="true")
    assert [d["id"] for d in page.json()] == [d["id"] for d in everyone.json()][5:10]
    assert page.headers["x-total-count"] == str(total)
    isc.config(page_size_max=3)
    capped = isc.search("*", limit=10, count="true")
    assert len(capped.json()) == 3 and capped.headers["x-total-count"] == str(total)
    isc.config(page_size_max=250)
    assert_error(isc.search("*", limit=10001), 400)
    assert_error(isc.search("*", limit=9000, offset=2000), 400, "10000")
    assert_error(isc.search('email:"unbalanced'), 400)
    slim = isc.http.post("/v3/search", headers=isc.auth, json={"query": {"query": "name:jdoe"}, "includeNested": False})
    assert "access" not in slim.json()[0]
    after = isc.http.post(
        "/v3/search",
        headers=isc.auth,
        json={"query": {"query": "*"}, "sort": ["id"], "searchAfter": [everyone.json()[0]["id"]]},
    )
    assert after.json()[0]["id"] == everyone.json()[1]["id"]
    assert_error(isc.http.get(f"/v3/search/identities/{'0' * 32}", headers=isc.auth), 404)
    assert_error(isc.http.get(f"/v3/search/nothing/{jdoe['id']}", headers=isc.auth), 400)


def test_accounts_filter(isc: Isc) -> None:
    jdoe = isc.person("jdoe")
    resp = isc.http.get(
        "/v3/accounts",
        headers=isc.auth,
        params={"filters": 'nativeIdentity eq "cn=jdoe,ou=users,o=example"', "count": "true"},
    )
    assert [(a["identityId"], a["sourceName"]) for a in resp.json()] == [(jdoe["id"], "Corporate Directory")]
    assert resp.headers["x-total-count"] == "1"
    both = isc.http.get(
        "/v3/accounts",
        headers=isc.auth,
        params={"filters": f'identityId eq "{jdoe["id"]}" and nativeIdentity in ("jdoe","nobody")'},
    ).json()
    assert both and {a["nativeIdentity"] for a in both} == {"jdoe"}
    assert_error(isc.http.get("/v3/accounts", headers=isc.auth, params={"filters": 'uuid eq "x"'}), 400, "uuid")
    assert_error(isc.http.get("/v3/accounts", headers=isc.auth, params={"filters": 'name gt "x"'}), 400, "gt")
    assert_error(isc.http.get("/v3/accounts", headers=isc.auth, params={"limit": "251"}), 400)


# ---- submitting


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        (lambda b: b.update(requestedFor=[b["requestedFor"][0], "f" * 32]), "single identity"),
        (lambda b: b["requestedItems"][0].pop("comment"), "Comment is required"),
        (lambda b: b["requestedItems"][0].update(comment="  "), "Comment is required"),
        (lambda b: b["requestedItems"].append({**b["requestedItems"][1], "id": FINANCE_RW}), "1 entitlement"),
        (lambda b: b["requestedItems"][0].update(startDate="2999-01-01T00:00:00Z"), "startDate"),
        (lambda b: b["requestedItems"][0].update(removeDate="2001-01-01T00:00:00Z"), "future"),
        (lambda b: b["requestedItems"][0].update(removeDate="next tuesday"), "ISO-8601"),
        (lambda b: b.update(requestType="REMOVE_ACCESS"), "Unknown requestType"),
        (lambda b: b.update(requestType="GRANT_ACCESS"), "not simulated"),
        (lambda b: b.pop("requestType"), "not simulated"),  # it defaults to GRANT_ACCESS
        (lambda b: b.update(requestedItems=[]), "requestedItems"),
        (lambda b: b.pop("requestedFor"), "requestedFor"),
        (lambda b: b.update(requestedForWithRequestedItems=[{"identityId": "x"}]), "requestedForWithRequestedItems"),
        (lambda b: b["requestedItems"][0].update(type="APP"), "type"),
        (lambda b: b["requestedItems"][0].update(id="0" * 32), "not found"),
        (lambda b: b.update(requestedFor=["0" * 32]), "not found"),
        (lambda b: b["requestedItems"][0].update(clientMetadata={"n": 1}), "clientMetadata"),
        (lambda b: b["requestedItems"].append(dict(b["requestedItems"][0])), "twice"),
    ],
)
def test_each_invalid_revoke_is_a_400(isc: Isc, change: Any, cause: str) -> None:
    doc = isc.person("jdoe")
    held = {a["name"]: a for a in doc["access"]}
    body: dict[str, Any] = {
        "requestType": "REVOKE_ACCESS",
        "requestedFor": [doc["id"]],
        "requestedItems": [
            {"type": held[n]["type"], "id": held[n]["id"], "comment": "leaver"} for n in ("Sales Global", "VPN Users")
        ],
    }
    change(body)
    assert_error(isc.http.post("/v3/access-requests", json=body, headers=isc.auth), 400, cause)
    assert_error(isc.http.post("/v3/access-requests", content=b"{nope", headers=isc.auth), 400, "JSON")
    assert isc.rows() == []


def test_a_valid_revoke_is_accepted_with_ids(isc: Isc) -> None:
    resp = isc.revoke("jdoe", "Sales Global", "Jira Developers")
    assert resp.status_code == 202
    body = resp.json()
    [new] = body["newRequests"]
    assert body["existingRequests"] == [] and new["requestedFor"] == isc.person("jdoe")["id"]
    assert [d["type"] for d in new["requestedItemsDetails"]] == ["ROLE", "ACCESS_PROFILE"]
    assert -(2**31) <= new["attributesHash"] < 2**31 and isinstance(new["attributesHash"], int)
    [request_id] = new["accessRequestIds"]
    assert HEX32.match(request_id)
    rows = isc.rows()
    assert [r["accessRequestId"] for r in rows] == [request_id] * 2
    assert all(HEX32.match(r["id"]) and HEX32.match(r["accountActivityItemId"]) for r in rows)
    assert [r["clientMetadata"]["leaverItem"].split(":")[0] for r in rows] == ["ROLE", "ACCESS_PROFILE"]
    assert {r["requesterComment"]["comment"] for r in rows} == {"leaver"}
    isc.config(legacy_empty_202=True)
    legacy = isc.revoke("jdoe", "VPN Users")
    assert legacy.status_code == 202 and legacy.json() == {}
    assert len(isc.rows()) == 3


def test_self_revoke_is_refused(isc: Isc) -> None:
    resp = isc.http.post(
        "/v3/access-requests",
        headers=isc.auth,
        json={
            "requestType": "REVOKE_ACCESS",
            "requestedFor": [isc.sim.tokens[isc.auth["Authorization"][7:]].identity_id],
            "requestedItems": [{"type": "ROLE", "id": "x", "comment": "c"}],
        },
    )
    assert_error(resp, 400)


def test_duplicates_are_accepted_silently(isc: Isc) -> None:
    first = isc.revoke("jdoe", "Sales Global").json()["newRequests"][0]["accessRequestIds"][0]
    again = isc.revoke("jdoe", "Sales Global", "Jira Developers", key="other")
    assert again.status_code == 202
    body = again.json()
    assert [e["accessRequestIds"] for e in body["existingRequests"]] == [[first]]
    assert [d["type"] for d in body["newRequests"][0]["requestedItemsDetails"]] == ["ACCESS_PROFILE"]
    assert len(isc.rows()) == 2
    isc.config(report_existing=False)
    dup = isc.revoke("jdoe", "Sales Global", key="third")
    assert dup.status_code == 202 and dup.json()["existingRequests"] == []
    [row] = isc.rows(filters=f'accessRequestId eq "{dup.json()["newRequests"][0]["accessRequestIds"][0]}"')
    assert row["state"] == "CANCELLED" and "duplicate" in row["cancelledRequestDetails"]["comment"]


def test_what_is_not_revocable_or_not_held_ends_cancelled(isc: Isc) -> None:
    for name in ("Salesforce Sales User", "All Staff"):
        assert isc.revoke("jdoe", name).status_code == 202
    isc.revoke("jdoe", "VPN Users")
    isc.advance(3.5)
    again = isc.revoke("jdoe", "VPN Users")  # gone by now: nothing to revoke
    assert again.status_code == 202
    rows = isc.rows(sorters="created")
    assert [r["state"] for r in rows] == ["CANCELLED", "CANCELLED", "REQUEST_COMPLETED", "CANCELLED"]
    assert "role membership or birthright" in rows[0]["cancelledRequestDetails"]["comment"]
    assert "does not have" in rows[3]["cancelledRequestDetails"]["comment"]
    assert {"Salesforce Sales User", "All Staff"} <= set(isc.access("jdoe"))


# ---- the state machine


def test_transitions_over_the_clock_and_index_lag(isc: Isc) -> None:
    isc.config(approval_delay=5, fulfil_delay=3, verification_delay=2, verify_delay=4)
    isc.revoke("jdoe", "Sales Global")

    def row() -> dict[str, Any]:
        [r] = isc.rows()
        return r

    first = row()
    assert (first["state"], first["cancelable"], first["approvalDetails"][0]["status"]) == (
        "EXECUTING",
        True,
        "PENDING",
    )
    assert [p["name"] for p in first["accessRequestPhases"]] == ["APPROVAL_PHASE"]
    isc.advance(5.5)
    second = row()
    assert (second["state"], second["cancelable"], second["approvalDetails"][0]["status"]) == (
        "EXECUTING",
        False,
        "APPROVED",
    )
    assert second["accessRequestPhases"][1]["state"] == "EXECUTING"
    isc.advance(3)
    assert row()["state"] == "PROVISIONING_VERIFICATION_PENDING"
    isc.advance(2)
    done = row()
    assert done["state"] == "REQUEST_COMPLETED" and done["modified"] > done["created"]
    assert {"Sales Global", "Salesforce Sales User"} <= set(isc.access("jdoe"))  # the index lags
    isc.advance(4)
    assert not {"Sales Global", "Salesforce Sales User"} & set(isc.access("jdoe"))  # with its role's entitlement


@pytest.mark.parametrize(
    ("outcome", "state", "gone"),
    [
        ("rejected", "REJECTED", set()),
        ("failed", "PROVISIONING_FAILED", set()),
        ("error", "ERROR", set()),
        ("terminated", "TERMINATED", set()),
        ("cancelled", "CANCELLED", set()),
        ("not_all_items_provisioned", "NOT_ALL_ITEMS_PROVISIONED", {"Sales Global"}),
    ],
)
def test_injected_outcomes(isc: Isc, outcome: str, state: str, gone: set[str]) -> None:
    isc.config(outcome=outcome, approval_delay=1)
    isc.revoke("jdoe", "Sales Global", "Jira Developers")
    isc.advance(10)
    rows = isc.rows()
    assert {r["state"] for r in rows} == {state}
    if state in ("PROVISIONING_FAILED", "ERROR", "NOT_ALL_ITEMS_PROVISIONED", "TERMINATED"):
        assert all(r["errorMessages"][0][0]["text"] for r in rows)
    if state == "REJECTED":
        assert rows[0]["approvalDetails"][0]["status"] == "REJECTED"
    left = set(isc.access("jdoe"))
    assert {"Sales Global", "Jira Developers"} - left == gone


def test_remove_date_holds_the_request(isc: Isc) -> None:
    when = iso(isc.sim.clock.now() + 100)
    isc.revoke("jdoe", "Jira Developers", removeDate=when)
    isc.advance(50)
    [row] = isc.rows()
    assert (row["state"], row["removeDate"]) == ("EXECUTING", when)
    isc.advance(52)
    assert isc.rows()[0]["state"] == "REQUEST_COMPLETED"


def test_cancel_rules(isc: Isc) -> None:
    isc.config(approval_delay=10)
    request_id = isc.revoke("jdoe", "Sales Global", "Jira Developers").json()["newRequests"][0]["accessRequestIds"][0]
    assert_error(
        isc.http.post("/v3/access-requests/cancel", headers=isc.auth, json={"accountActivityId": request_id}),
        400,
        "comment",
    )
    resp = isc.http.post(
        "/v3/access-requests/cancel",
        headers=isc.auth,
        json={"accountActivityId": request_id, "comment": "rehire evt-456"},
    )
    assert resp.status_code == 202 and resp.json() == {}
    rows = isc.rows()
    assert {(r["state"], r["cancelable"]) for r in rows} == {("CANCELLED", False)}
    assert rows[0]["cancelledRequestDetails"]["comment"] == "rehire evt-456"
    assert_error(
        isc.http.post(
            "/v3/access-requests/cancel", headers=isc.auth, json={"accountActivityId": request_id, "comment": "again"}
        ),
        400,
        "cannot be cancelled",
    )
    assert_error(
        isc.http.post(
            "/v3/access-requests/cancel", headers=isc.auth, json={"accountActivityId": "0" * 32, "comment": "x"}
        ),
        404,
    )
    later = isc.revoke("jdoe", "VPN Users").json()["newRequests"][0]["accessRequestIds"][0]
    isc.advance(11)
    assert_error(
        isc.http.post(
            "/v3/access-requests/cancel", headers=isc.auth, json={"accountActivityId": later, "comment": "late"}
        ),
        400,
    )
    assert {"Sales Global", "Jira Developers"} <= set(isc.access("jdoe"))


# ---- status queries


def test_status_filters_sorters_and_paging(isc: Isc) -> None:
    ids = []
    for name in ("VPN Users", "Finance RW", "Mailbox jdoe"):
        ids.append(isc.revoke("jdoe", name).json()["newRequests"][0]["accessRequestIds"][0])
        isc.advance(0.01)
    jdoe = isc.person("jdoe")["id"]
    both = isc.rows(**{"requested-for": jdoe, "filters": f'accessRequestId in ("{ids[0]}","{ids[2]}")'})
    assert sorted(r["accessRequestId"] for r in both) == sorted([ids[0], ids[2]])
    assert [r["accessRequestId"] for r in isc.rows(filters=f'accessRequestId eq "{ids[1]}"')] == [ids[1]]
    assert [r["accessRequestId"] for r in isc.rows(sorters="-created")] == ids[::-1]
    assert [r["name"] for r in isc.rows(sorters="name")] == ["Finance RW", "Mailbox jdoe", "VPN Users"]
    second = isc.rows(sorters="created")[1]["created"]
    assert [r["accessRequestId"] for r in isc.rows(sorters="created", filters=f"created ge {second}")] == ids[1:]
    resp = isc.http.get(
        "/v3/access-request-status",
        headers=isc.auth,
        params={"sorters": "created", "limit": 2, "offset": 1, "count": "true"},
    )
    assert [r["accessRequestId"] for r in resp.json()] == ids[1:] and resp.headers["x-total-count"] == "3"
    assert len(isc.rows(**{"regarding-identity": jdoe})) == 3
    assert isc.rows(**{"requested-for": isc.person("asmith")["id"]}) == []
    assert len(isc.rows(**{"request-state": "EXECUTING"})) == 3
    isc.config(page_size_max=2)
    capped = isc.http.get("/v3/access-request-status", headers=isc.auth, params={"count": "true"})
    assert len(capped.json()) == 2 and capped.headers["x-total-count"] == "3"
    for params, cause in [
        ({"requested-for": jdoe, "regarding-identity": jdoe}, "mutually exclusive"),
        ({"limit": 251}, "limit"),
        ({"filters": 'name eq "x"'}, "name"),
        ({"filters": 'created sw "2020"'}, "sw"),
        ({"filters": 'accessRequestId in "x"'}, "list"),
        ({"sorters": "state"}, "state"),
        ({"request-state": "DONE"}, "EXECUTING"),
    ]:
        assert_error(isc.http.get("/v3/access-request-status", params=params, headers=isc.auth), 400, cause)


def test_status_lag_and_tenants_without_the_in_filter(isc: Isc) -> None:
    isc.config(status_lag=5, status_in_filter=False)
    request_id = isc.revoke("jdoe", "VPN Users").json()["newRequests"][0]["accessRequestIds"][0]
    assert isc.rows() == []
    isc.advance(5)
    assert len(isc.rows(filters=f'accessRequestId eq "{request_id}"')) == 1
    resp = isc.http.get(
        "/v3/access-request-status", headers=isc.auth, params={"filters": f'accessRequestId in ("{request_id}")'}
    )
    assert_error(resp, 400, "in")


def test_several_request_ids_per_submission(isc: Isc) -> None:
    isc.config(items_per_request_id=1)
    [new] = isc.revoke("jdoe", "Sales Global", "Jira Developers").json()["newRequests"]
    assert len(new["accessRequestIds"]) == 2
    assert {r["accessRequestId"] for r in isc.rows()} == set(new["accessRequestIds"])


# ---- throttling, faults, config


def test_throttling_is_100_per_token_per_10_seconds(isc: Isc) -> None:
    for _ in range(100):
        assert isc.http.get("/v3/accounts", params={"limit": 1}, headers=isc.auth).status_code == 200
    resp = isc.http.get("/v3/accounts", params={"limit": 1}, headers=isc.auth)
    assert resp.status_code == 429 and resp.json() == {"message": " Rate Limit Exceeded "}
    assert 1 <= int(resp.headers["retry-after"]) <= 10
    assert isc.http.get("/v3/accounts", headers=token(isc.http)).status_code == 200  # another token
    isc.advance(10)
    assert isc.http.get("/v3/accounts", params={"limit": 1}, headers=isc.auth).status_code == 200


def test_injected_faults_use_isc_bodies(isc: Isc) -> None:
    isc.http.post(
        "/_faults",
        json={
            "rules": [
                {"path": "/v3/accounts", "status": 500, "count": 1},
                {"path": "/v3/accounts", "status": 429, "retry_after": 3, "count": 1},
            ]
        },
    )
    first = isc.http.get("/v3/accounts", headers=isc.auth)
    assert first.status_code == 500 and first.json()["detailCode"] == "500.0 Internal Fault"
    second = isc.http.get("/v3/accounts", headers=isc.auth)
    assert second.status_code == 429 and second.json() == {"message": " Rate Limit Exceeded "}
    assert second.headers["retry-after"] == "3"
    assert isc.http.get("/v3/accounts", headers=isc.auth).status_code == 200


def test_config_keys(isc: Isc) -> None:
    config = isc.http.get("/_config").json()
    assert {k: config[k] for k in ("approval_delay", "fulfil_delay", "verify_delay", "outcome")} == {
        "approval_delay": 0.0,
        "fulfil_delay": 1.0,
        "verify_delay": 2.0,
        "outcome": "completed",
    }
    assert {"token_lifetime", "page_size_max", "legacy_empty_202", "rate_limit_per_10s"} <= set(config)
    assert isc.config(outcome="rejected")["outcome"] == "rejected"
    assert isc.http.post("/_config", json={"outcome": "maybe"}).status_code == 400
    assert isc.http.post("/_config", json={"no_such_key": 1}).status_code == 400


def test_other_api_versions(isc: Isc) -> None:
    for version in ("v2024", "v2025", "v2026"):
        resp = isc.http.post(f"/{version}/search", headers=isc.auth, json={"query": {"query": "name:jdoe"}})
        assert [d["name"] for d in resp.json()] == ["jdoe"]
    assert_error(isc.http.get("/v9/accounts", headers=isc.auth), 404)


def test_submissions_probe_counts_accepted_requests_under_every_api_version(isc: Isc) -> None:
    assert isc.revoke("jdoe", "Finance RW", "VPN Users").status_code == 400  # one entitlement per request
    assert isc.revoke("jdoe", "Sales Global", key="leaver-3-1").status_code == 202
    doc = isc.person("asmith")
    helpdesk = next(i for i in isc.sim.items.values() if i.name == "Helpdesk Tier 1")
    body = {
        "requestType": "REVOKE_ACCESS",
        "requestedFor": [doc["id"]],
        "requestedItems": [{"type": "ROLE", "id": helpdesk.id, "comment": "leaver"}],
    }
    assert isc.http.post("/v2025/access-requests", headers=isc.auth, json=body).status_code == 202

    probed = isc.http.get("/_probe/submissions").json()
    sales = hex_id("ROLE", "Salesforce", "Sales Global")
    jdoe = isc.http.get("/_probe/users/jdoe").json()["id"]
    assert [(s["user"], s["item"], s["key"]) for s in probed] == [
        (jdoe, sales, "leaver-3-1"),
        (doc["id"], helpdesk.id, None),
    ]
    assert [s.item for s in isc.sim.submissions()] == [sales, helpdesk.id]
    assert isc.http.get("/_probe/users/gone").status_code == 404  # deleted identities are gone from ISC


def test_withdrawn_probe_lists_cancelled_requests(isc: Isc) -> None:
    isc.config(approval_delay=10)
    request_id = isc.revoke("jdoe", "Jira Developers").json()["newRequests"][0]["accessRequestIds"][0]
    cancel = {"accountActivityId": request_id, "comment": "rehire"}
    assert isc.http.post("/v3/access-requests/cancel", headers=isc.auth, json=cancel).status_code == 202
    jira = hex_id("ACCESS_PROFILE", "Jira", "Jira Developers")
    assert isc.http.get("/_probe/withdrawn").json() == [{"user": isc.person("jdoe")["id"], "item": jira}]


@pytest.mark.parametrize(("form", "bare", "quoted"), [("unquoted", 200, 400), ("quoted", 400, 200), ("both", 200, 200)])
def test_created_filter_date_form_is_strict(isc: Isc, form: str, bare: int, quoted: int) -> None:
    """The tenant takes only the configured date form in `created` filters; the other is a 400
    ErrorResponseDto, so the adapter's fallback has something to fall back from."""
    isc.config(created_date_form=form)
    isc.revoke("jdoe", "VPN Users")
    when = isc.rows()[0]["created"]
    for value, status in ((when, bare), (f'"{when}"', quoted)):
        resp = isc.http.get("/v3/access-request-status", params={"filters": f"created ge {value}"}, headers=isc.auth)
        assert resp.status_code == status, resp.text
        if status == 400:
            assert resp.json()["detailCode"] == "400.1 Bad Request Content"
        else:
            assert len(resp.json()) == 1
