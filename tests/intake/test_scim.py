"""leaver as a SCIM 2.0 service provider, driven the way Entra ID and Okta provisioning drive it:
discovery, the "Test connection" query, create, filter, the deactivation variants, PUT, DELETE,
and SCIM errors for everything else, with nothing stored on a refusal."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from app.intake.scim_patch import patch, replace
from app.intake.scim_wire import ScimError, parse_filter
from tests.intake.conftest import DOWN, SCIM_TOKEN, SOURCES, Intake, stored
from tests.support import row_counts

SCIM = "application/scim+json"
AUTH = {"authorization": f"Bearer {SCIM_TOKEN}", "content-type": SCIM}
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def entra_user(user_name: str = "jdoe@example.com", **changes: Any) -> dict[str, Any]:
    """The POST body Entra's provisioning service sends (its documented shape)."""
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "jdoe",
        "userName": user_name,
        "active": True,
        "displayName": "J Doe",
        "emails": [{"primary": True, "type": "work", "value": "jdoe@example.com"}],
        "name": {"givenName": "J", "familyName": "Doe"},
        ENTERPRISE: {"employeeNumber": "E1001", "department": "Finance"},
    }
    body.update(changes)
    return body


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def create(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = await client.post("/scim/v2/Users", json=body or entra_user(), headers=AUTH)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def test_discovery_documents_are_served_as_scim_json(intake: Intake) -> None:
    client, _ = await intake(SOURCES["scim"])
    spc = await client.get("/scim/v2/ServiceProviderConfig", headers=AUTH)
    assert spc.headers["content-type"] == SCIM
    assert spc.json()["patch"] == {"supported": True} and spc.json()["bulk"]["supported"] is False
    assert spc.json()["filter"] == {"supported": True, "maxResults": 200}
    types = (await client.get("/scim/v2/ResourceTypes", headers=AUTH)).json()
    assert types["Resources"][0]["endpoint"] == "/Users" and types["totalResults"] == 1
    schemas = (await client.get("/scim/v2/Schemas", headers=AUTH)).json()
    assert {s["id"] for s in schemas["Resources"]} == {"urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE}


async def test_entra_test_connection_gets_exactly_the_empty_list(intake: Intake) -> None:
    client, _ = await intake(SOURCES["scim"])
    resp = await client.get("/scim/v2/Users", params={"filter": f'userName eq "{uuid.uuid4()}"'}, headers=AUTH)
    assert resp.status_code == 200 and resp.headers["content-type"] == SCIM
    assert resp.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong-token-0123456789"}, {"authorization": "Basic !!"}],
)
async def test_without_the_token_every_users_route_is_a_scim_401(intake: Intake, headers: dict[str, str]) -> None:
    client, rt = await intake(SOURCES["scim"])
    for method, path in [
        ("GET", "/scim/v2/Users"),
        ("POST", "/scim/v2/Users"),
        ("DELETE", f"/scim/v2/Users/{'a' * 32}"),
    ]:
        resp = await client.request(method, path, headers=headers, json=entra_user())
        assert resp.status_code == 401 and resp.headers["content-type"] == SCIM
        assert (
            resp.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and resp.json()["status"] == "401"
        )
    assert await stored(rt) == []


async def test_create_returns_the_resource_keeps_no_password_and_plans_nothing(intake: Intake) -> None:
    client, rt = await intake(SOURCES["scim"])
    resp = await client.post("/scim/v2/Users", json=entra_user(password="S3cret!pw"), headers=AUTH)
    assert resp.status_code == 201
    user = resp.json()
    assert resp.headers["location"] == user["meta"]["location"] and user["meta"]["location"].endswith(user["id"])
    assert user["active"] is True and user["userName"] == "jdoe@example.com" and "password" not in user
    assert ENTERPRISE in user["schemas"] and user[ENTERPRISE]["employeeNumber"] == "E1001"
    (event,) = await stored(rt)
    assert event["cases"] == 0 and "password" not in str(event["attributes"])
    assert event["user"] == {"username": "jdoe@example.com", "email": "jdoe@example.com", "employee_id": "E1001"}
    again = await client.post("/scim/v2/Users", json=entra_user(user_name="JDOE@example.com"), headers=AUTH)
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    fetched = await client.get(f"/scim/v2/Users/{user['id']}", headers=AUTH)
    assert fetched.json() == user


async def test_filters_entra_and_okta_send(intake: Intake) -> None:
    client, _ = await intake(SOURCES["scim"])
    user = await create(client)
    await create(
        client, entra_user("asmith@example.com", externalId="asmith", emails=[{"type": "work", "value": "a@x.y"}])
    )
    for expression in [
        'userName eq "JDOE@example.com"',
        'externalId eq "jdoe"',
        'emails[type eq "work"].value eq "jdoe@example.com"',
        'userName eq "jdoe@example.com" and externalId eq "jdoe"',
        f'id eq "{user["id"]}"',
    ]:
        found = (await client.get("/scim/v2/Users", params={"filter": expression}, headers=AUTH)).json()
        assert [r["id"] for r in found["Resources"]] == [user["id"]], expression
    nobody = await client.get("/scim/v2/Users", params={"filter": 'externalId eq "JDOE"'}, headers=AUTH)
    assert nobody.json()["totalResults"] == 0  # externalId is case-exact
    page = (await client.get("/scim/v2/Users", params={"startIndex": 2, "count": 100}, headers=AUTH)).json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (2, 2, 1)


DEACTIVATIONS = {
    "Entra without aadOptscim062020": ops({"op": "Replace", "path": "active", "value": "False"}),
    "Entra with aadOptscim062020": ops({"op": "replace", "path": "active", "value": False}),
    "Okta OIN (no path)": ops({"op": "replace", "value": {"active": False}}),
    "SailPoint (add)": ops({"op": "add", "path": "active", "value": "false"}),
    "last operation touching active wins": ops(
        {"op": "replace", "path": "active", "value": True},
        {"op": "replace", "value": {"displayName": "Gone", "active": False}},
    ),
}


@pytest.mark.parametrize("name", sorted(DEACTIVATIONS))
async def test_each_client_s_deactivation_records_one_user_disabled(intake: Intake, name: str) -> None:
    client, rt = await intake(SOURCES["scim"])
    user = await create(client)
    resp = await client.patch(f"/scim/v2/Users/{user['id']}", json=DEACTIVATIONS[name], headers=AUTH)
    assert resp.status_code == 200 and resp.json()["active"] is False and resp.headers["content-type"] == SCIM
    again = await client.patch(f"/scim/v2/Users/{user['id']}", json=DEACTIVATIONS[name], headers=AUTH)
    assert again.status_code == 200
    events = await stored(rt)
    assert [(e["type"], e["cases"]) for e in events] == [("user.enabled", 0), ("user.disabled", 1)]
    assert events[1]["external_id"] == f"scim:entra-scim:{user['id']}:000002"


async def test_okta_put_deactivates_and_a_put_without_active_keeps_it(intake: Intake) -> None:
    client, rt = await intake(SOURCES["scim"])
    user = await create(client)
    url = f"/scim/v2/Users/{user['id']}"
    without_active = {k: v for k, v in entra_user(displayName="Renamed").items() if k != "active"}
    assert (await client.put(url, json=without_active, headers=AUTH)).json()["active"] is True
    assert (await client.put(url, json=entra_user(active=False), headers=AUTH)).json()["active"] is False
    assert (await client.put(url, json=without_active, headers=AUTH)).json()["active"] is False
    assert [(e["type"], e["cases"]) for e in await stored(rt)] == [
        ("user.enabled", 0),
        ("user.enabled", 0),
        ("user.disabled", 1),
        ("user.disabled", 0),
    ]


async def test_reactivation_is_a_rehire_and_delete_a_termination(intake: Intake) -> None:
    client, rt = await intake(SOURCES["scim"])
    user = await create(client, entra_user(active=False))
    url = f"/scim/v2/Users/{user['id']}"
    assert (
        await client.patch(url, json=ops({"op": "replace", "path": "active", "value": True}), headers=AUTH)
    ).status_code == 200
    deleted = await client.delete(url, headers=AUTH)
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await client.get(url, headers=AUTH)
    assert gone.status_code == 404 and gone.json()["status"] == "404"
    assert (await client.delete(url, headers=AUTH)).status_code == 404
    listed = await client.get("/scim/v2/Users", params={"filter": 'userName eq "jdoe@example.com"'}, headers=AUTH)
    assert listed.json()["totalResults"] == 0
    assert [(e["type"], e["cases"]) for e in await stored(rt)] == [
        ("user.disabled", 1),
        ("user.enabled", 1),
        ("user.terminated", 1),
    ]


async def test_entra_attribute_updates_are_kept_without_a_case(intake: Intake) -> None:
    client, rt = await intake(SOURCES["scim"])
    user = await create(client)
    body = ops(
        {"op": "Replace", "path": "displayName", "value": "Jo Doe"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "jo@example.com"},
        {"op": "Add", "path": f"{ENTERPRISE}:employeeNumber", "value": "E2002"},
        {"op": "Replace", "value": {"name.givenName": "Jo", f"{ENTERPRISE}:department": "Sales"}},
        {"op": "Remove", "path": "externalId"},
    )
    patched = (await client.patch(f"/scim/v2/Users/{user['id']}", json=body, headers=AUTH)).json()
    assert patched["displayName"] == "Jo Doe" and patched["name"]["givenName"] == "Jo" and "externalId" not in patched
    assert patched["emails"][0]["value"] == "jo@example.com"
    assert patched[ENTERPRISE] == {"employeeNumber": "E2002", "department": "Sales"}
    events = await stored(rt)
    assert [e["cases"] for e in events] == [0, 0] and events[1]["user"]["employee_id"] == "E2002"


async def test_okta_may_authenticate_with_basic(intake: Intake) -> None:
    client, _ = await intake(SOURCES["scim"])
    basic = base64.b64encode(f"okta:{SCIM_TOKEN}".encode()).decode()
    resp = await client.get("/scim/v2/Users", headers={"authorization": f"Basic {basic}"})
    assert resp.status_code == 200


#: name -> (method, path suffix after the user, body or raw bytes, headers changes, status, scimType)
HOSTILE: dict[str, tuple[str, bytes | dict[str, Any], dict[str, str], int, str | None]] = {
    "malformed JSON": ("PATCH", b'{"Operations": [', {}, 400, "invalidSyntax"),
    "duplicate keys": ("PATCH", b'{"Operations": [], "Operations": []}', {}, 400, "invalidSyntax"),
    "active is not a boolean": (
        "PATCH",
        ops({"op": "replace", "path": "active", "value": "maybe"}),
        {},
        400,
        "invalidValue",
    ),
    "unknown op": ("PATCH", ops({"op": "frobnicate", "path": "active", "value": False}), {}, 400, "invalidSyntax"),
    "no operations": ("PATCH", ops(), {}, 400, "invalidSyntax"),
    "remove without a path": ("PATCH", ops({"op": "remove"}), {}, 400, "noTarget"),
    "unsupported path": (
        "PATCH",
        ops({"op": "replace", "path": 'emails[value co "x"]', "value": 1}),
        {},
        400,
        "invalidPath",
    ),
    "removing userName": ("PATCH", ops({"op": "remove", "path": "userName"}), {}, 400, "mutability"),
    "wrong schemas": (
        "PATCH",
        {"schemas": ["urn:x"], "Operations": [{"op": "add", "value": {}}]},
        {},
        400,
        "invalidSyntax",
    ),
    "PUT without userName": ("PUT", {"active": False}, {}, 400, "invalidValue"),
    "PUT of a list": ("PUT", b"[1]", {}, 400, "invalidSyntax"),
    "wrong content type": (
        "PATCH",
        ops({"op": "replace", "path": "active", "value": False}),
        {"content-type": "text/plain"},
        415,
        None,
    ),
    "oversize body": ("PATCH", ops({"op": "replace", "value": {"displayName": "x" * 5000}}), {}, 413, None),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_bad_scim_requests_get_scim_errors_and_store_nothing(intake: Intake, name: str) -> None:
    client, rt = await intake(SOURCES["scim"], max_body_bytes=4096)
    user = await create(client)
    before = await row_counts(rt)
    method, body, headers, status, scim_type = HOSTILE[name]
    kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    resp = await client.request(method, f"/scim/v2/Users/{user['id']}", headers={**AUTH, **headers}, **kw)
    assert resp.status_code == status, (name, resp.text)
    assert resp.headers["content-type"] == SCIM and resp.json()["status"] == str(status)
    assert resp.json().get("scimType") == scim_type
    assert await row_counts(rt) == before


@pytest.mark.parametrize(
    ("method", "path", "status", "scim_type"),
    [
        ("GET", "/scim/v2/Users?filter=userName%20co%20%22j%22", 400, "invalidFilter"),
        ("GET", "/scim/v2/Users?filter=(userName%20eq%20%22j%22)", 400, "invalidFilter"),
        ("GET", "/scim/v2/Users?startIndex=abc", 400, "invalidValue"),
        ("GET", "/scim/v2/Users/not-an-id", 404, None),
        ("PATCH", f"/scim/v2/Users/{'0' * 32}", 404, None),
        ("GET", "/scim/v2/Groups", 404, None),
        ("POST", "/scim/v2/Bulk", 404, None),
    ],
)
async def test_unknown_users_unsupported_filters_and_routes(
    intake: Intake, method: str, path: str, status: int, scim_type: str | None
) -> None:
    client, rt = await intake(SOURCES["scim"])
    resp = await client.request(method, path, headers=AUTH, json=ops({"op": "replace", "value": {"active": False}}))
    assert resp.status_code == status and resp.headers["content-type"] == SCIM
    assert resp.json().get("scimType") == scim_type
    assert await stored(rt) == []


async def test_each_scim_client_sees_only_its_own_users(intake: Intake) -> None:
    okta = {"name": "okta-scim", "format": "scim", "secrets": ["okta-scim-token-0123456789abcdef"]}
    client, rt = await intake(SOURCES["scim"], okta)
    await create(client)
    theirs = await client.get("/scim/v2/Users", headers={"authorization": "Bearer okta-scim-token-0123456789abcdef"})
    assert theirs.json()["totalResults"] == 0
    okta_auth = {**AUTH, "authorization": "Bearer okta-scim-token-0123456789abcdef"}
    assert (await client.post("/scim/v2/Users", json=entra_user(), headers=okta_auth)).status_code == 201
    assert sorted(e["source"] for e in await stored(rt)) == ["entra-scim", "okta-scim"]


async def test_a_database_that_is_down_is_a_scim_503(intake: Intake) -> None:
    client, _ = await intake(SOURCES["scim"], db=DOWN)
    resp = await client.post("/scim/v2/Users", json=entra_user(), headers=AUTH)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert resp.headers["content-type"] == SCIM and resp.json()["status"] == "503"


def test_patch_and_put_rules() -> None:
    old = {"userName": "u", "active": True, "emails": [{"type": "work", "value": "a@b"}]}
    assert patch(old, ops({"op": "replace", "path": "ACTIVE", "value": "False"}))["active"] is False
    assert patch(old, ops({"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@b"}]}))["emails"][
        1
    ] == {
        "type": "home",
        "value": "h@b",
    }
    assert replace(old, {"userName": "u"})["active"] is True
    assert replace(old, {"userName": "u", "active": "false"})["active"] is False
    assert old["active"] is True  # never changed in place
    with pytest.raises(ScimError):
        patch(old, {"Operations": "nope"})


def test_filter_grammar() -> None:
    (c,) = parse_filter('emails[type eq "work"].value eq "a@b"')
    assert (c.attr, c.sub, c.selector, c.value) == ("emails", "value", ("type", "work"), "a@b")
    assert len(parse_filter('userName eq "a" and externalId eq "b"')) == 2
    for bad in ["userName eq", 'userName sw "a"', 'userName eq "a" or externalId eq "b"', "userName eq bare"]:
        with pytest.raises(ScimError):
            parse_filter(bad)
