"""The IdentityIQ adapter on its own: the plan XML and launch bodies of the contract's examples,
escaping by the serialiser, the status mapping table, `attributes` in both shapes, SCIM paging,
identity lookup, errors and sign-in. IIQ is faked with pytest-httpx here; the adapter against
the simulator (and each assumption switched, with the option that repairs it) is in the second half."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import stamina
from defusedxml import ElementTree as SafeET
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.sailpoint_iiq import SailPointIiqClient, task_state
from app.iga.sailpoint_iiq.wire import attribute_map, identity_request_id
from app.settings import HttpSettings, TargetSettings
from app.simulator.base import FaultRule, Faults
from app.simulator.sailpoint_iiq import READER_PASSWORD, READER_USER, IiqSimulator, create_app, demo_target
from tests.servers import serve_in_thread

BASE = "https://iiq.acme.com/identityiq/scim/v2"
TOKEN_URL = "https://iiq.acme.com/identityiq/oauth2/token"
LW = "urn:ietf:params:scim:schemas:sailpoint:1.0:LaunchedWorkflow"
TR = "urn:ietf:params:scim:schemas:sailpoint:1.0:TaskResult"
SP_USER = "urn:ietf:params:scim:schemas:sailpoint:1.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
KEY = "lv-01JD3K8Q2V7XAMPLE"
TASK = "0a0c8e2a8f9a1d55818f9c0b7e2e3fa1"
JDOE = IgaUser(id="0a0c8e2a8f1b1c7e818f1b2d4a5e0123", display_name="John Doe", extra={"userName": "jdoe"})
AD_ACCOUNT = "CN=John Doe,OU=Users,DC=acme,DC=com"
ASSIGNED = AccessItem(
    "0a0c8e2a8f1b1c7e818f1b2c8d3f0a12",
    "role",
    "Finance Analyst",
    "IIQ",
    extra={"iiq_kind": "assigned_role", "role_name": "Finance Analyst"},
)
DETECTED = AccessItem(
    "0a0c8e2a8f1b1c7e818f1b2c8d3f0a13",
    "role",
    "AD Finance Access - IT",
    "IIQ",
    extra={"iiq_kind": "detected_role", "role_name": "AD Finance Access - IT"},
)
FINANCE_RW = AccessItem(
    "0a0c8e2a8f1b1c7e818f1b2c9e7a0789",
    "entitlement",
    "Finance-RW",
    "Active Directory",
    extra={
        "iiq_kind": "entitlement",
        "application": "Active Directory",
        "account": AD_ACCOUNT,
        "attribute": "memberOf",
        "value": "CN=Finance-RW,OU=Groups,DC=acme,DC=com",
    },
)
SALESFORCE = AccessItem(
    "0a0c8e2a8f1b1c7e818f1b2e11c40456",
    "account",
    "jdoe",
    "Salesforce",
    extra={"iiq_kind": "account", "application": "Salesforce", "native_identity": "005Dn000001Sv6AIAS"},
)

#: The contract's plan (§5), as ElementTree writes it: attributes sorted, empty elements `<x />`.
CONTRACT_PLAN = (
    '<ProvisioningPlan nativeIdentity="jdoe">'
    '<AccountRequest application="IIQ" nativeIdentity="jdoe" op="Modify">'
    '<AttributeRequest name="assignedRoles" op="Remove" value="Finance Analyst" />'
    '<AttributeRequest name="detectedRoles" op="Remove" value="AD Finance Access - IT" />'
    "</AccountRequest>"
    '<AccountRequest application="Active Directory" nativeIdentity="CN=John Doe,OU=Users,DC=acme,DC=com" op="Modify">'
    '<AttributeRequest name="memberOf" op="Remove" value="CN=Finance-RW,OU=Groups,DC=acme,DC=com" />'
    "</AccountRequest>"
    '<Attributes><Map><entry key="source" value="LCM" />'
    '<entry key="leaverCorrelationId" value="lv-01JD3K8Q2V7XAMPLE" />'
    "</Map></Attributes></ProvisioningPlan>"
)


def removal(item: AccessItem, n: int = 1) -> RemovalRequest:
    return RemovalRequest(item=item, plan_item_id=n, reason="Leaver: remove all remaining access")


def make_target(**options: Any) -> TargetSettings:
    return TargetSettings(
        name="iiq-test",
        system="sailpoint-iiq",
        base_url=BASE,
        client_id="leaver-client",
        client_secret=SecretStr("s3cret-value"),
        options={"launcher": "svc-leaver", **options},
        http=HttpSettings(requests_per_second=1000, attempts=3, retry_budget_seconds=5),
    )


def launch_answer(**changes: Any) -> dict[str, Any]:
    """The contract's 201 (§5): a real 8.3 answer's shape."""
    answer: dict[str, Any] = {
        "id": TASK,
        "name": "LCM Provisioning - 4711",
        "type": "LCM",
        "taskDefinition": "Workflow Launcher",
        "launcher": "svc-leaver",
        "targetClass": "Identity",
        "targetName": "jdoe",
        "launched": "2026-11-21T00:00:03.114-05:00",
        "completed": "2026-11-21T00:00:05.098-05:00",
        "completionStatus": "Success",
        "terminated": False,
        "partitioned": False,
        "pendingSignoffs": 0,
        "messages": [],
        "attributes": [
            {"key": "identityRequestId", "value": "0000004711"},
            {"key": "workflowCaseId", "value": "0a0c8e2a8f9a1d55818f9c0b7e2e3fa2"},
        ],
        LW: {
            "workflowName": "NBO_WF_Leaver - 12",
            "identityRequestId": "0000004711",
            "workflowCaseId": "0a0c8e2a8f9a1d55818f9c0b7e2e3fa2",
            "retries": 0,
            "input": [{}],
        },
        "schemas": [LW, TR],
        "meta": {"resourceType": "LaunchedWorkflow", "location": f"{BASE}/TaskResults/{TASK}"},
    }
    answer.update(changes)
    return answer


Handler = Callable[[httpx.Request], httpx.Response]


class FakeIiq:
    """Routes of a fake IIQ by (method, path); every request kept. The token endpoint is built in."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[httpx.Request] = []
        self.tokens = 0

    def on(self, method: str, path: str, status: int = 200, body: Any = None) -> None:
        self.routes[(method, path)] = lambda request: httpx.Response(status, json=body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url) == TOKEN_URL:
            self.tokens += 1
            return httpx.Response(
                200, json={"expires_in": 1200, "token_type": "bearer", "access_token": f"tok{self.tokens}"}
            )
        path = request.url.path.removeprefix("/identityiq/scim/v2")
        handler = self.routes.get((request.method, path))
        if handler is None:
            body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": "Not Found", "status": "404"}
            return httpx.Response(404, json=body)
        return handler(request)

    def api(self) -> list[httpx.Request]:
        return [r for r in self.requests if str(r.url) != TOKEN_URL]

    def query(self, n: int) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(str(self.api()[n].url)).query).items()}


