"""The PingOne AIC adapter on its own: the service-account JWT bearer grant (fresh assertion per
fetch, the key never shown), the exact query, publish and search bodies of the contract's
examples, the status mapping table, paging stop rules, duplicate refusals adopted, and recovery by
(user, item) with the key compared on every hit. AIC is scripted with pytest-httpx; the last part
runs the adapter against the simulator with its assumptions switched."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stamina
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, UserIdentifiers
from app.iga.base import AmbiguousUser, IgaPermanentError, IgaUncertainError, UserNotFound
from app.iga.pingone_aic import PingOneAicClient
from app.iga.pingone_aic.wire import request_state
from app.settings import HttpSettings, TargetSettings
from app.simulator.pingone_aic import create_app as sim_create_app
from app.simulator.pingone_aic import demo_target
from app.simulator.pingone_aic.keys import CLIENT_ID, CLIENT_SECRET

BASE = "https://openam-acme-prod.forgeblocks.com"
TOKEN_PATH = "/am/oauth2/access_token"
ACCOUNT = "3d5e1f6a-7b2c-4e89-9a41-0c6d8e2f4b17"
USER_ID = "8c4e0f5b-2d7a-4e63-9b1f-3a6d2e9c7f41"
KEY = "leaver-c7f3a1-1"
REASON = "Leaver: remove all remaining access (rule default)"
ASSIGNMENT = "system_TargetADApp2_Group_3f9a6c21-8e4b-4d07-a5c2-91b7e0d4f268"
ROLE_ID = "7136a3c4-0c12-488a-8cfd-2fd71a24e4bd"
APP_ID = "a87e3d1f-1f9e-4597-bb0a-2ed56d2484a3"
JDOE = IgaUser(id=USER_ID, display_name="John Doe", extra={"userName": "jdoe"})
ENT = AccessItem(ASSIGNMENT, "entitlement", "Finance-Share-RW", extra={"id_field": "entitlementId"})
ROLE = AccessItem(ROLE_ID, "role", "Approver Role", extra={"id_field": "roleId"})
APP = AccessItem(APP_ID, "account", "Active Directory (jdoe)", extra={"id_field": "applicationId"})
RSA = RSAKey.generate_key(2048, private=True)
PEM = RSA.as_pem(private=True).decode()


def removal(item: AccessItem, n: int = 1) -> RemovalRequest:
    return RemovalRequest(item=item, plan_item_id=n, reason=REASON)


def make_target(**options: Any) -> TargetSettings:
    return TargetSettings(
        name="aic-test",
        system="pingone-aic",
        base_url=BASE,
        options={"service_account_id": ACCOUNT, "private_key": PEM, **options},
        http=HttpSettings(requests_per_second=1000, attempts=3, retry_budget_seconds=5),
    )


def request_doc(
    request_id: str,
    item: AccessItem = ENT,
    *,
    key: str | None = KEY,
    status: str = "in-progress",
    decision: str | None = None,
    outcome: str | None = None,
    draft: bool = False,
    created: str = "2026-11-21T00:00:04+00:00",
) -> dict[str, Any]:
    """A governance request as `GET /requests/{id}` and the search show it (contract §6)."""
    field = {"entitlement": "entitlementId", "role": "roleId", "account": "applicationId"}[item.type]
    kind = {"entitlement": "entitlementRemove", "role": "roleRemove", "account": "applicationRemove"}[item.type]
    common: dict[str, Any] = {"userId": USER_ID, field: item.id, "isDraft": draft}
    if key is not None:
        common |= {"externalRequestId": key, "justification": f"[{key}] {REASON}"}
    return {
        "id": request_id,
        "requestType": kind,
        "user": {"id": USER_ID, "userName": "jdoe"},
        "request": {"common": common},
        "decision": {"status": status, "decision": decision, "outcome": outcome, "comments": []},
        "metadata": {"createdDate": created},
    }


Handler = Callable[[httpx.Request], httpx.Response]


class FakeAic:
    """A scripted tenant: one handler per (method, path), every request kept; tokens counted."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], Handler] = {}
        self.tokens = 0
        self.on("POST", TOKEN_PATH, self._token)

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.tokens += 1
        body = {"access_token": f"tok-{self.tokens}", "scope": "fr:am:* fr:idm:* fr:iga:*", "token_type": "Bearer"}
        return httpx.Response(200, json={**body, "expires_in": 899})

    def on(self, method: str, path: str, answer: Handler | Any, status: int = 200) -> None:
        if callable(answer):
            self.routes[(method, path)] = answer
        else:
            self.routes[(method, path)] = lambda _r: httpx.Response(status, json=answer)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"message": "Request Type Id doesn't exist"})
        return handler(request)

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.seen if r.method == method and r.url.path == path]

    def form(self, n: int = 0) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.calls("POST", TOKEN_PATH)[n].content.decode()).items()}


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


