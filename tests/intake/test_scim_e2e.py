"""A SCIM deactivation, as Entra ID's and Okta's provisioning clients send it, ends with the user's
access removed in the IGA: real leaver (API and workers) and a real IGA simulator over HTTP."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.runtime import build_runtime
from app.settings import IntakeSource
from tests.conftest import OPS_TOKEN, make_settings
from tests.intake.test_scim import AUTH, ENTERPRISE, entra_user, ops
from tests.servers import serve_in_thread
from tests.support import FIRST_SYSTEM, serve_simulator

SCIM = {"name": "idp-scim", "format": "scim", "secrets": [AUTH["authorization"].removeprefix("Bearer ")]}


def entra_client(http: httpx.Client, url: str) -> None:
    """Entra: the Test connection query, a create, then its deactivation without the 2020 flag."""
    users = f"{url}/scim/v2/Users"
    assert (
        http.get(users, params={"filter": 'userName eq "00000000-0000-0000-0000-000000000000"'}, headers=AUTH).json()[
            "totalResults"
        ]
        == 0
    )
    found = http.get(users, params={"filter": 'userName eq "jdoe@example.com"'}, headers=AUTH).json()
    assert found["totalResults"] == 0
    created = http.post(users, json=entra_user(), headers=AUTH).json()
    patch = ops({"op": "Replace", "path": "active", "value": "False"})
    assert http.patch(f"{users}/{created['id']}", json=patch, headers=AUTH).json()["active"] is False


def okta_client(http: httpx.Client, url: str) -> None:
    """Okta: a filtered lookup with paging, a create with a password, then a full PUT with active false."""
    users = f"{url}/scim/v2/Users"
    params = {"filter": 'userName eq "jdoe"', "startIndex": "1", "count": "100"}
    assert http.get(users, params=params, headers=AUTH).json()["Resources"] == []
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "jdoe",
        "name": {"givenName": "J", "familyName": "Doe"},
        "emails": [{"primary": True, "value": "jdoe@example.com", "type": "work"}],
        "displayName": "J Doe",
        "password": "Okta-sends-this-1",
        "active": True,
        ENTERPRISE: {"employeeNumber": "E1001"},
    }
    created = http.post(users, json=body, headers=AUTH).json()
    put = http.put(f"{users}/{created['id']}", json={**body, "id": created["id"], "active": False}, headers=AUTH)
    assert put.status_code == 200 and put.json()["active"] is False and "password" not in put.json()


@pytest.mark.parametrize("client", [entra_client, okta_client], ids=["entra", "okta"])
def test_a_scim_deactivation_removes_the_user_s_access(
    client: Callable[[httpx.Client, str], None], database_url: str, tmp_path: Path
) -> None:
    with serve_simulator(FIRST_SYSTEM) as sim:
        settings = make_settings(
            database_url, tmp_path, [sim.target(attempts=3)], sources=[IntakeSource.model_validate(SCIM)]
        )
        with serve_in_thread(create_app(build_runtime(settings))) as url, httpx.Client(timeout=30) as http:
            client(http, url)
            cases = _wait_for_cases(http, url, "jdoe@example.com")
            assert [c["state"] for c in cases] == ["done"]
            items = cases[0]["items"]
            removed = [i for i in items if i["state"] == "removed"]
            assert removed and all(i["iga_request_id"] for i in removed if i["iga_request_id"] is not None)
            submitted = Counter(sim.submitted_items())
            assert submitted and set(submitted.values()) == {1}, "each item is sent once"


def _wait_for_cases(http: httpx.Client, url: str, key: str, timeout: float = 45.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        resp = http.get(f"{url}/status/users/{key}", headers={"authorization": f"Bearer {OPS_TOKEN}"})
        if resp.status_code == 200:
            cases = [c for e in resp.json()["events"] for c in e["cases"]]
            if cases and all(c["state"] in ("done", "failed", "cancelled") for c in cases):
                return cases
        assert time.monotonic() < deadline, f"no finished case for {key}: {resp.text[:300]}"
        time.sleep(0.2)