@pytest.fixture
def fake(httpx_mock: HTTPXMock) -> FakeIiq:
    hub = FakeIiq()
    httpx_mock.add_callback(hub, is_reusable=True, is_optional=True)
    return hub


@pytest.fixture
async def client() -> AsyncIterator[SailPointIiqClient]:
    c = SailPointIiqClient(make_target())
    yield c
    await c.aclose()


# ---------------------------------------------------------------- the plan and the launch body


def test_plan_xml_is_the_contract_example(client: SailPointIiqClient) -> None:
    batch = [removal(i, n) for n, i in enumerate([ASSIGNED, DETECTED, FINANCE_RW])]
    assert client.plan_xml(JDOE, batch, KEY) == CONTRACT_PLAN


def test_an_account_is_disabled_in_a_plan_of_its_own(client: SailPointIiqClient) -> None:
    batches = client.batch_items([removal(SALESFORCE, 1), removal(FINANCE_RW, 2), removal(ASSIGNED, 3)])
    assert [[r.item.id for r in b] for b in batches] == [[ASSIGNED.id, FINANCE_RW.id], [SALESFORCE.id]]
    plan = client.plan_xml(JDOE, batches[1], KEY)
    assert plan.startswith(
        '<ProvisioningPlan nativeIdentity="jdoe">'
        '<AccountRequest application="Salesforce" nativeIdentity="005Dn000001Sv6AIAS" op="Disable" />'
    )
    deleting = SailPointIiqClient(make_target(account_op="Delete"))
    assert 'op="Delete"' in deleting.plan_xml(JDOE, batches[1], KEY)


def test_values_are_escaped_by_the_serialiser_and_read_back_unchanged(client: SailPointIiqClient) -> None:
    nasty = 'CN=R&D "Labs" <all>,OU=Groups\nDC=acme\'s'
    item = AccessItem("e1", "entitlement", "R&D", extra={**FINANCE_RW.extra, "value": nasty, "account": "a&b"})
    plan = client.plan_xml(JDOE, [removal(item)], 'leaver-1-1"><x/>')
    assert "&amp;" in plan and "&lt;all&gt;" in plan and "&quot;Labs&quot;" in plan and "&#10;" in plan
    root = SafeET.fromstring(plan)
    request = root.find("AccountRequest")
    assert request is not None and request.get("nativeIdentity") == "a&b"
    attr = request.find("AttributeRequest")
    assert attr is not None and attr.get("value") == nasty
    assert [e.get("value") for e in root.iter("entry")] == ["LCM", 'leaver-1-1"><x/>']


def test_a_role_held_twice_names_the_assignment_where_known(client: SailPointIiqClient) -> None:
    twice = AccessItem(
        "r1~9f", "role", "Benefits", extra={**ASSIGNED.extra, "role_name": "Benefits", "assignment_id": "9f"}
    )
    plan = client.plan_xml(JDOE, [removal(twice)], KEY)
    assert '<AttributeRequest assignmentId="9f" name="assignedRoles" op="Remove" value="Benefits" />' in plan


def test_items_without_what_a_plan_needs_are_refused_before_any_call(client: SailPointIiqClient) -> None:
    for item in (
        AccessItem("x", "access_profile", "X"),
        AccessItem("y", "entitlement", "Y", extra={"iiq_kind": "entitlement", "application": "AD"}),
    ):
        with pytest.raises(IgaPermanentError):
            client.plan_xml(JDOE, [removal(item)], KEY)
    with pytest.raises(IgaPermanentError, match="userName"):
        client.plan_xml(IgaUser(id="1"), [removal(FINANCE_RW)], KEY)


def test_launch_body_nested_is_the_guides_form(client: SailPointIiqClient) -> None:
    body = client.launch_body(JDOE, [removal(i) for i in (ASSIGNED, DETECTED, FINANCE_RW)], KEY)
    assert body == {
        "schemas": [LW, TR],
        LW: {
            "workflowName": "LCM Provisioning",
            "input": [
                {"key": "identityName", "value": "jdoe"},
                {"key": "plan", "value": CONTRACT_PLAN, "type": "application/xml"},
                {"key": "flow", "value": "AccessRequest"},
                {"key": "source", "value": "LCM"},
                {"key": "launcher", "value": "svc-leaver"},
                {"key": "targetClass", "value": "Identity"},
                {"key": "targetName", "value": "jdoe"},
                {"key": "approvalScheme", "value": "none"},
                {"key": "notificationScheme", "value": "none"},
                {"key": "policyScheme", "value": "none"},
                {"key": "foregroundProvisioning", "value": "true"},
                {"key": "leaverCorrelationId", "value": KEY},
            ],
        },
    }