@pytest.fixture()
def fake(httpx_mock: HTTPXMock) -> FakeAic:
    aic = FakeAic()
    httpx_mock.add_callback(aic, is_reusable=True, is_optional=True)
    return aic


@pytest.fixture()
async def client(fake: FakeAic) -> AsyncIterator[PingOneAicClient]:
    c = PingOneAicClient(make_target())
    yield c
    await c.aclose()


def users_answer(*docs: dict[str, Any]) -> dict[str, Any]:
    return {
        "result": list(docs),
        "resultCount": len(docs),
        "pagedResultsCookie": None,
        "totalPagedResultsPolicy": "EXACT",
        "totalPagedResults": len(docs),
        "remainingPagedResults": -1,
    }


JDOE_DOC = {
    "_id": USER_ID,
    "_rev": "ffe3f7ed-1022-425c-845e-210b35f392e8-20187",
    "userName": "jdoe",
    "mail": "jdoe@acme.com",
    "givenName": "John",
    "sn": "Doe",
    "accountStatus": "inactive",
    "frIndexedString1": "E1234",
    "custom_legalHold": "true",
}


# ---------------------------------------------------------------- sign-in


async def test_each_token_fetch_posts_a_freshly_signed_assertion(fake: FakeAic, client: PingOneAicClient) -> None:
    fake.on("GET", "/openidm/managed/alpha_user", users_answer(JDOE_DOC))
    await client.find_user(UserIdentifiers(username="jdoe"))
    client.http.auth.invalidate()
    await client.find_user(UserIdentifiers(username="jdoe"))

    forms = [fake.form(0), fake.form(1)]
    assert [f["client_id"] for f in forms] == ["service-account"] * 2
    assert [f["grant_type"] for f in forms] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"] * 2
    assert [f["scope"] for f in forms] == ["fr:am:* fr:idm:* fr:iga:*"] * 2
    tokens = [jwt.decode(f["assertion"], RSA, algorithms=["RS256"]) for f in forms]
    claims = [t.claims for t in tokens]
    assert all(t.header["alg"] == "RS256" for t in tokens)
    assert all(c["iss"] == c["sub"] == ACCOUNT for c in claims)
    assert all(c["aud"] == f"{BASE}:443/am/oauth2/access_token" for c in claims)
    assert all(abs(c["exp"] - (time.time() + 180)) < 5 for c in claims)
    assert claims[0]["jti"] != claims[1]["jti"]
    assert [r.headers["authorization"] for r in fake.calls("GET", "/openidm/managed/alpha_user")] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_the_token_is_cached_and_a_401_renews_it_once(fake: FakeAic, client: PingOneAicClient) -> None:
    answers = iter([httpx.Response(200, json=users_answer(JDOE_DOC)), httpx.Response(401, json={"code": 401})])
    fake.on("GET", "/openidm/managed/alpha_user", lambda r: next(answers, httpx.Response(200, json=users_answer())))
    await client.find_user(UserIdentifiers(username="jdoe"))
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers(username="jdoe"))
    assert fake.tokens == 2
    assert len(fake.calls("GET", "/openidm/managed/alpha_user")) == 3


async def test_a_refused_token_names_the_error_never_the_assertion(fake: FakeAic, client: PingOneAicClient) -> None:
    refusal = {"error": "invalid_scope", "error_description": "Unsupported scope for service account: fr:iga:*"}
    fake.on("POST", TOKEN_PATH, refusal, status=400)
    with pytest.raises(IgaPermanentError) as caught:
        await client.find_user(UserIdentifiers(username="jdoe"))
    assert "Unsupported scope for service account: fr:iga:*" in str(caught.value)
    assertion = parse_qs(fake.calls("POST", TOKEN_PATH)[0].content.decode())["assertion"][0]
    assert assertion not in str(caught.value) and "PRIVATE" not in str(caught.value)


async def test_the_audience_and_token_url_can_be_set(fake: FakeAic) -> None:
    fake.on("GET", "/openidm/managed/alpha_user", users_answer(JDOE_DOC))
    target = make_target(jwt_audience="https://id.acme.com:443/am/oauth2/access_token", scope="fr:idm:* fr:iga:*")
    async with _client(target) as c:
        await c.find_user(UserIdentifiers(username="jdoe"))
    form = fake.form()
    assert jwt.decode(form["assertion"], RSA).claims["aud"] == "https://id.acme.com:443/am/oauth2/access_token"
    assert form["scope"] == "fr:idm:* fr:iga:*"


