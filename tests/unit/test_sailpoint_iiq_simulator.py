"""The IdentityIQ simulator on its own, over real HTTP: sign-in, SCIM shapes and ID formats, filters
and ListResponse paging, launches of LCM Provisioning (both body forms), the plan applied to the
identity, TaskResults over the simulator clock, approvals, failing items, malformed plans refused
as IIQ would, faults, and each switch of a contract assumption."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.simulator.demo_users import DemoAccess, DemoPerson
from app.simulator.sailpoint_iiq import (
    CLIENT_ID,
    CLIENT_SECRET,
    READER_PASSWORD,
    READER_USER,
    SPEC,
    IiqSimulator,
    create_app,
)
from tests.servers import serve_in_thread

SCIM = "/identityiq/scim/v2"
TOKEN = "/identityiq/oauth2/token"
LW = "urn:ietf:params:scim:schemas:sailpoint:1.0:LaunchedWorkflow"
TR = "urn:ietf:params:scim:schemas:sailpoint:1.0:TaskResult"
SP_USER = "urn:ietf:params:scim:schemas:sailpoint:1.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
ACCESS = f"userName,{SP_USER}:roles,{SP_USER}:entitlements"
FINANCE_RW = "CN=Finance RW,OU=Groups,DC=example,DC=com"
JDOE_AD = "CN=Jane Doe,OU=Users,DC=example,DC=com"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def plan(*requests: str, key: str = "leaver-1-1", identity: str = "jdoe") -> str:
    entries = f'<Attributes><Map><entry key="leaverCorrelationId" value="{key}"/></Map></Attributes>'
    return f'<ProvisioningPlan nativeIdentity="{identity}">{"".join(requests)}{entries}</ProvisioningPlan>'


def remove(app: str, native: str, name: str, value: str, extra: str = "") -> str:
    return (
        f'<AccountRequest application="{app}" nativeIdentity="{native}" op="Modify">'
        f'<AttributeRequest name="{name}" op="Remove" value="{value}"{extra}/></AccountRequest>'
    )


def body(plan_xml: str, form: str = "nested", identity: str = "jdoe", **inputs: str) -> dict[str, Any]:
    values = {"approvalScheme": "none", "foregroundProvisioning": "true", **inputs}
    items = [{"key": "identityName", "value": identity}, {"key": "plan", "value": plan_xml, "type": "application/xml"}]
    items += [{"key": k, "value": v} for k, v in values.items()]
    launch = {"workflowName": "LCM Provisioning", "input": items}
    return {"schemas": [LW, TR], LW: launch} if form == "nested" else {"schemas": [LW, TR], **launch}


class Iiq:
    """A simulator served on loopback, signed in with the OAuth client."""

    def __init__(self, http: httpx.Client, sim: IiqSimulator) -> None:
        self.http = http
        self.sim = sim
        self.auth = {"Authorization": f"Bearer {self.token()['access_token']}"}

    def token(self) -> dict[str, Any]:
        resp = self.http.post(
            TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
        )
        assert resp.status_code == 200, resp.text
        answer: dict[str, Any] = resp.json()
        return answer

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"{SCIM}{path}", headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def get(self, path: str, **params: str) -> Any:
        resp = self.call("GET", path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def config(self, **changes: Any) -> dict[str, Any]:
        resp = self.http.post("/_config", json=changes)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def advance(self, seconds: float) -> None:
        self.http.post("/_clock", json={"advance": seconds}).raise_for_status()

    def launch(self, launch_body: dict[str, Any], status: int = 201) -> Any:
        resp = self.call(
            "POST", "/LaunchedWorkflows", json=launch_body, headers={"Content-Type": "application/scim+json"}
        )
        assert resp.status_code == status, resp.text
        return resp.json()

    def user(self, name: str = "jdoe") -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/Users/{name}", lookupByName="true", attributes=ACCESS)
        return found

    def entitlements(self, name: str = "jdoe") -> set[str]:
        return {e["display"] for e in self.user(name)[SP_USER].get("entitlements", [])}

    def roles(self, name: str = "jdoe") -> dict[str, str]:
        return {r["display"]: r["acquired"] for r in self.user(name)[SP_USER].get("roles", [])}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[IiqSimulator, str]]:
    app = create_app()
    with serve_in_thread(app) as url:
        yield app.state.sim, url


@pytest.fixture
def iiq(served: tuple[IiqSimulator, str]) -> Iterator[Iiq]:
    sim, url = served
    with httpx.Client(base_url=url, timeout=10) as http:
        http.post("/_reset").raise_for_status()
        yield Iiq(http, sim)


# ---------------------------------------------------------------- sign-in


def test_the_token_is_opaque_lowercase_bearer_and_expires(iiq: Iiq) -> None:
    token = iiq.token()
    assert (
        token["token_type"] == "bearer"
        and token["expires_in"] == 1200
        and set(token) == {"expires_in", "token_type", "access_token"}
    )
    assert "." not in token["access_token"] and base64.b64decode(token["access_token"])
    iiq.config(token_lifetime=5)
    short = {"Authorization": f"Bearer {iiq.token()['access_token']}"}
    assert iiq.call("GET", "/Users", headers=short).status_code == 200
    iiq.advance(6)
    expired = iiq.call("GET", "/Users", headers=short)
    assert expired.status_code == 401 and expired.json() == {
        "schemas": [ERROR],
        "detail": "Unauthorized",
        "status": "401",
    }


def test_bad_credentials_and_missing_rights(iiq: Iiq) -> None:
    bad = iiq.http.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": basic(CLIENT_ID, "x")}
    )
    assert bad.status_code == 401 and bad.content == b""
    grant = iiq.http.post(
        TOKEN, data={"grant_type": "password"}, headers={"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
    )
    assert grant.status_code == 400
    reader = {"Authorization": basic(READER_USER, READER_PASSWORD)}
    assert iiq.call("GET", "/Users", headers=reader).status_code == 200
    refused = iiq.call("POST", "/LaunchedWorkflows", json=body(plan()), headers=reader)
    assert refused.status_code == 403 and refused.json()["status"] == "403"
    assert iiq.http.get(f"{SCIM}/ServiceProviderConfig").json()["filter"] == {"supported": True, "maxResults": 1000}
    iiq.config(revoke_tokens=True)
    assert iiq.call("GET", "/Users").status_code == 401


# ---------------------------------------------------------------- users, filters, paging


def test_users_are_scim_list_responses_with_iiq_ids_and_dates(iiq: Iiq) -> None:
    page = iiq.get("/Users", filter='urn:ietf:params:scim:schemas:core:2.0:User:userName eq "jdoe"')
    assert set(page) == {"schemas", "totalResults", "startIndex", "Resources"}  # no itemsPerPage
    (jdoe,) = page["Resources"]
    assert HEX32.match(jdoe["id"]) and ISO.match(jdoe["meta"]["created"])
    assert re.fullmatch(r'W/"\d{13}"', jdoe["meta"]["version"])
    assert jdoe["meta"]["location"].endswith(f"{SCIM}/Users/{jdoe['id']}")
    assert jdoe[SP_USER]["empId"] == "E1001" and jdoe[SP_USER]["legalHold"] == "false"
    assert not {"roles", "entitlements", "accounts"} & set(jdoe[SP_USER])  # only when asked for
    assert iiq.sim.user_id("jdoe") == jdoe["id"]


def test_roles_and_entitlements_when_asked_for(iiq: Iiq) -> None:
    ext = iiq.user()[SP_USER]
    assert iiq.roles() == {"Sales Global": "Assigned", "Sales Global - IT": "Detected"}
    assert len(ext["entitlements"]) == 9 and all(e["$ref"].startswith("http") for e in ext["entitlements"])
    finance = next(e for e in ext["entitlements"] if e["display"] == "Finance RW")
    assert finance["application"] == "Active Directory" and finance["accountName"] == JDOE_AD
    ent = iiq.get(f"/Entitlements/{finance['value']}")
    assert (ent["attribute"], ent["value"], ent["application"][0]["displayName"]) == (
        "memberOf",
        FINANCE_RW,
        "Active Directory",
    )
    admins = next(e for e in ext["entitlements"] if e["display"] == "Domain Admins")
    assert iiq.get(f"/Entitlements/{admins['value']}")["classifications"][0]["classification"]["name"] == "Privileged"
    business = iiq.get("/Roles/Sales Global", lookupByName="true")
    it = next(r for r in ext["roles"] if r["acquired"] == "Detected")
    assert [r["value"] for r in business["requirements"]] == [it["value"]] and it["application"] == "Salesforce"


@pytest.mark.parametrize(
    ("flt", "found"),
    [
        ('urn:ietf:params:scim:schemas:core:2.0:User:emails.value eq "twins@example.com"', {"twin1", "twin2"}),
        ('urn:ietf:params:scim:schemas:sailpoint:1.0:User:empId eq "E1002"', {"asmith"}),
        ('userName sw "twin" and emails.value co "twins"', {"twin1", "twin2"}),
        ('userName eq "JDOE"', {"jdoe"}),
        ('userName eq "gone"', set()),  # a deleted identity is gone from IIQ
    ],
)
def test_user_filters(iiq: Iiq, flt: str, found: set[str]) -> None:
    assert {u["userName"] for u in iiq.get("/Users", filter=flt)["Resources"]} == found


@pytest.mark.parametrize(
    ("flt", "scim_type"),
    [
        ("userName eq jdoe", "invalidFilter"),
        ('userName eq "a" or userName eq "b"', "invalidFilter"),
        ('userName pr "x"', "invalidFilter"),
        ('urn:ietf:params:scim:schemas:sailpoint:1.0:User:shoeSize eq "9"', "invalidValue"),
    ],
)
def test_bad_filters_are_scim_errors(iiq: Iiq, flt: str, scim_type: str) -> None:
    resp = iiq.call("GET", "/Users", params={"filter": flt})
    assert resp.status_code == 400
    error = resp.json()
    assert error["schemas"] == [ERROR] and error["scimType"] == scim_type and error["status"] == "400"


def test_paging_by_start_index_and_count_capped_at_max_results(iiq: Iiq) -> None:
    everyone = iiq.get("/Users", sortBy="userName")
    total = everyone["totalResults"]
    assert total == 45 and len(everyone["Resources"]) == total
    page = iiq.get("/Users", sortBy="userName", startIndex="3", count="2")
    assert (page["startIndex"], page["totalResults"]) == (3, total)
    assert [u["id"] for u in page["Resources"]] == [u["id"] for u in everyone["Resources"][2:4]]
    iiq.config(page_size_max=3)
    assert len(iiq.get("/Users", count="50")["Resources"]) == 3
    assert iiq.get("/Users", startIndex=str(total + 1))["Resources"] == []
    assert iiq.call("GET", "/Users", params={"count": "many"}).json()["scimType"] == "invalidValue"


def test_accounts_by_dn_and_by_owner(iiq: Iiq) -> None:
    (account,) = iiq.get("/Accounts", filter='nativeIdentity eq "cn=jdoe,ou=users,o=example"')["Resources"]
    jdoe = iiq.sim.user_id("jdoe")
    assert account["identity"]["value"] == jdoe and account["application"]["displayName"] == "Corporate Directory"
    mine = iiq.get("/Accounts", filter=f'identity.value eq "{jdoe}"')["Resources"]
    assert len(mine) == 7 and all(a["active"] for a in mine)
    assert iiq.get(f"/Accounts/{account['id']}")["nativeIdentity"] == "cn=jdoe,ou=users,o=example"
    iiq.config(account_owner_filter=False)
    refused = iiq.call("GET", "/Accounts", params={"filter": f'identity.value eq "{jdoe}"'})
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidFilter"
    assert len(iiq.get("/Accounts", filter=f'identity eq "{jdoe}"')["Resources"]) == 7


def test_unknown_resources_are_scim_404s(iiq: Iiq) -> None:
    for path in ("/Users/" + "0" * 32, "/Roles/nope", "/Entitlements/nope", "/TaskResults/nope", "/IdentityRequests"):
        resp = iiq.call("GET", path)
        assert resp.status_code == 404 and resp.json()["schemas"] == [ERROR], path


# ---------------------------------------------------------------- launches


@pytest.mark.parametrize("form", ["nested", "top-level"])
def test_a_foreground_launch_completes_inside_the_call_in_the_real_shape(iiq: Iiq, form: str) -> None:
    answer = iiq.launch(body(plan(remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW)), form))
    assert HEX32.match(answer["id"]) and answer["name"].startswith("LCM Provisioning - ")
    assert answer[LW]["workflowName"] == answer["name"]  # the TaskResult name, not the workflow's
    assert answer[LW]["input"] == [{}] and re.fullmatch(r"\d{10}", answer[LW]["identityRequestId"])
    assert answer["attributes"][0] == {"key": "identityRequestId", "value": answer[LW]["identityRequestId"]}
    assert answer["completionStatus"] == "Success" and ISO.match(answer["completed"])
    assert answer["meta"]["location"].endswith(f"/TaskResults/{answer['id']}") and answer["pendingSignoffs"] == 0
    assert "Finance RW" not in iiq.entitlements()
    (record,) = iiq.http.get("/_state/plans").json()
    assert (record["form"], record["key"], record["status"]) == (form, "leaver-1-1", 201)
    (sub,) = iiq.sim.submissions()
    assert (sub.user, sub.key) == (iiq.sim.user_id("jdoe"), "leaver-1-1")
    assert iiq.get(f"/TaskResults/{answer['id']}")["completionStatus"] == "Success"


def test_the_spec_form_of_attributes_is_a_switch(iiq: Iiq) -> None:
    iiq.config(attributes_as_object=True)
    answer = iiq.launch(body(plan()))
    assert "attributes" not in answer and answer["Attributes"]["identityRequestId"] == answer[LW]["identityRequestId"]


def test_a_site_reading_one_body_form_refuses_the_other(iiq: Iiq) -> None:
    iiq.config(accepted_forms=["top-level"])
    refused = iiq.launch(body(plan()), status=400)
    assert refused["scimType"] == "invalidValue" and iiq.sim.submissions() == []
    iiq.launch(body(plan(), "top-level"))


def test_assigned_role_removal_takes_what_only_it_granted(iiq: Iiq) -> None:
    iiq.launch(body(plan(remove("IIQ", "jdoe", "assignedRoles", "Sales Global"))))
    assert iiq.roles() == {}
    assert "Salesforce Sales User" not in iiq.entitlements() and "Finance RW" in iiq.entitlements()


def test_a_detected_role_removal_takes_its_profile(served: tuple[IiqSimulator, str], iiq: Iiq) -> None:
    iiq.launch(body(plan(remove("IIQ", "jdoe", "detectedRoles", "Sales Global - IT"))))
    assert iiq.roles() == {"Sales Global": "Assigned"} and "Salesforce Sales User" not in iiq.entitlements()


def test_disable_and_delete_accounts(iiq: Iiq) -> None:
    jdoe = iiq.sim.user_id("jdoe")
    disable = '<AccountRequest application="GitHub" nativeIdentity="jdoe" op="Disable"/>'
    delete = '<AccountRequest application="Jira" nativeIdentity="jdoe" op="Delete"/>'
    iiq.launch(body(plan(disable, delete)))
    accounts = {
        a["application"]["displayName"]: a for a in iiq.get("/Accounts", filter=f'identity eq "{jdoe}"')["Resources"]
    }
    assert accounts["GitHub"]["active"] is False and "Jira" not in accounts
    assert "Jira Developers" not in iiq.entitlements()


def test_removing_what_is_not_held_changes_nothing_but_is_counted(iiq: Iiq) -> None:
    finance = remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW)
    iiq.launch(body(plan(finance)))
    before = iiq.user()
    again = iiq.launch(body(plan(finance, key="leaver-1-2")))
    assert again["completionStatus"] == "Success" and iiq.user()[SP_USER] == before[SP_USER]
    assert [s.key for s in iiq.sim.submissions()] == ["leaver-1-1", "leaver-1-2"]  # a second launch shows


def test_escaped_values_are_read_as_values(iiq: Iiq) -> None:
    person = DemoPerson(
        "rnd", "R D", "rnd@example.com", "E9", "cn=rnd", (DemoAccess("entitlement", 'R&D "<Labs>"', "Wiki"),)
    )
    with iiq.sim.lock:
        iiq.sim.add_people([person])
    request = ET.Element("AccountRequest", {"application": "Wiki", "nativeIdentity": "rnd", "op": "Modify"})
    ET.SubElement(request, "AttributeRequest", {"name": "groups", "op": "Remove", "value": 'R&D "<Labs>"'})
    iiq.launch(body(plan(ET.tostring(request, encoding="unicode"), identity="rnd"), identity="rnd"))
    assert iiq.entitlements("rnd") == set()


# ---------------------------------------------------------------- over time


def test_approvals_hold_the_launch_then_it_completes(iiq: Iiq) -> None:
    iiq.config(approval_delay=30)
    answer = iiq.launch(body(plan(remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW))))
    assert "completionStatus" not in answer and "completed" not in answer and answer["pendingSignoffs"] == 1
    items = ET.fromstring(answer[LW]["approvalSet"]).findall("ApprovalItem")
    assert [(i.get("name"), i.get("value"), i.get("operation"), i.get("state")) for i in items] == [
        ("memberOf", FINANCE_RW, "Remove", None)
    ]
    assert "Finance RW" in iiq.entitlements()
    iiq.advance(31)
    task = iiq.get(f"/TaskResults/{answer['id']}")
    assert task["completionStatus"] == "Success" and task["pendingSignoffs"] == 0
    assert "Finance RW" not in iiq.entitlements()
    approvals = iiq.get(f"/LaunchedWorkflow/{answer['id']}")[LW]["approvalSet"]
    assert ET.fromstring(approvals).find("ApprovalItem").get("state") == "Finished"  # type: ignore[union-attr]
    assert iiq.get(f"/LaunchedWorkflows/{answer['id']}")["id"] == answer["id"]


def test_background_provisioning_takes_the_fulfil_delay(iiq: Iiq) -> None:
    iiq.config(fulfil_delay=10)
    answer = iiq.launch(
        body(plan(remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW)), foregroundProvisioning="false")
    )
    assert "completionStatus" not in answer and "Finance RW" in iiq.entitlements()
    iiq.advance(11)
    assert iiq.get(f"/TaskResults/{answer['id']}")["completionStatus"] == "Success"


def test_a_foreground_launch_on_a_queueing_connector_completes_before_its_change_lands(iiq: Iiq) -> None:
    iiq.config(fulfil_delay=10)
    answer = iiq.launch(body(plan(remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW))))
    assert answer["completionStatus"] == "Success" and "Finance RW" in iiq.entitlements()
    iiq.advance(11)
    assert "Finance RW" not in iiq.entitlements()


@pytest.mark.parametrize(
    ("outcome", "status", "terminated", "removed"),
    [
        ("rejected", "Success", False, False),
        ("failed", "Error", False, False),
        ("temp_error", "TempError", False, False),
        ("cancelled", "Terminated", True, False),
        ("warning", "Warning", False, True),
    ],
)
def test_outcomes(iiq: Iiq, outcome: str, status: str, terminated: bool, removed: bool) -> None:
    iiq.config(outcome=outcome)
    answer = iiq.launch(body(plan(remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW))))
    task = iiq.get(f"/TaskResults/{answer['id']}")
    assert (task["completionStatus"], task["terminated"], "completed" in task) == (status, terminated, True)
    assert ("Finance RW" not in iiq.entitlements()) is removed
    if outcome == "rejected":
        approvals = ET.fromstring(answer[LW]["approvalSet"])
        assert [i.get("state") for i in approvals.iter("ApprovalItem")] == ["Rejected"]
    if outcome in ("failed", "temp_error", "warning"):
        assert task["messages"]


def test_a_plan_failing_on_one_item_applies_the_rest(iiq: Iiq) -> None:
    iiq.config(fail_items=["CN=VPN Users,OU=Groups,DC=example,DC=com"])
    vpn = remove("Active Directory", JDOE_AD, "memberOf", "CN=VPN Users,OU=Groups,DC=example,DC=com")
    answer = iiq.launch(body(plan(vpn, remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW))))
    assert answer["completionStatus"] == "Error" and "VPN Users" in answer["messages"][0]
    assert "VPN Users" in iiq.entitlements() and "Finance RW" not in iiq.entitlements()


def test_a_removed_entitlement_stays_listed_for_the_verify_delay(iiq: Iiq) -> None:
    iiq.config(verify_delay=60)
    iiq.launch(body(plan(remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW))))
    assert "Finance RW" in iiq.entitlements()
    iiq.advance(61)
    assert "Finance RW" not in iiq.entitlements()


def test_task_results_are_pruned_after_expiry(iiq: Iiq) -> None:
    iiq.config(prune_after=3600, token_lifetime=86400)
    iiq.auth = {"Authorization": f"Bearer {iiq.token()['access_token']}"}
    answer = iiq.launch(body(plan()))
    assert iiq.call("GET", f"/TaskResults/{answer['id']}").status_code == 200
    iiq.advance(3601)
    gone = iiq.call("GET", f"/TaskResults/{answer['id']}")
    assert gone.status_code == 404 and gone.json()["schemas"] == [ERROR]


def test_launches_are_listed_by_target_launcher_and_time(iiq: Iiq) -> None:
    iiq.config(approval_delay=30)
    first = iiq.launch(body(plan()))
    iiq.launch(body(plan(identity="asmith"), identity="asmith"))
    flt = 'targetName eq "jdoe" and launcher eq "svc-leaver"'
    found = iiq.get("/LaunchedWorkflows", filter=flt, sortBy="launched", sortOrder="descending")["Resources"]
    assert [f["id"] for f in found] == [first["id"]] and "approvalSet" in found[0][LW]
    assert iiq.get("/LaunchedWorkflows", filter='launched gt "2000-01-01T00:00:00.000-05:00"')["totalResults"] == 2
    iiq.config(launch_filters=False)
    refused = iiq.call("GET", "/LaunchedWorkflows", params={"filter": flt})
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidFilter"


# ---------------------------------------------------------------- plans IIQ refuses


@pytest.mark.parametrize(
    ("plan_xml", "fragment"),
    [
        ("<ProvisioningPlan", "Unable to parse"),
        ('<!DOCTYPE p [<!ENTITY x "y">]><ProvisioningPlan>&x;</ProvisioningPlan>', "Unable to parse"),
        ("<Plan/>", "Expected a ProvisioningPlan"),
        (
            '<ProvisioningPlan><AccountRequest application="AD" op="Explode"/></ProvisioningPlan>',
            "Unknown AccountRequest op",
        ),
        ('<ProvisioningPlan><AccountRequest op="Modify"/></ProvisioningPlan>', "application"),
        (
            '<ProvisioningPlan><AccountRequest application="AD" nativeIdentity="x" op="Delete"/>'
            '<AccountRequest application="AD" nativeIdentity="x" op="Modify"/></ProvisioningPlan>',
            "Conflicting",
        ),
    ],
)
def test_plans_iiq_cannot_read_are_refused_and_change_nothing(iiq: Iiq, plan_xml: str, fragment: str) -> None:
    refused = iiq.launch(body(plan_xml), status=400)
    assert fragment in refused["detail"] and refused["status"] == "400"
    assert iiq.sim.submissions() == [] and iiq.http.get("/_state/plans").json()[0]["status"] == 400


def test_other_refusals(iiq: Iiq) -> None:
    iiq.config(malformed_plan_status=500)
    assert iiq.launch(body("<ProvisioningPlan"), status=500)["status"] == "500"
    wrong = body(plan())
    wrong[LW]["workflowName"] = "Nope"
    assert "Unable to find workflow" in iiq.launch(wrong, status=500)["detail"]
    untyped = body(plan())
    untyped[LW]["input"][1].pop("type")
    assert "application/xml" in iiq.launch(untyped, status=400)["detail"]
    nameless = body(plan())
    nameless[LW]["input"].pop(0)
    assert "identityName" in iiq.launch(nameless, status=400)["detail"]
    assert (
        iiq.call(
            "POST", "/LaunchedWorkflows", content=b"{", headers={"Content-Type": "application/scim+json"}
        ).status_code
        == 400
    )
    unknown = iiq.launch(body(plan(), identity="nobody"))
    assert unknown["completionStatus"] == "Error" and "nobody" in unknown["messages"][0]
    assert iiq.sim.submissions() == []


# ---------------------------------------------------------------- faults and switches


def test_a_lost_answer_still_counts_the_launch(iiq: Iiq) -> None:
    rule = {"method": "POST", "path": f"{SCIM}/LaunchedWorkflows", "status": 500, "when": "after", "count": 1}
    iiq.http.post("/_faults", json={"rules": [rule]}).raise_for_status()
    resp = iiq.call(
        "POST", "/LaunchedWorkflows", json=body(plan(remove("Active Directory", JDOE_AD, "memberOf", FINANCE_RW)))
    )
    assert resp.status_code == 500 and resp.json()["schemas"] == [ERROR]
    assert len(iiq.sim.submissions()) == 1 and "Finance RW" not in iiq.entitlements()
    iiq.http.post("/_faults", json={"rate_429": 1.0, "retry_after": 2}).raise_for_status()
    throttled = iiq.call("GET", "/Users")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2"


def test_a_role_held_twice_is_removed_one_assignment_at_a_time(iiq: Iiq) -> None:
    twice = DemoPerson("dup", "Dup Lee", "dup@example.com", "E8", "cn=dup", (DemoAccess("role", "Auditor", "GRC"),) * 2)
    with iiq.sim.lock:
        iiq.sim.add_people([twice])
    iiq.config(expose_assignment_ids=True)
    roles = iiq.user("dup")[SP_USER]["roles"]
    assert len(roles) == 2 and len({r["assignmentId"] for r in roles}) == 2
    second = roles[1]["assignmentId"]
    iiq.launch(
        body(
            plan(remove("IIQ", "dup", "assignedRoles", "Auditor", f' assignmentId="{second}"'), identity="dup"),
            identity="dup",
        )
    )
    (left,) = iiq.user("dup")[SP_USER]["roles"]
    assert left["assignmentId"] == roles[0]["assignmentId"]
    (sub,) = iiq.sim.submissions()
    assert sub.item == f"{roles[0]['value']}~{second}"


def test_config_refuses_unknown_keys_in_scim_shape(iiq: Iiq) -> None:
    resp = iiq.http.post("/_config", json={"nope": 1})
    assert resp.status_code == 400 and resp.json()["schemas"] == [ERROR] and "nope" in resp.json()["detail"]
    assert iiq.http.post("/_config", json={"outcome": "exploded"}).status_code == 400
    assert iiq.http.get("/_config").json()["verify_delay"] == 0


def test_the_spec_points_tests_at_the_simulator() -> None:
    target = SPEC.demo_target("http://h:1/sim/sailpoint-iiq", "iiq")
    assert target.base_url == "http://h:1/sim/sailpoint-iiq/identityiq/scim/v2"
    assert target.token_url == "http://h:1/sim/sailpoint-iiq/identityiq/oauth2/token"
    assert SPEC.withdraws is False and SPEC.small_pages == {"page_size": 3}