def test_the_top_level_form_and_every_input_are_settings() -> None:
    options = {
        "body_form": "top-level",
        "workflow_name": "Acme Leaver Provisioning",
        "approval_scheme": "manager",
        "foreground_provisioning": False,
        "source": "WebService",
    }
    client = SailPointIiqClient(make_target(**options))
    body = client.launch_body(JDOE, [removal(FINANCE_RW)], KEY)
    assert set(body) == {"schemas", "workflowName", "input"} and body["workflowName"] == "Acme Leaver Provisioning"
    inputs = {i["key"]: i["value"] for i in body["input"]}
    assert inputs["approvalScheme"] == "manager" and inputs["foregroundProvisioning"] == "false"
    assert inputs["source"] == "WebService" and '<entry key="source" value="WebService" />' in inputs["plan"]


def test_batches_put_roles_first_and_hold_fifty_by_default(client: SailPointIiqClient) -> None:
    ents = [AccessItem(f"e{n}", "entitlement", f"E{n}", extra=FINANCE_RW.extra) for n in range(60)]
    batches = client.batch_items([removal(e, n) for n, e in enumerate(ents)] + [removal(DETECTED), removal(ASSIGNED)])
    assert [len(b) for b in batches] == [50, 12]
    assert [r.item.id for r in batches[0][:2]] == [ASSIGNED.id, DETECTED.id]


# ---------------------------------------------------------------- launching


async def test_a_launch_posts_scim_json_and_keeps_the_task_result_id(fake: FakeIiq, client: SailPointIiqClient) -> None:
    fake.on("POST", "/LaunchedWorkflows", 201, launch_answer())
    batch = [removal(ASSIGNED, 1), removal(FINANCE_RW, 2)]
    refs = await client.submit_removals(JDOE, batch, KEY)

    (sent,) = fake.api()
    assert sent.headers["content-type"] == "application/scim+json" and sent.headers["accept"] == "application/scim+json"
    assert sent.headers["authorization"] == "Bearer tok1"
    token_call = fake.requests[0]
    assert token_call.headers["authorization"] == "Basic " + base64.b64encode(b"leaver-client:s3cret-value").decode()
    assert token_call.content == b"grant_type=client_credentials"
    assert json.loads(sent.content) == client.launch_body(JDOE, batch, KEY)
    assert [(r.item_id, r.request_id, r.tracking_id, r.status) for r in refs] == [
        (ASSIGNED.id, "0000004711", f"{TASK}:{ASSIGNED.id}", IgaStatus.COMPLETED),
        (FINANCE_RW.id, "0000004711", f"{TASK}:{FINANCE_RW.id}", IgaStatus.COMPLETED),
    ]