async def test_the_private_key_may_be_a_jwk_file(fake: FakeAic, tmp_path: Path) -> None:
    fake.on("GET", "/openidm/managed/alpha_user", users_answer(JDOE_DOC))
    key_file = tmp_path / "service-account.jwk"
    key_file.write_text(json.dumps(RSA.as_dict(private=True)))
    target = make_target(private_key=None, private_key_file=str(key_file))
    async with _client(target) as c:
        await c.find_user(UserIdentifiers(username="jdoe"))
    assert jwt.decode(fake.form()["assertion"], RSA).claims["sub"] == ACCOUNT


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----"},
            "not an RSA private key",
        ),
        ({"private_key": json.dumps(RSA.as_dict(private=False))}, "holds a public key"),
        ({"private_key": None}, "needs private_key or private_key_file"),
        ({"private_key_file": "/nonexistent/key.pem", "private_key": None}, "private_key_file: cannot read it"),
        ({"private_key_file": "/x.pem"}, "not both"),
        ({"service_account_id": None}, "needs options.service_account_id"),
        ({"page_sise": 3}, "page_sise: unknown option"),
    ],
)
def test_bad_sign_in_options_stop_the_start_without_showing_the_key(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        PingOneAicClient(make_target(**options))
    assert expected in str(caught.value)
    assert "not-a-key" not in str(caught.value) and str(RSA.as_dict(private=True)["d"]) not in str(caught.value)


def test_the_key_is_kept_as_a_secret() -> None:
    client = PingOneAicClient(make_target())
    assert PEM not in repr(client.options) and "PRIVATE KEY" not in repr(client.options)
    assert "PRIVATE" not in repr(client.http.auth)


async def test_client_credentials_mode_signs_in_at_the_realm_with_basic(fake: FakeAic) -> None:
    realm_token = "/am/oauth2/realms/root/realms/alpha/access_token"
    fake.on("POST", realm_token, {"access_token": "cc-1", "expires_in": 899, "token_type": "Bearer"})
    fake.on("GET", "/openidm/managed/alpha_user", users_answer(JDOE_DOC))
    target = make_target(auth="client_credentials", private_key=None, service_account_id=None).model_copy(
        update={"client_id": "leaver-service", "client_secret": SecretStr("s3cret")}
    )
    async with _client(target) as c:
        await c.find_user(UserIdentifiers(username="jdoe"))
    sent = fake.calls("POST", realm_token)[0]
    assert sent.headers["authorization"] == "Basic bGVhdmVyLXNlcnZpY2U6czNjcmV0"
    assert parse_qs(sent.content.decode()) == {"grant_type": ["client_credentials"], "scope": ["fr:idm:* fr:iga:*"]}


class _client:
    def __init__(self, target: TargetSettings) -> None:
        self.client = PingOneAicClient(target)

    async def __aenter__(self) -> PingOneAicClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()


# ---------------------------------------------------------------- users


async def test_the_user_query_is_the_contract_example(fake: FakeAic, client: PingOneAicClient) -> None:
    fake.on("GET", "/openidm/managed/alpha_user", users_answer(JDOE_DOC))
    user = await client.find_user(UserIdentifiers(username='j"doe\\x'))
    sent = query(fake.calls("GET", "/openidm/managed/alpha_user")[0])
    assert sent == {
        "_queryFilter": 'userName eq "j\\"doe\\\\x"',
        "_fields": "_id,userName,mail,givenName,sn,accountStatus,frIndexedString1,custom_legalHold,custom_department",
        "_pageSize": "2",
        "_totalPagedResultsPolicy": "EXACT",
    }
    assert user.id == USER_ID and user.display_name == "John Doe"
    assert user.attributes["legalHold"] == "true" and user.attributes["custom_legalHold"] == "true"


async def test_keys_are_tried_in_order_and_two_matches_are_ambiguous(fake: FakeAic, client: PingOneAicClient) -> None:
    twin = {**JDOE_DOC, "_id": "2b1f7c9e-0000-4000-8000-000000000002", "userName": "twin"}

    def answer(request: httpx.Request) -> httpx.Response:
        flt = query(request)["_queryFilter"]
        found = [JDOE_DOC, twin] if flt.startswith("mail") else []
        return httpx.Response(200, json=users_answer(*found))

    fake.on("GET", "/openidm/managed/alpha_user", answer)
    with pytest.raises(AmbiguousUser):
        await client.find_user(UserIdentifiers(employee_id="E9", username="nobody", email="jdoe@acme.com"))
    filters = [query(r)["_queryFilter"] for r in fake.calls("GET", "/openidm/managed/alpha_user")]
    assert filters == ['frIndexedString1 eq "E9"', 'userName eq "nobody"', 'mail eq "jdoe@acme.com"']
    with pytest.raises(UserNotFound):
        await client.find_user(UserIdentifiers(username="nobody"))


async def test_a_dn_is_found_through_the_account_search(fake: FakeAic, client: PingOneAicClient) -> None:
    dn = "CN=jdoe,OU=Users,DC=acme,DC=com"
    account = {"keys": {"type": "accountGrant", "userId": USER_ID, "applicationId": APP_ID}}
    fake.on("POST", "/iga/governance/account", {"result": [account], "totalCount": 1, "resultCount": 1})
    fake.on("GET", "/openidm/managed/alpha_user", users_answer(JDOE_DOC))
    user = await client.find_user(UserIdentifiers(dn=dn))
    search = fake.calls("POST", "/iga/governance/account")[0]
    assert query(search) == {"_action": "search", "_pageSize": "2"}
    assert json.loads(search.content) == {
        "targetFilter": {"operator": "EQUALS", "operand": {"targetName": "account.__NAME__", "targetValue": dn}}
    }
    assert query(fake.calls("GET", "/openidm/managed/alpha_user")[0])["_queryFilter"] == f'_id eq "{USER_ID}"'
    assert user.id == USER_ID


async def test_a_dn_attribute_on_the_user_is_queried_directly(fake: FakeAic) -> None:
    fake.on("GET", "/openidm/managed/bravo_user", users_answer(JDOE_DOC))
    async with _client(make_target(dn_attribute="custom_sourceDn", realm="bravo")) as c:
        await c.find_user(UserIdentifiers(dn="cn=jdoe,o=acme"))
    assert (
        query(fake.calls("GET", "/openidm/managed/bravo_user")[0])["_queryFilter"]
        == 'custom_sourceDn eq "cn=jdoe,o=acme"'
    )
    assert not fake.calls("POST", "/iga/governance/account")


# ---------------------------------------------------------------- access


def grant(kind: str, n: int, grant_types: list[dict[str, str]] | None = None, **more: Any) -> dict[str, Any]:
    """A grant of the contract's shape (§4); `n` makes its ids unique."""
    types = grant_types if grant_types is not None else [{"id": f"rel-{n}", "grantType": "request"}]
    app = {"id": f"app-{n}", "name": "Active Directory", "templateName": "azure.ad"}
    if kind == "entitlement":
        return {
            "item": {"type": "entitlementGrant", "objectType": "Group"},
            "keys": {
                "type": "entitlementGrant",
                "userId": USER_ID,
                "applicationId": app["id"],
                "entitlementId": f"system/AD/Group/{n}",
            },
            "assignment": {"id": f"system_AD_Group_{n}"},
            "application": app,
            "descriptor": {"idx": {"/entitlement": {"displayName": f"Group {n}"}}},
            "glossary": {"idx": {"/entitlement": {"isPrivileged": more.get("privileged", False)}}},
            "catalog": {"id": "a" * 128},
            "relationship": {"id": f"rel-{n}", "properties": {"grantTypes": types}},
        }
    if kind == "account":
        return {
            "item": {"type": "accountGrant"},
            "keys": {"type": "accountGrant", "userId": USER_ID, "applicationId": more.get("app", app["id"])},
            "application": {**app, "id": more.get("app", app["id"]), "name": "Jira"},
            "descriptor": {"idx": {"/account": {"displayName": "jdoe"}}},
            "relationship": {"id": f"rel-{n}", "properties": {"grantTypes": types}},
        }
    return {
        "item": {"type": "roleMembership"},
        "keys": {"type": "roleMembership", "roleId": f"role-{n}", "userId": USER_ID},
        "role": {"id": f"role-{n}", "name": f"Role {n}"},
        "relationship": {"id": f"rel-{n}", "conditional": more.get("conditional", False)},
    }


def grants_route(fake: FakeAic, pages: dict[str, list[dict[str, Any]]], total: Callable[[int], int] = int) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        q = query(request)
        rows = pages.get(q["grantType"], [])
        size, offset = int(q["_pageSize"]), int(q["_pagedResultsOffset"])
        page = rows[offset : offset + size]
        return httpx.Response(
            200, json={"result": page, "searchAfterKey": [], "totalCount": total(len(rows)), "resultCount": len(page)}
        )

    fake.on("GET", f"/iga/governance/user/{USER_ID}/grants", answer)


async def test_grants_become_items_with_their_ids_and_origins(fake: FakeAic, client: PingOneAicClient) -> None:
    grants_route(
        fake,
        {
            "entitlement": [
                grant("entitlement", 1, privileged=True),
                grant("entitlement", 2, [{"id": "r2", "grantType": "recon"}]),
                grant("entitlement", 3, [{"id": "r3", "grantType": "role", "roleId": "role-8"}]),
                grant("entitlement", 4, [{"id": "r4", "grantType": "role", "roleId": "role-9"}]),
                grant("entitlement", 5, [{"id": "r5", "grantType": "role"}, {"id": "r5", "grantType": "request"}]),
            ],
            "account": [grant("account", 6, app="app-1"), grant("account", 7, app="jira")],
            "role": [grant("role", 8), grant("role", 9, conditional=True)],
        },
    )
    items = {i.id: i for i in await client.list_access(JDOE)}

    entitlement_call = next(r for r in fake.seen if r.url.params.get("grantType") == "entitlement")
    assert query(entitlement_call) == {
        "grantType": "entitlement",
        "_fields": "application,catalog,descriptor,entitlement,glossary,item,keys,relationship,assignment.id,user",
        "_pageSize": "100",
        "_pagedResultsOffset": "0",
    }
    assert sorted(items) == sorted(
        [
            "system_AD_Group_1",
            "system_AD_Group_2",
            "system_AD_Group_3",
            "system_AD_Group_4",
            "system_AD_Group_5",
            "jira",
            "role-8",
            "role-9",
        ]
    )  # the account of app-1 has entitlements: it is not an item of its own
    assert items["system_AD_Group_1"].privileged and items["system_AD_Group_1"].name == "Group 1"
    assert [items[f"system_AD_Group_{n}"].granted_by for n in (1, 2, 3, 4, 5)] == [
        "direct",
        "direct",
        "role",
        "birthright",
        "direct",
    ]
    assert not items["system_AD_Group_3"].removable and items["system_AD_Group_5"].removable
    assert (items["jira"].type, items["jira"].name, items["jira"].application) == ("account", "Jira (jdoe)", "Jira")
    assert (items["role-8"].granted_by, items["role-9"].granted_by) == ("direct", "birthright")
    assert not items["role-9"].removable


@pytest.mark.parametrize(
    ("total", "offsets"),
    [(int, ["0", "3"]), (lambda n: 0, ["0", "3", "6"])],
    ids=["the-total-ends-it", "a-zero-total-does-not"],
)
async def test_grant_paging_stops_on_a_short_page_or_on_the_total(
    fake: FakeAic, total: Callable[[int], int], offsets: list[str]
) -> None:
    rows = [grant("entitlement", n) for n in range(6)]
    grants_route(fake, {"entitlement": rows}, total)
    async with _client(make_target(page_size=3)) as c:
        items = await c.list_access(JDOE)
    pages = [query(r) for r in fake.seen if r.url.params.get("grantType") == "entitlement"]
    assert len([i for i in items if i.type == "entitlement"]) == 6
    # 6 rows in pages of 3: a total of 6 ends it after two full pages; with the docs'
    # `totalCount: 0` only the short (empty) third page does.
    assert [p["_pagedResultsOffset"] for p in pages] == offsets


# ---------------------------------------------------------------- removals


def published(kind: str, request_id: str, item: AccessItem) -> Handler:
    return lambda _r: httpx.Response(
        200, json=request_doc(request_id, item), headers={"x-forgerock-transactionid": "t-1"}
    )


async def test_publish_bodies_are_the_contract_examples(fake: FakeAic, client: PingOneAicClient) -> None:
    fake.on(
        "POST",
        "/iga/governance/requests/entitlementRemove",
        published("e", "f70b1565-0000-4000-8000-000000000001", ENT),
    )
    fake.on("POST", "/iga/governance/requests/roleRemove", published("r", "f70b1565-0000-4000-8000-000000000002", ROLE))
    fake.on(
        "POST",
        "/iga/governance/requests/applicationRemove",
        published("a", "f70b1565-0000-4000-8000-000000000003", APP),
    )

    batches = client.batch_items([removal(APP, 3), removal(ENT), removal(ROLE, 2)])
    # One item per batch (each write-ahead row all or nothing), accounts last.
    assert [[r.item.id for r in b] for b in batches] == [[ASSIGNMENT], [ROLE_ID], [APP_ID]]
    refs = await client.submit_removals(JDOE, [removal(ENT), removal(ROLE, 2), removal(APP, 3)], KEY)

    sent = {r.url.path.rsplit("/", 1)[1]: r for r in fake.seen if r.url.path.endswith("Remove")}
    assert all(query(r) == {"_action": "publish"} for r in sent.values())
    assert json.loads(sent["entitlementRemove"].content) == {
        "common": {
            "userId": USER_ID,
            "entitlementId": ASSIGNMENT,
            "justification": "[leaver-c7f3a1-1] Leaver: remove all remaining access (rule default)",
            "externalRequestId": "leaver-c7f3a1-1",
            "priority": "low",
            "context": {"type": "admin"},
        }
    }
    assert json.loads(sent["roleRemove"].content)["common"]["roleId"] == ROLE_ID
    assert json.loads(sent["applicationRemove"].content)["common"]["applicationId"] == APP_ID
    assert "entitlementId" not in json.loads(sent["roleRemove"].content)["common"]
    assert [(r.item_id, r.request_id == r.tracking_id, r.status) for r in refs] == [
        (ASSIGNMENT, True, IgaStatus.PENDING),
        (ROLE_ID, True, IgaStatus.PENDING),
        (APP_ID, True, IgaStatus.PENDING),
    ]


async def test_admin_context_and_account_id_are_settings(fake: FakeAic) -> None:
    fake.on("POST", "/iga/governance/requests/entitlementRemove", published("e", "r-1", ENT))
    item = AccessItem(
        ASSIGNMENT, "entitlement", "x", extra={"id_field": "entitlementId", "account_id": "system/AD/User/9"}
    )
    async with _client(make_target(admin_context=False, send_account_id=True, priority=None, expiry_days=7)) as c:
        await c.submit_removals(JDOE, [removal(item)], KEY)
    common = json.loads(fake.calls("POST", "/iga/governance/requests/entitlementRemove")[0].content)["common"]
    assert "context" not in common and "priority" not in common
    assert common["accountId"] == "system/AD/User/9"
    assert common["expiryDate"].endswith("+00:00")


def search_route(fake: FakeAic, hits: list[dict[str, Any]]) -> None:
    fake.on(
        "POST", "/iga/governance/requests/search", {"result": hits, "totalCount": len(hits), "resultCount": len(hits)}
    )


@pytest.mark.parametrize("shape", ["errors-200", "http-400"])
async def test_a_duplicate_refusal_is_adopted_as_the_open_request(
    fake: FakeAic, client: PingOneAicClient, shape: str
) -> None:
    existing = "3cd52fdd-0000-4000-8000-0000000000aa"
    if shape == "errors-200":
        refusal = {
            "errors": [{"error": "DUPLICATE", "message": "Duplicate request already exists.", "requestId": existing}]
        }
        fake.on("POST", "/iga/governance/requests/entitlementRemove", refusal)
    else:
        fake.on(
            "POST",
            "/iga/governance/requests/entitlementRemove",
            {"message": "Duplicate request already exists.", "requestId": existing},
            status=400,
        )
    draft = request_doc("d-1", key=None, draft=True)
    search_route(fake, [draft, request_doc(existing, key="someone-else", status="in-progress")])

    refs = await client.submit_removals(JDOE, [removal(ENT)], KEY)

    assert [(r.item_id, r.request_id) for r in refs] == [(ASSIGNMENT, existing)]
    assert "adopted" in (refs[0].message or "")
    search = fake.calls("POST", "/iga/governance/requests/search")[0]
    assert query(search) == {"_action": "search", "_pageSize": "100", "_pagedResultsOffset": "0"}
    assert json.loads(search.content) == {
        "targetFilter": {
            "operator": "AND",
            "operand": [
                {"operator": "EQUALS", "operand": {"targetName": "request.common.userId", "targetValue": USER_ID}},
                {
                    "operator": "EQUALS",
                    "operand": {"targetName": "request.common.entitlementId", "targetValue": ASSIGNMENT},
                },
                {"operator": "EQUALS", "operand": {"targetName": "requestType", "targetValue": "entitlementRemove"}},
            ],
        }
    }


async def test_a_refusal_in_errors_is_permanent_and_names_the_reason(fake: FakeAic, client: PingOneAicClient) -> None:
    fake.on(
        "POST", "/iga/governance/requests/entitlementRemove", {"errors": [{"message": "Justification is required"}]}
    )
    fake.on("POST", "/iga/governance/requests/roleRemove", published("r", "r-2", ROLE))
    refs = await client.submit_removals(JDOE, [removal(ENT), removal(ROLE, 2)], KEY)
    assert [r.item_id for r in refs] == [ROLE_ID]  # the refused item gets no ref: the pipeline fails it
    with pytest.raises(IgaPermanentError, match="Justification is required"):
        await client.submit_removals(JDOE, [removal(ENT)], KEY)


async def test_a_publish_without_an_answer_is_uncertain_and_never_retried(
    fake: FakeAic, client: PingOneAicClient
) -> None:
    fake.on("POST", "/iga/governance/requests/entitlementRemove", {"message": "Internal Server Error"}, status=500)
    fake.on("POST", "/iga/governance/requests/roleRemove", published("r", "r-2", ROLE))
    with stamina.set_testing(True, attempts=3), pytest.raises(IgaUncertainError):
        await client.submit_removals(JDOE, [removal(ENT), removal(ROLE, 2)], KEY)
    assert len(fake.calls("POST", "/iga/governance/requests/entitlementRemove")) == 1
    assert len(fake.calls("POST", "/iga/governance/requests/roleRemove")) == 1


async def test_find_existing_adopts_only_requests_carrying_the_key(fake: FakeAic, client: PingOneAicClient) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        terms = json.loads(request.content)["targetFilter"]["operand"]
        item = terms[1]["operand"]["targetValue"]
        hits = {
            ASSIGNMENT: [
                request_doc(
                    "older",
                    key=KEY,
                    status="complete",
                    decision="approved",
                    outcome="provisioned",
                    created="2026-11-20T00:00:00+00:00",
                ),
                request_doc("newer", key=KEY, created="2026-11-21T00:00:00+00:00"),
                request_doc("theirs", key="leaver-other-1"),
            ],
            ROLE_ID: [request_doc("draft", ROLE, key=KEY, draft=True), request_doc("open-other", ROLE, key=None)],
        }[item]
        return httpx.Response(200, json={"result": hits, "totalCount": len(hits), "resultCount": len(hits)})

    fake.on("POST", "/iga/governance/requests/search", answer)
    refs = await client.find_existing(JDOE, [removal(ENT), removal(ROLE, 2)], KEY)
    assert [(r.item_id, r.request_id, r.status) for r in refs] == [(ASSIGNMENT, "newer", IgaStatus.PENDING)]
    assert await client.find_existing(JDOE, [removal(ROLE, 2)], "leaver-zzz-1") == []


async def test_the_key_filter_is_added_only_when_set(fake: FakeAic) -> None:
    search_route(fake, [])
    async with _client(make_target(search_by_external_id=True)) as c:
        await c.find_existing(JDOE, [removal(ENT)], KEY)
    terms = json.loads(fake.calls("POST", "/iga/governance/requests/search")[0].content)["targetFilter"]["operand"]
    assert terms[-1] == {
        "operator": "EQUALS",
        "operand": {"targetName": "request.common.externalRequestId", "targetValue": KEY},
    }


# ---------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("status", "decision", "outcome", "draft", "expected"),
    [
        ("in-progress", None, None, False, IgaStatus.PENDING),
        ("provisioning", "approved", None, False, IgaStatus.PENDING),
        ("suspended", "approved", None, False, IgaStatus.PENDING),
        ("complete", "approved", "provisioned", False, IgaStatus.COMPLETED),
        ("complete", "approved", "fulfilled", False, IgaStatus.COMPLETED),
        ("complete", "approved", None, False, IgaStatus.COMPLETED),
        ("complete", "approved", "not provisioned", False, IgaStatus.FAILED),
        ("complete", "rejected", "denied", False, IgaStatus.REJECTED),
        ("complete", "rejected", None, False, IgaStatus.REJECTED),
        ("cancelled", None, "cancelled", False, IgaStatus.CANCELLED),
        ("cancelled", "approved", "provisioned", False, IgaStatus.CANCELLED),
        ("in-progress", None, None, True, IgaStatus.FAILED),
        ("some-new-status", None, None, False, IgaStatus.PENDING),
    ],
)
def test_the_status_mapping_table(
    status: str, decision: str | None, outcome: str | None, draft: bool, expected: IgaStatus
) -> None:
    doc = request_doc("r", status=status, decision=decision, outcome=outcome, draft=draft)
    doc["decision"]["comments"] = [{"comment": "Deprovisioning failed: target refused"}]
    state = request_state(doc)
    assert state.status is expected
    assert state.raw_status.startswith("draft/" if draft else status)
    if expected is IgaStatus.FAILED and not draft:
        assert state.message == "Deprovisioning failed: target refused"


