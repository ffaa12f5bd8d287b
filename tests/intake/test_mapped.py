"""Generic JSON with field mapping: the NetIQ/OpenText IDM REST driver example of docs/intake.md,
authenticated by bearer, Basic, or a Standard Webhooks signature made by the reference library."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks

from tests.intake.conftest import DOWN, MAPPED_TOKEN, MAPPED_WHSEC, Intake, stored
from tests.support import event_body, signed

#: The source of docs/intake.md: the REST driver's default XDS->JSON keys, string arrays included.
NETIQ: dict[str, Any] = {
    "name": "netiq-idm",
    "format": "mapped",
    "secrets": [MAPPED_TOKEN, MAPPED_WHSEC],
    "user": {
        "username": "$.CN[0]",
        "email": "$['Internet EMail Address'][0]|lower",
        "employee_id": "$.workforceID[0]",
        "dn": "cn={$.CN[0]|lower},ou=users,o=acme",
    },
    "options": {
        "id": "{$.GUID[0]}:{$.changed}:{$.time}",
        "type": [
            {"when": "$.command", "equals": "delete", "type": "user.terminated"},
            {"when": "$.employeeStatus[0]", "equals": ["T", "X"], "type": "user.terminated"},
            {"when": "$['Login Disabled'][0]", "equals": "true", "type": "user.disabled"},
            {"when": "$['Login Disabled'][0]", "equals": "false", "type": "user.enabled"},
        ],
        "occurred_at": "$.time",
        "effective_at": "$.terminationDate[0]",
        "attributes": {"employeeStatus": "$.employeeStatus[0]", "srcDn": "$.src-dn"},
    },
}


def netiq_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command": "modify",
        "src-dn": "\\ACME\\users\\jdoe",
        "GUID": ["8b1f2c3d4e5f"],
        "CN": ["jdoe"],
        "Internet EMail Address": ["JDoe@acme.com"],
        "workforceID": ["E1234"],
        "Login Disabled": ["true"],
        "employeeStatus": ["T"],
        "changed": "employeeStatus",
        "time": "2026-11-20T17:00:00Z",
        "terminationDate": ["2026-11-21T00:00:00Z"],
    }
    body.update(changes)
    return body


BEARER = {"authorization": f"Bearer {MAPPED_TOKEN}", "content-type": "application/json"}


async def test_the_netiq_example_becomes_the_event(intake: Intake) -> None:
    client, rt = await intake(NETIQ)
    first = await client.post("/webhooks/mapped/netiq-idm", json=netiq_body(), headers=BEARER)
    assert first.status_code == 202 and first.json()["duplicate"] is False
    again = await client.post("/webhooks/mapped/netiq-idm", json=netiq_body(), headers=BEARER)  # the driver's retry
    assert again.status_code == 200 and again.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    (event,) = await stored(rt)
    assert event["external_id"] == "8b1f2c3d4e5f:employeeStatus:2026-11-20T17:00:00Z"
    assert (event["type"], event["source"], event["format"], event["cases"]) == (
        "user.terminated",
        "netiq-idm",
        "mapped",
        1,
    )
    assert event["user"] == {
        "username": "jdoe",
        "email": "jdoe@acme.com",
        "employee_id": "E1234",
        "dn": "cn=jdoe,ou=users,o=acme",
    }
    assert event["attributes"] == {"employeeStatus": "T", "srcDn": "\\ACME\\users\\jdoe"}


@pytest.mark.parametrize(
    ("changes", "type_"),
    [
        ({"employeeStatus": ["A"]}, "user.disabled"),
        ({"employeeStatus": ["A"], "Login Disabled": ["false"]}, "user.enabled"),
        ({"command": "delete", "employeeStatus": ["A"]}, "user.terminated"),
    ],
)
async def test_type_rules_are_tried_in_order(intake: Intake, changes: dict[str, Any], type_: str) -> None:
    client, rt = await intake(NETIQ)
    assert (
        await client.post("/webhooks/mapped/netiq-idm", json=netiq_body(**changes), headers=BEARER)
    ).status_code == 202
    assert (await stored(rt))[0]["type"] == type_


async def test_basic_auth_as_the_rest_driver_defaults_to(intake: Intake) -> None:
    client, _ = await intake(NETIQ)
    basic = base64.b64encode(f"idm-driver:{MAPPED_TOKEN}".encode()).decode()
    resp = await client.post(
        "/webhooks/mapped/netiq-idm", json=netiq_body(), headers={"authorization": f"Basic {basic}"}
    )
    assert resp.status_code == 202


async def test_a_body_signed_by_the_standard_webhooks_reference_library(intake: Intake) -> None:
    client, rt = await intake(NETIQ)
    raw = json.dumps(netiq_body())
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(MAPPED_WHSEC).sign(msg_id, now, raw),
        "content-type": "application/json",
    }
    assert (await client.post("/webhooks/mapped/netiq-idm", content=raw, headers=headers)).status_code == 202
    other = json.dumps(netiq_body(time="2026-11-20T18:00:00Z"))
    headers["webhook-signature"] = standardwebhooks.Webhook(MAPPED_WHSEC).sign(msg_id, now, other)
    again = await client.post("/webhooks/mapped/netiq-idm", content=other, headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True  # same webhook-id
    headers["webhook-signature"] = "v1,AAAA" + headers["webhook-signature"][7:]
    assert (await client.post("/webhooks/mapped/netiq-idm", content=other, headers=headers)).status_code == 401
    assert len(await stored(rt)) == 1


async def test_the_default_mapping_reads_leaver_s_own_event(intake: Intake) -> None:
    source = {
        "name": "script",
        "format": "mapped",
        "secrets": [MAPPED_TOKEN],
        "options": {"id": "$.id", "type": "$.type"},
    }
    client, rt = await intake(source)
    body = {"id": "evt-1", "type": "user.disabled", "user": {"username": "jdoe", "email": "jdoe@example.com"}}
    assert (await client.post("/webhooks/mapped/script", json=body, headers=BEARER)).status_code == 202
    (event,) = await stored(rt)
    assert event["user"] == {"username": "jdoe", "email": "jdoe@example.com"} and event["type"] == "user.disabled"


@pytest.mark.parametrize(
    ("name", "path", "headers", "body", "status"),
    [
        ("no credentials", "netiq-idm", {"content-type": "application/json"}, netiq_body(), 401),
        ("wrong token", "netiq-idm", {**BEARER, "authorization": "Bearer nope-0123456789abcdef"}, netiq_body(), 401),
        (
            "a whsec key used as a bearer",
            "netiq-idm",
            {**BEARER, "authorization": f"Bearer {MAPPED_WHSEC}"},
            netiq_body(),
            401,
        ),
        ("unknown source", "nobody", BEARER, netiq_body(), 404),
        ("wrong content type", "netiq-idm", {**BEARER, "content-type": "text/xml"}, netiq_body(), 415),
        ("malformed JSON", "netiq-idm", BEARER, b"{", 422),
        ("NaN", "netiq-idm", BEARER, b'{"x": NaN}', 422),
        (
            "no type rule matches",
            "netiq-idm",
            BEARER,
            netiq_body(employeeStatus=["A"], **{"Login Disabled": ["maybe"]}),
            422,
        ),
        ("no id", "netiq-idm", BEARER, netiq_body(GUID=[]), 422),
        ("no time", "netiq-idm", BEARER, {k: v for k, v in netiq_body().items() if k != "time"}, 422),
        ("a bad date", "netiq-idm", BEARER, netiq_body(time="last tuesday"), 422),
        (
            "no identifiers",
            "netiq-idm",
            BEARER,
            netiq_body(CN=[], workforceID=[], **{"Internet EMail Address": []}),
            422,
        ),
        ("oversize", "netiq-idm", BEARER, netiq_body(pad="x" * 5000), 413),
    ],
)
async def test_bad_deliveries_are_refused_and_store_nothing(
    intake: Intake, name: str, path: str, headers: dict[str, str], body: Any, status: int
) -> None:
    client, rt = await intake(NETIQ, max_body_bytes=4096)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post(f"/webhooks/mapped/{path}", content=raw, headers=headers)
    assert resp.status_code == status, (name, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    assert await stored(rt) == []


async def test_a_database_that_is_down_answers_503(intake: Intake) -> None:
    client, _ = await intake(NETIQ, db=DOWN)
    resp = await client.post("/webhooks/mapped/netiq-idm", json=netiq_body(), headers=BEARER)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"


async def test_the_generic_route_is_unchanged_beside_the_mapped_one(intake: Intake) -> None:
    client, rt = await intake(NETIQ)
    raw, headers = signed(event_body())
    assert (await client.post("/webhooks/events", content=raw, headers=headers)).status_code == 202
    assert len(await stored(rt)) == 1