async def test_a_launch_still_running_is_pending_and_its_number_read_from_attributes(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    answer = launch_answer(completionStatus=None, completed=None, Attributes={"identityRequestId": "0000000042"})
    del answer[LW]["identityRequestId"]
    answer["attributes"] = []
    fake.on("POST", "/LaunchedWorkflows", 201, answer)
    (ref,) = await client.submit_removals(JDOE, [removal(FINANCE_RW)], KEY)
    assert (ref.status, ref.raw_status, ref.request_id) == (IgaStatus.PENDING, "Running", "0000000042")


async def test_a_rejected_approval_in_the_answer_rejects_only_its_item(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    approvals = (
        "<ApprovalSet>"
        '<ApprovalItem application="Active Directory" name="memberOf" operation="Remove" state="Rejected"'
        ' value="CN=Finance-RW,OU=Groups,DC=acme,DC=com"/>'
        '<ApprovalItem application="IIQ" name="assignedRoles" operation="Remove" state="Finished"'
        ' value="Finance Analyst"/>'
        "</ApprovalSet>"
    )
    answer = launch_answer()
    answer[LW]["approvalSet"] = approvals
    fake.on("POST", "/LaunchedWorkflows", 201, answer)
    refs = await client.submit_removals(JDOE, [removal(ASSIGNED), removal(FINANCE_RW)], KEY)
    assert [r.status for r in refs] == [IgaStatus.COMPLETED, IgaStatus.REJECTED]


async def test_a_server_error_on_launch_is_uncertain_and_never_retried(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    fake.on(
        "POST", "/LaunchedWorkflows", 500, {"schemas": [], "detail": "java.lang.NullPointerException", "status": "500"}
    )
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(JDOE, [removal(FINANCE_RW)], KEY)
    assert len(fake.api()) == 1


async def test_a_201_without_a_task_result_id_is_uncertain(fake: FakeIiq, client: SailPointIiqClient) -> None:
    fake.on("POST", "/LaunchedWorkflows", 201, {"schemas": [LW]})
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(JDOE, [removal(FINANCE_RW)], KEY)


async def test_a_400_to_the_first_launch_is_tried_once_in_the_other_form(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    def only_top_level(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "workflowName" in body:
            return httpx.Response(201, json=launch_answer())
        error = {"schemas": [], "scimType": "invalidValue", "detail": "workflowName is required", "status": "400"}
        return httpx.Response(400, json=error)

    fake.routes[("POST", "/LaunchedWorkflows")] = only_top_level
    await client.submit_removals(JDOE, [removal(FINANCE_RW)], KEY)
    await client.submit_removals(JDOE, [removal(ASSIGNED)], KEY)
    forms = ["nested" if LW in json.loads(r.content) else "top-level" for r in fake.api()]
    assert forms == ["nested", "top-level", "top-level"]  # the form that worked is kept


async def test_once_a_form_worked_a_400_is_the_iga_refusing(fake: FakeIiq, client: SailPointIiqClient) -> None:
    fake.on("POST", "/LaunchedWorkflows", 201, launch_answer())
    await client.submit_removals(JDOE, [removal(FINANCE_RW)], KEY)
    refusal = {"schemas": [], "scimType": "invalidValue", "detail": "Unable to parse the plan", "status": "400"}
    fake.on("POST", "/LaunchedWorkflows", 400, refusal)
    with pytest.raises(IgaPermanentError, match="invalidValue: Unable to parse the plan"):
        await client.submit_removals(JDOE, [removal(ASSIGNED)], KEY)
    assert len(fake.api()) == 2


# ---------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("answer", "expected", "raw"),
    [
        ({}, IgaStatus.PENDING, "Running"),
        ({"completionStatus": None, "completed": None}, IgaStatus.PENDING, "Running"),
        ({"completionStatus": "Success", "completed": "x"}, IgaStatus.COMPLETED, "Success"),
        ({"completionStatus": "Warning", "completed": "x"}, IgaStatus.COMPLETED, "Warning"),
        ({"completionStatus": "Error", "completed": "x"}, IgaStatus.FAILED, "Error"),
        ({"completionStatus": "TempError"}, IgaStatus.PENDING, "TempError"),
        ({"completionStatus": "TempError", "completed": "x"}, IgaStatus.FAILED, "TempError"),
        ({"completionStatus": "Terminated", "completed": "x"}, IgaStatus.CANCELLED, "Terminated"),
        ({"terminated": True}, IgaStatus.CANCELLED, "Terminated"),
        ({"completionStatus": "Paused"}, IgaStatus.PENDING, "Paused"),
    ],
)
def test_status_mapping(answer: dict[str, Any], expected: IgaStatus, raw: str) -> None:
    state = task_state(answer)
    assert (state.status, state.raw_status) == (expected, raw)


def test_messages_come_back_with_the_state() -> None:
    state = task_state({"completionStatus": "Error", "messages": ["Connection refused", {"text": "ldap down"}]})
    assert state.message == "Connection refused; ldap down"


@pytest.mark.parametrize(
    "doc",
    [
        {"attributes": [{"key": "identityRequestId", "value": "0000000007"}]},
        {"Attributes": {"identityRequestId": "0000000007"}},
        {LW: {"identityRequestId": "0000000007"}, "attributes": [{"key": "identityRequestId", "value": "x"}]},
    ],
)
def test_attributes_are_read_as_an_array_or_an_object(doc: dict[str, Any]) -> None:
    assert identity_request_id(doc) == "0000000007"
    assert attribute_map({"attributes": [{"key": "a", "value": 1}], "Attributes": {"b": 2}}) == {"a": 1, "b": 2}


async def test_each_launch_is_polled_once_and_rejections_read_from_its_approvals(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    refs = [
        RequestRef(ASSIGNED.id, "0000004711", f"{TASK}:{ASSIGNED.id}"),
        RequestRef(FINANCE_RW.id, "0000004711", f"{TASK}:{FINANCE_RW.id}"),
    ]
    fake.on("GET", f"/TaskResults/{TASK}", 200, launch_answer(schemas=[TR]))
    approvals = (
        '<ApprovalSet><ApprovalItem application="Active Directory" name="memberOf" nativeIdentity="'
        + AD_ACCOUNT
        + '" operation="Remove" state="Rejected" value="CN=Finance-RW,OU=Groups,DC=acme,DC=com"/></ApprovalSet>'
    )
    fake.on("GET", f"/LaunchedWorkflow/{TASK}", 200, {"id": TASK, "approvalSet": approvals})
    user_doc = {
        "id": JDOE.id,
        "userName": "jdoe",
        SP_USER: {
            "entitlements": [
                {
                    "value": FINANCE_RW.id,
                    "display": "Finance-RW",
                    "type": "Entitlement",
                    "application": "Active Directory",
                    "accountName": AD_ACCOUNT,
                    "$ref": f"{BASE}/Entitlements/{FINANCE_RW.id}",
                }
            ]
        },
    }
    fake.on("GET", f"/Users/{JDOE.id}", 200, user_doc)
    ent = {"id": FINANCE_RW.id, "attribute": "memberOf", "value": "CN=Finance-RW,OU=Groups,DC=acme,DC=com"}
    fake.on("GET", f"/Entitlements/{FINANCE_RW.id}", 200, ent)
    fake.on("GET", "/Accounts", 200, {"schemas": [LIST], "totalResults": 0, "startIndex": 1, "Resources": []})

    states = await client.get_requests(JDOE, refs)

    assert {k: s.status for k, s in states.items()} == {
        f"{TASK}:{ASSIGNED.id}": IgaStatus.COMPLETED,
        f"{TASK}:{FINANCE_RW.id}": IgaStatus.REJECTED,
    }
    paths = [r.url.path.removeprefix("/identityiq/scim/v2") for r in fake.api()]
    assert paths.count(f"/TaskResults/{TASK}") == 1 and paths.count(f"/LaunchedWorkflow/{TASK}") == 1


async def test_a_pruned_task_result_is_left_to_the_access_list(fake: FakeIiq, client: SailPointIiqClient) -> None:
    states = await client.get_requests(JDOE, [RequestRef(FINANCE_RW.id, "7", f"{TASK}:{FINANCE_RW.id}")])
    (state,) = states.values()
    assert (state.status, state.raw_status) == (IgaStatus.COMPLETED, "Unknown")


async def test_withdrawing_is_not_offered_and_nothing_is_sent(fake: FakeIiq, client: SailPointIiqClient) -> None:
    assert await client.cancel_request(JDOE, RequestRef(FINANCE_RW.id, "7", f"{TASK}:x"), "rehire") is False
    assert fake.requests == []


# ---------------------------------------------------------------- users and paging


def user_list(*docs: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [LIST], "totalResults": len(docs), "startIndex": 1, "Resources": list(docs)}


def user(uid: str, name: str, email: str, emp: str) -> dict[str, Any]:
    return {"id": uid, "userName": name, "emails": [{"value": email}], SP_USER: {"empId": emp, "legalHold": "true"}}


async def test_each_identifier_is_a_qualified_quoted_filter(fake: FakeIiq, client: SailPointIiqClient) -> None:
    fake.on("GET", "/Users", 200, user_list(user("u1", "jdoe", "jdoe@acme.com", "E1234")))
    for ids in (
        UserIdentifiers(username="jdoe"),
        UserIdentifiers(email="JDoe@acme.com"),
        UserIdentifiers(employee_id="E1234"),
    ):
        found = await client.find_user(ids)
        assert found.id == "u1" and found.attributes["legalHold"] == "true" and found.extra["userName"] == "jdoe"
    assert [fake.query(n)["filter"] for n in range(3)] == [
        'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "jdoe"',
        'urn:ietf:params:scim:schemas:core:2.0:User:emails.value eq "JDoe@acme.com"',
        'urn:ietf:params:scim:schemas:sailpoint:1.0:User:empId eq "E1234"',
    ]
    assert fake.query(0)["startIndex"] == "1" and fake.query(0)["count"] == "1000"


async def test_a_filter_the_server_ignores_cannot_pick_the_wrong_identity(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    fake.on("GET", "/Users", 200, user_list(user("u1", "jdoe", "a@x", "1"), user("u2", "jdoe2", "b@x", "2")))
    assert (await client.find_user(UserIdentifiers(username="jdoe2"))).id == "u2"


async def test_ambiguous_and_absent_are_reported_never_guessed(fake: FakeIiq, client: SailPointIiqClient) -> None:
    fake.on("GET", "/Users", 200, user_list(user("u1", "t1", "twins@x", "1"), user("u2", "t2", "twins@x", "2")))
    with pytest.raises(AmbiguousUser, match="email matches 2"):
        await client.find_user(UserIdentifiers(email="twins@x"))
    fake.on("GET", "/Users", 200, user_list())
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers(username="nobody", email="nobody@x"))


async def test_a_dn_is_found_through_its_account(fake: FakeIiq) -> None:
    client = SailPointIiqClient(make_target(dn_application_id="app1", employee_id_attribute="icc_empID"))
    dn = "cn=jdoe,ou=users,o=acme"
    account = {"id": "a1", "nativeIdentity": "CN=jdoe, OU=users,O=acme", "identity": {"value": "u1"}}
    fake.on("GET", "/Accounts", 200, user_list(account))
    fake.on("GET", "/Users/u1", 200, user("u1", "jdoe", "jdoe@acme.com", "E1"))
    assert (await client.find_user(UserIdentifiers(dn=dn))).id == "u1"
    assert fake.query(0)["filter"] == f'nativeIdentity eq "{dn}" and application.value eq "app1"'
    fake.on("GET", "/Users", 200, user_list())
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers(employee_id='E"1'))
    assert fake.query(2)["filter"] == 'urn:ietf:params:scim:schemas:sailpoint:1.0:User:icc_empID eq "E\\"1"'


async def test_accounts_are_read_page_by_page_until_total_results(fake: FakeIiq) -> None:
    client = SailPointIiqClient(make_target(page_size=2))
    accounts = [
        {"id": f"a{n}", "nativeIdentity": f"n{n}", "active": n != 3, "application": {"displayName": "App"}}
        for n in range(5)
    ]

    def page(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        start, count = int(q["startIndex"]), int(q["count"])
        chunk = accounts[start - 1 : start - 1 + count]
        return httpx.Response(200, json={"schemas": [LIST], "totalResults": 5, "startIndex": start, "Resources": chunk})

    fake.routes[("GET", "/Accounts")] = page
    fake.on("GET", f"/Users/{JDOE.id}", 200, {"id": JDOE.id, "userName": "jdoe"})
    items = await client.list_access(JDOE)
    assert [i.id for i in items] == ["a0", "a1", "a2", "a4"]  # a3 is disabled: no longer access
    starts = [fake.query(n).get("startIndex") for n in range(len(fake.api()))]
    assert starts == [None, "1", "3", "5"]
    assert fake.query(1)["filter"] == f'identity.value eq "{JDOE.id}"'


async def test_an_empty_page_ends_the_listing_whatever_the_total(fake: FakeIiq) -> None:
    client = SailPointIiqClient(make_target(page_size=2, list_accounts=True))
    fake.on("GET", "/Accounts", 200, {"schemas": [LIST], "totalResults": 99, "startIndex": 1, "Resources": []})
    fake.on("GET", f"/Users/{JDOE.id}", 200, {"id": JDOE.id, "userName": "jdoe"})
    assert await client.list_access(JDOE) == []


async def test_roles_entitlements_and_their_grant(fake: FakeIiq) -> None:
    client = SailPointIiqClient(make_target(list_accounts=False))
    business, it, other = "b" * 32, "c" * 32, "d" * 32
    roles = [
        {"value": business, "display": "Finance Analyst", "acquired": "Assigned", "$ref": f"{BASE}/Roles/{business}"},
        {"value": it, "display": "AD Finance - IT", "acquired": "Detected", "$ref": f"{BASE}/Roles/{it}"},
        {"value": "detectedRoles", "display": "Other - IT", "acquired": "Detected", "$ref": f"{BASE}/Roles/{other}"},
    ]
    ents = [
        {
            "value": "groupmbr",
            "display": "Admins",
            "application": "AD",
            "accountName": AD_ACCOUNT,
            "$ref": f"{BASE}/Entitlements/e1",
        }
    ]
    fake.on("GET", f"/Users/{JDOE.id}", 200, {"id": JDOE.id, SP_USER: {"roles": roles, "entitlements": ents}})
    fake.on(
        "GET", f"/Roles/{business}", 200, {"id": business, "name": "Finance Analyst", "requirements": [{"value": it}]}
    )
    fake.on("GET", f"/Roles/{it}", 200, {"id": it, "name": "AD Finance - IT"})
    fake.on("GET", f"/Roles/{other}", 200, {"id": other, "name": "Other - IT"})
    privileged = [{"classification": {"name": "Privileged"}}]
    fake.on(
        "GET",
        "/Entitlements/e1",
        200,
        {"id": "e1", "attribute": "memberOf", "value": "CN=Admins", "classifications": privileged},
    )

    items = {i.id: i for i in await client.list_access(JDOE)}

    assert (items[business].granted_by, items[business].removable, items[business].extra["iiq_kind"]) == (
        "direct",
        True,
        "assigned_role",
    )
    assert (items[it].granted_by, items[it].removable, items[it].extra["via"]) == ("role", False, "Finance Analyst")
    assert (items[other].granted_by, items[other].removable, items[other].extra["iiq_kind"]) == (
        "direct",
        True,
        "detected_role",
    )
    ent = items["e1"]
    assert ent.privileged and ent.extra["attribute"] == "memberOf" and ent.extra["value"] == "CN=Admins"
    await client.list_access(JDOE)
    assert [r.url.path for r in fake.api()].count("/identityiq/scim/v2/Entitlements/e1") == 1  # cached
    query = fake.query(0)
    assert query["attributes"] == f"userName,{SP_USER}:roles,{SP_USER}:entitlements"


async def test_errors_carry_the_scim_detail(fake: FakeIiq, client: SailPointIiqClient) -> None:
    error = {"schemas": [], "scimType": "invalidFilter", "detail": "Invalid filter", "status": "400"}
    fake.on("GET", "/Users", 400, error)
    with pytest.raises(IgaPermanentError, match="400 invalidFilter: Invalid filter"):
        await client.find_user(UserIdentifiers(username="jdoe"))


# ---------------------------------------------------------------- recovery


async def test_after_an_interruption_items_gone_are_adopted_and_held_ones_not_found(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    user_doc = {"id": JDOE.id, SP_USER: {"roles": [], "entitlements": []}}
    fake.on("GET", f"/Users/{JDOE.id}", 200, user_doc)
    fake.on(
        "GET",
        "/Accounts",
        200,
        user_list({"id": SALESFORCE.id, "nativeIdentity": "005", "application": {"displayName": "Salesforce"}}),
    )
    fake.on("GET", "/LaunchedWorkflows", 200, user_list())
    refs = await client.find_existing(JDOE, [removal(FINANCE_RW), removal(SALESFORCE)], KEY)
    assert [(r.item_id, r.status, r.raw_status, r.request_id) for r in refs] == [
        (FINANCE_RW.id, IgaStatus.COMPLETED, "NotHeld", "unknown")
    ]
    assert fake.query(2)["filter"] == 'targetName eq "jdoe" and launcher eq "svc-leaver"'
    states = await client.get_requests(JDOE, refs)
    assert [s.status for s in states.values()] == [IgaStatus.COMPLETED]


async def test_a_held_item_a_running_launch_of_ours_lists_is_adopted_pending(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    fake.on("GET", f"/Users/{JDOE.id}", 200, {"id": JDOE.id})
    fake.on(
        "GET",
        "/Accounts",
        200,
        user_list(
            {"id": SALESFORCE.id, "nativeIdentity": "005Dn000001Sv6AIAS", "application": {"displayName": "Salesforce"}}
        ),
    )
    approvals = (
        '<ApprovalSet><ApprovalItem application="Salesforce" nativeIdentity="005Dn000001Sv6AIAS"'
        ' operation="Disable"/></ApprovalSet>'
    )
    running = launch_answer(completionStatus=None, completed=None, launched="2999-01-01T00:00:00.000-05:00")
    running[LW]["approvalSet"] = approvals
    someone_else = launch_answer(id="f" * 32, launcher="spadmin", completionStatus=None, completed=None)
    fake.on("GET", "/LaunchedWorkflows", 200, user_list(someone_else, running))
    (ref,) = await client.find_existing(JDOE, [removal(SALESFORCE)], KEY)
    assert (ref.tracking_id, ref.status, ref.request_id) == (f"{TASK}:{SALESFORCE.id}", IgaStatus.PENDING, "0000004711")


async def test_a_site_that_cannot_filter_launches_falls_back_to_the_access_list(
    fake: FakeIiq, client: SailPointIiqClient
) -> None:
    fake.on("GET", f"/Users/{JDOE.id}", 200, {"id": JDOE.id})
    fake.on("GET", "/Accounts", 200, user_list({"id": SALESFORCE.id, "application": {"displayName": "Salesforce"}}))
    error = {"schemas": [], "scimType": "invalidFilter", "detail": "Invalid filter", "status": "400"}
    fake.on("GET", "/LaunchedWorkflows", 400, error)
    assert await client.find_existing(JDOE, [removal(SALESFORCE)], KEY) == []
    assert await client.find_existing(JDOE, [removal(SALESFORCE)], KEY) == []
    assert [r.url.path for r in fake.api()].count("/identityiq/scim/v2/LaunchedWorkflows") == 1  # switched off


# ---------------------------------------------------------------- sign-in and options


async def test_basic_auth_when_the_target_has_a_user(fake: FakeIiq) -> None:
    target = make_target().model_copy(
        update={"client_id": None, "client_secret": None, "username": "svc-leaver", "password": SecretStr("pw")}
    )
    client = SailPointIiqClient(target)
    fake.on("GET", "/Users", 200, user_list(user("u1", "jdoe", "j@x", "1")))
    await client.find_user(UserIdentifiers(username="jdoe"))
    (call,) = fake.requests
    assert call.headers["authorization"] == "Basic " + base64.b64encode(b"svc-leaver:pw").decode()


async def test_an_expired_token_is_renewed_once(fake: FakeIiq, client: SailPointIiqClient) -> None:
    answers = iter([httpx.Response(401), httpx.Response(200, json=user_list(user("u1", "jdoe", "j@x", "1")))])
    fake.routes[("GET", "/Users")] = lambda request: next(answers)
    await client.find_user(UserIdentifiers(username="jdoe"))
    assert fake.tokens == 2 and [r.headers["authorization"] for r in fake.api()] == ["Bearer tok1", "Bearer tok2"]


async def test_server_errors_on_reads_are_retried(fake: FakeIiq, client: SailPointIiqClient) -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json=user_list(user("u1", "jdoe", "j@x", "1")))])
    fake.routes[("GET", "/Users")] = lambda request: next(answers)
    with stamina.set_testing(True, attempts=3):
        assert (await client.find_user(UserIdentifiers(username="jdoe"))).id == "u1"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nope": 1}, "nope"),
        ({"body_form": "inline"}, "body_form"),
        ({"account_op": "Lock"}, "account_op"),
        ({"launched_workflow_path": "/LaunchedWorkflows"}, "launched_workflow_path"),
        ({"employee_id_attribute": "emp id"}, "employee_id_attribute"),
    ],
)
def test_bad_options_stop_the_start_naming_the_field(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SailPointIiqClient(make_target(**options))


def test_a_token_url_is_derived_or_required() -> None:
    target = make_target().model_copy(update={"base_url": "https://iiq.acme.com/iiq/api"})
    with pytest.raises(ValueError, match="token_url"):
        SailPointIiqClient(target)
    no_secret = make_target().model_copy(update={"client_secret": None})
    with pytest.raises(ValueError, match="client_secret"):
        SailPointIiqClient(no_secret)


# ---------------------------------------------------------------- against the simulator


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[IiqSimulator, str]]:
    app = create_app()
    with serve_in_thread(app) as url:
        yield app.state.sim, url


@pytest.fixture
def sim(served: tuple[IiqSimulator, str]) -> IiqSimulator:
    simulator, _ = served
    with simulator.lock:
        simulator.reset_all()
    return simulator


def sim_client(served: tuple[IiqSimulator, str], **options: Any) -> SailPointIiqClient:
    target = demo_target(served[1])
    target = target.model_copy(
        update={
            "options": {**target.options, **options},
            "http": HttpSettings(requests_per_second=1000, attempts=2, retry_budget_seconds=3, read_timeout=5),
        }
    )
    return SailPointIiqClient(target)


def configure(sim: IiqSimulator, **changes: Any) -> None:
    with sim.lock:
        sim.configure(changes)


async def jdoe_removable(client: SailPointIiqClient) -> tuple[IgaUser, list[AccessItem]]:
    user = await client.find_user(UserIdentifiers(username="jdoe"))
    items = [i for i in await client.list_access(user) if i.removable and i.type == "entitlement"]
    return user, items


async def test_the_simulator_finds_jdoe_by_each_identifier(sim: IiqSimulator, served: tuple[IiqSimulator, str]) -> None:
    client = sim_client(served)
    expected = sim.user_id("jdoe")
    for ids in (
        UserIdentifiers(username="jdoe"),
        UserIdentifiers(email="jdoe@example.com"),
        UserIdentifiers(employee_id="E1001"),
        UserIdentifiers(dn="cn=jdoe,ou=users,o=example"),
        UserIdentifiers(iga_id=expected),
    ):
        assert (await client.find_user(ids)).id == expected
    with pytest.raises(AmbiguousUser):
        await client.find_user(UserIdentifiers(email="twins@example.com"))
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers(username="gone"))
    await client.aclose()


async def test_jdoes_access_and_its_removal_inside_one_launch(
    sim: IiqSimulator, served: tuple[IiqSimulator, str]
) -> None:
    client = sim_client(served)
    user = await client.find_user(UserIdentifiers(username="jdoe"))
    items = await client.list_access(user)
    kinds = {i.extra["iiq_kind"] for i in items}
    assert kinds == {"assigned_role", "detected_role", "entitlement", "account"} and len(items) == 18
    assert [i.name for i in items if i.privileged] == ["Domain Admins"]
    assert [(i.name, i.extra["via"]) for i in items if i.granted_by == "role"] == [
        ("Sales Global - IT", "Sales Global")
    ]
    batches = client.batch_items([removal(i, n) for n, i in enumerate(items) if i.removable])
    refs = [r for n, b in enumerate(batches) for r in await client.submit_removals(user, b, f"leaver-7-{n}")]
    assert {r.status for r in refs} == {IgaStatus.COMPLETED}
    assert len({r.request_id for r in refs}) == 2 and all(re.fullmatch(r"\d{10}", r.request_id) for r in refs)
    assert await client.list_access(user) == []  # the IT role went with its business role
    assert sorted(s.item for s in sim.submissions()) == sorted(r.item_id for r in refs)
    await client.aclose()


async def test_approvals_over_the_clock_and_a_rejection(sim: IiqSimulator, served: tuple[IiqSimulator, str]) -> None:
    client = sim_client(served)
    user, items = await jdoe_removable(client)
    configure(sim, approval_delay=30)
    (ref,) = await client.submit_removals(user, [removal(items[0])], "leaver-8-1")
    assert ref.status is IgaStatus.PENDING
    assert (await client.get_requests(user, [ref]))[ref.tracking_id].status is IgaStatus.PENDING
    sim.clock.advance(31)
    assert (await client.get_requests(user, [ref]))[ref.tracking_id].status is IgaStatus.COMPLETED
    configure(sim, outcome="rejected")
    (rejected,) = await client.submit_removals(user, [removal(items[1])], "leaver-8-2")
    sim.clock.advance(31)
    state = (await client.get_requests(user, [rejected]))[rejected.tracking_id]
    assert (state.status, state.raw_status) == (IgaStatus.REJECTED, "Rejected")
    await client.aclose()


async def test_a_failing_item_fails_its_launch_with_iiqs_message(
    sim: IiqSimulator, served: tuple[IiqSimulator, str]
) -> None:
    client = sim_client(served)
    user, items = await jdoe_removable(client)
    configure(sim, fail_items=[items[0].extra["value"]])
    (ref,) = await client.submit_removals(user, [removal(items[0])], "leaver-9-1")
    assert ref.status is IgaStatus.FAILED and items[0].name in (ref.message or "")
    await client.aclose()


async def test_a_lost_answer_is_recovered_from_the_access_list(
    sim: IiqSimulator, served: tuple[IiqSimulator, str]
) -> None:
    client = sim_client(served)
    user, items = await jdoe_removable(client)
    rule = FaultRule(method="POST", path="/identityiq/scim/v2/LaunchedWorkflows", status=500, when="after", count=1)
    sim.faults = Faults(rules=[rule])
    batch = [removal(items[0], 1), removal(items[1], 2)]
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(user, batch, "leaver-10-1")
    refs = await client.find_existing(user, batch, "leaver-10-1")
    assert [(r.item_id, r.status) for r in refs] == [
        (items[0].id, IgaStatus.COMPLETED),
        (items[1].id, IgaStatus.COMPLETED),
    ]
    assert await client.find_existing(user, [removal(items[2], 3)], "leaver-10-2") == []  # never sent, still held
    assert len(sim.submissions()) == 2
    await client.aclose()


async def test_a_lost_answer_awaiting_approval_is_adopted_not_resent(
    sim: IiqSimulator, served: tuple[IiqSimulator, str]
) -> None:
    client = sim_client(served)
    user, items = await jdoe_removable(client)
    configure(sim, approval_delay=60)
    rule = FaultRule(method="POST", path="/identityiq/scim/v2/LaunchedWorkflows", status=500, when="after", count=1)
    sim.faults = Faults(rules=[rule])
    batch = [removal(items[0], 1)]
    with pytest.raises(IgaUncertainError):
        await client.submit_removals(user, batch, "leaver-11-1")
    (ref,) = await client.find_existing(user, batch, "leaver-11-1")
    assert ref.status is IgaStatus.PENDING and re.fullmatch(r"\d{10}", ref.request_id)
    sim.clock.advance(61)
    assert (await client.get_requests(user, [ref]))[ref.tracking_id].status is IgaStatus.COMPLETED
    configure(sim, launch_filters=False)  # a site where launches cannot be filtered: the list alone decides
    other = sim_client(served)
    assert await other.find_existing(user, [removal(items[1], 2)], "leaver-11-2") == []
    await client.aclose()
    await other.aclose()


async def test_site_differences_and_the_options_that_repair_them(
    sim: IiqSimulator, served: tuple[IiqSimulator, str]
) -> None:
    configure(sim, accepted_forms=["top-level"], account_owner_filter=False)
    client = sim_client(served)
    user = await client.find_user(UserIdentifiers(username="jdoe"))
    with pytest.raises(IgaPermanentError, match="invalidFilter"):
        await client.list_access(user)
    repaired = sim_client(served, account_owner_attribute="identity")
    items = [i for i in await repaired.list_access(user) if i.type == "entitlement"]
    await repaired.submit_removals(user, [removal(items[0])], "leaver-12-1")  # 400 nested, then top-level
    assert [p["form"] for p in sim.plans] == ["nested", "top-level"] and [p["status"] for p in sim.plans] == [400, 201]
    await client.aclose()
    await repaired.aclose()


async def test_a_reader_without_launch_rights_is_refused(sim: IiqSimulator, served: tuple[IiqSimulator, str]) -> None:
    target = demo_target(served[1]).model_copy(
        update={
            "client_id": None,
            "client_secret": None,
            "username": READER_USER,
            "password": SecretStr(READER_PASSWORD),
        }
    )
    client = SailPointIiqClient(target)
    user, items = await jdoe_removable(client)
    with pytest.raises(IgaPermanentError) as refused:
        await client.submit_removals(user, [removal(items[0])], "leaver-13-1")
    assert refused.value.status_code == 403 and sim.submissions() == []
    await client.aclose()


async def test_an_expired_token_is_fetched_again(sim: IiqSimulator, served: tuple[IiqSimulator, str]) -> None:
    client = sim_client(served)
    await client.find_user(UserIdentifiers(username="jdoe"))
    configure(sim, revoke_tokens=True)
    await client.find_user(UserIdentifiers(username="jdoe"))
    statuses = [e.status for e in sim.log]
    assert statuses.count(401) == 1 and len([e for e in sim.log if e.path.endswith("/oauth2/token")]) == 2
    await client.aclose()