async def test_get_requests_reads_each_request_and_skips_unknown_ones(fake: FakeAic, client: PingOneAicClient) -> None:
    done = request_doc("r-1", status="complete", decision="approved", outcome="provisioned")
    fake.on("GET", "/iga/governance/requests/r-1", done)
    fake.on("GET", "/iga/governance/requests/r-2", {"message": "Request not found"}, status=404)
    refs = [RequestRef(ASSIGNMENT, "r-1", "r-1"), RequestRef(ROLE_ID, "r-2", "r-2")]
    states = await client.get_requests(JDOE, refs)
    assert {k: (s.status, s.raw_status) for k, s in states.items()} == {
        "r-1": (IgaStatus.COMPLETED, "complete/approved/provisioned")
    }


@pytest.mark.parametrize(
    ("answer", "status", "then", "expected"),
    [
        (request_doc("r-1", status="cancelled", outcome="cancelled"), 200, None, True),
        ({"message": "Request r-1 is complete: it cannot be changed"}, 400, "complete", False),
        ({"message": "Request r-1 is cancelled"}, 400, "cancelled", True),
        ({"message": "Request not found"}, 404, None, False),
    ],
)
async def test_cancel_uses_the_request_action(
    fake: FakeAic, client: PingOneAicClient, answer: Any, status: int, then: str | None, expected: bool
) -> None:
    fake.on("POST", "/iga/governance/requests/r-1", answer, status=status)
    if then:
        fake.on("GET", "/iga/governance/requests/r-1", request_doc("r-1", status=then, outcome=then))
    assert await client.cancel_request(JDOE, RequestRef(ASSIGNMENT, "r-1", "r-1"), "leaver: rehire, case 7") is expected
    sent = fake.calls("POST", "/iga/governance/requests/r-1")[0]
    assert query(sent) == {"_action": "cancel"}
    assert json.loads(sent.content) == {"comment": "leaver: rehire, case 7"}


# ---------------------------------------------------------------- against the simulator


@pytest.fixture()
async def simulated() -> AsyncIterator[tuple[Any, Callable[..., PingOneAicClient]]]:
    """The simulator in-process, and a factory of clients on it (options as keywords)."""
    sim_app = sim_create_app()
    sim = sim_app.state.sim
    sim.configure({"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.0})
    made: list[PingOneAicClient] = []

    def connect(fields: dict[str, Any] | None = None, **options: Any) -> PingOneAicClient:
        target = demo_target("http://aic.test")
        http = HttpSettings(requests_per_second=1000)
        target = target.model_copy(update={"options": {**target.options, **options}, "http": http, **(fields or {})})
        made.append(PingOneAicClient(target, transport=httpx.ASGITransport(app=sim_app)))
        return made[-1]

    yield sim, connect
    for c in made:
        await c.aclose()


async def jdoe_and_items(c: PingOneAicClient) -> tuple[IgaUser, dict[str, AccessItem]]:
    user = await c.find_user(UserIdentifiers(username="jdoe"))
    return user, {i.name: i for i in await c.list_access(user)}


async def test_the_demo_jdoe_end_to_end_on_the_simulator(simulated: Any) -> None:
    sim, connect = simulated
    c = connect()
    user, items = await jdoe_and_items(c)
    assert len(items) >= 8 and items["Domain Admins"].privileged
    assert (items["Salesforce Sales User"].granted_by, items["All Staff"].granted_by) == ("role", "birthright")
    assert user.attributes["legalHold"] == "false"

    refs = await c.submit_removals(user, [removal(items["Sales Global"]), removal(items["Finance RW"], 2)], KEY)
    assert [s.key for s in sim.submissions()] == [KEY, KEY]
    sim.clock.advance(1)
    states = await c.get_requests(user, refs)
    assert {s.raw_status for s in states.values()} == {"complete/approved/provisioned"}
    left = {i.name for i in await c.list_access(user)}
    assert not left & {"Sales Global", "Salesforce Sales User", "Finance RW"}  # the role took its entitlement


async def test_a_duplicate_answered_as_400_is_adopted_too(simulated: Any) -> None:
    sim, connect = simulated
    sim.configure({"duplicate_as": "http400", "fulfil_delay": 60})
    c = connect()
    user, items = await jdoe_and_items(c)
    first = await c.submit_removals(user, [removal(items["VPN Users"])], "leaver-1-1")
    again = await c.submit_removals(user, [removal(items["VPN Users"])], "leaver-2-1")
    assert again[0].request_id == first[0].request_id
    assert len(sim.submissions()) == 1


async def test_recovery_does_not_need_a_searchable_key(simulated: Any) -> None:
    sim, connect = simulated
    sim.configure({"external_id_searchable": False})
    c = connect(search_by_external_id=True)
    user, items = await jdoe_and_items(c)
    refs = await c.submit_removals(user, [removal(items["VPN Users"])], "leaver-3-1")
    assert [r.request_id for r in await c.find_existing(user, [removal(items["VPN Users"])], "leaver-3-1")] == [
        refs[0].request_id
    ]
    assert await c.find_existing(user, [removal(items["VPN Users"])], "leaver-3-2") == []


async def test_account_id_is_refused_by_an_older_schema_and_accepted_by_a_newer(simulated: Any) -> None:
    sim, connect = simulated
    c = connect(send_account_id=True)
    user, items = await jdoe_and_items(c)
    with pytest.raises(IgaPermanentError, match="accountId is not defined"):
        await c.submit_removals(user, [removal(items["VPN Users"])], "leaver-4-1")
    sim.configure({"accept_account_id": True})
    assert await c.submit_removals(user, [removal(items["VPN Users"])], "leaver-4-2")


async def test_a_request_waiting_for_approval_stays_pending(simulated: Any) -> None:
    sim, connect = simulated
    sim.configure({"approval_delay": 30})
    c = connect(admin_context=False)
    user, items = await jdoe_and_items(c)
    refs = await c.submit_removals(user, [removal(items["VPN Users"])], "leaver-5-1")
    sim.clock.advance(10)
    assert (await c.get_requests(user, refs))[refs[0].tracking_id].raw_status == "in-progress"
    sim.clock.advance(25)
    assert (await c.get_requests(user, refs))[refs[0].tracking_id].status is IgaStatus.COMPLETED


async def test_an_expired_token_is_renewed_with_a_new_assertion(simulated: Any) -> None:
    sim, connect = simulated
    sim.configure({"token_lifetime": 120})
    c = connect()
    await c.find_user(UserIdentifiers(username="jdoe"))
    sim.clock.advance(121)
    await c.find_user(UserIdentifiers(username="jdoe"))
    tokens = [e for e in sim.log if e.path == "/am/oauth2/access_token"]
    assert [e.status for e in tokens] == [200, 200]
    assert all(e.body["assertion"] == "***" for e in tokens)  # the simulator's log masks it


async def test_client_credentials_need_the_tenant_to_accept_them_for_iga(simulated: Any) -> None:
    sim, connect = simulated
    realm = "http://aic.test/am/oauth2/realms/root/realms/alpha/access_token"
    fields = {"client_id": CLIENT_ID, "client_secret": SecretStr(CLIENT_SECRET), "token_url": realm}
    c = connect(fields, auth="client_credentials", service_account_id=None, private_key=None)
    user, items = await jdoe_and_items(c)
    assert items
    sim.configure({"client_token_accepted_by_iga": False})
    with pytest.raises(IgaPermanentError, match="403"):
        await c.list_access(user)
