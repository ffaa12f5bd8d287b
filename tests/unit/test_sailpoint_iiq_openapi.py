"""Every call the IdentityIQ adapter sends, and every answer the simulator gives it, against
SailPoint's own OpenAPI description of the IIQ 8.3 SCIM API (`tests/specs/sailpoint-iiq-scim.yaml`,
a copy of the vendor's published spec).

The published spec differs from real IIQ answers in a few places; those are corrected here, in
the loaded copy, and nowhere in the code (each one is the contract's finding):
- the 201 of POST /LaunchedWorkflows types `meta` as an array; real answers carry an object;
- LaunchedWorkflow `input`/`output` are typed as one object; real answers carry arrays (`[{}]`);
- an Entitlement's `classifications` is typed as one object; IIQ lists them (as Roles do);
- only HTTP Basic is declared; the adapter also signs in with OAuth2 bearer tokens (IIQ 7.1+), so
  requests are checked with a Basic header standing in for the bearer token.
Launch bodies are `application/scim+json`, which the validator is told to read as JSON (else it would
check nothing). Error answers (4xx/5xx) are not described by the spec; their SCIM shape is checked by the
simulator's own tests.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse

from app.domain import RemovalRequest, UserIdentifiers
from app.iga.sailpoint_iiq import SailPointIiqClient
from app.settings import HttpSettings
from app.simulator.base import FaultRule, Faults
from app.simulator.sailpoint_iiq import IiqSimulator, create_app, demo_target
from tests.servers import Recorder, serve_in_thread

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "sailpoint-iiq-scim.yaml"
HOST = "http://localhost:8080"
SCIM = "/identityiq/scim/v2"
LAUNCH = f"{SCIM}/LaunchedWorkflows"


def _array_of_pairs() -> dict[str, Any]:
    pair = {"type": "object", "properties": {k: {"type": "string"} for k in ("key", "value", "type")}}
    return {"type": "array", "items": pair}


def _correct(raw: dict[str, Any]) -> dict[str, Any]:
    """The published spec with the defects listed in the module docstring corrected."""
    spec = copy.deepcopy(raw)
    paths = spec["paths"]
    created = paths["/LaunchedWorkflows"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    created["properties"]["meta"] = {"type": "object"}
    lists = paths["/LaunchedWorkflows"]["get"]["responses"]["200"]["content"]
    one = paths["/LaunchedWorkflow/{launchedWorkflowId}"]["get"]["responses"]["200"]["content"]
    schemas = [c["schema"]["properties"]["Resources"]["items"] for c in lists.values()] + [
        c["schema"] for c in one.values()
    ]
    for schema in schemas:
        for name in ("input", "output"):
            if name in schema.get("properties", {}):
                schema["properties"][name] = _array_of_pairs()
    for content in paths["/Entitlements/{entitlementId}"]["get"]["responses"]["200"]["content"].values():
        content["schema"]["properties"]["classifications"] = {"type": "array", "items": {"type": "object"}}
    return spec


@pytest.fixture(scope="module")
def api() -> OpenAPI:
    if not SPEC_PATH.is_file():
        pytest.fail(f"the vendor OpenAPI description is missing: expected {SPEC_PATH} (vendored under tests/specs/)")
    with SPEC_PATH.open() as fh:
        raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    # IIQ's requests are application/scim+json: parsed as JSON, so the body schema really applies.
    config = Config(spec_validator_cls=None, extra_media_type_deserializers={"application/scim+json": json.loads})
    return OpenAPI.from_dict(_correct(raw), config=config)


def mock_request(method: str, path: str, query: str, body: Any) -> MockRequest:
    return MockRequest(
        HOST,
        method.lower(),
        path,
        args=dict(parse_qsl(query)),
        headers={"Authorization": "Basic c3ZjLWxlYXZlcjpwdw=="},
        data=json.dumps(body).encode() if body is not None else None,
        content_type="application/scim+json" if body is not None else "application/json",
    )


@pytest.fixture()
def served() -> Iterator[tuple[IiqSimulator, str]]:
    app = create_app()
    with serve_in_thread(app) as url:
        yield app.state.sim, url


@pytest.fixture()
async def recorded(served: tuple[IiqSimulator, str]) -> AsyncIterator[tuple[SailPointIiqClient, Recorder]]:
    _, url = served
    target = demo_target(url)
    target = target.model_copy(
        update={"options": {**target.options, "page_size": 3}, "http": HttpSettings(requests_per_second=1000)}
    )
    recorder = Recorder()
    client = SailPointIiqClient(target, transport=recorder)
    yield client, recorder
    await client.aclose()


async def drive_adapter(sim: IiqSimulator, client: SailPointIiqClient) -> None:
    """Every kind of call the adapter makes: lookups, listing, launches, polls, recovery."""
    for ids in (
        UserIdentifiers(username="jdoe"),
        UserIdentifiers(email="jdoe@example.com"),
        UserIdentifiers(employee_id="E1001"),
        UserIdentifiers(dn="cn=jdoe,ou=users,o=example"),
    ):
        await client.find_user(ids)
    user = await client.find_user(UserIdentifiers(username="jdoe"))
    items = [i for i in await client.list_access(user) if i.removable]
    requests = [RemovalRequest(i, n, "leaver: user.terminated evt-1") for n, i in enumerate(items)]
    with sim.lock:
        sim.configure({"approval_delay": 30})
    batches = client.batch_items(requests)
    refs = await client.submit_removals(user, batches[0][:3], "leaver-1-1")
    await client.get_requests(user, refs)
    with sim.lock:
        sim.faults = Faults(rules=[FaultRule(method="POST", path=LAUNCH, status=500, when="after", count=1)])
    try:
        await client.submit_removals(user, batches[0][3:5], "leaver-1-2")
    except Exception:
        await client.find_existing(user, batches[0][3:5], "leaver-1-2")  # finds the launch still running
    sim.clock.advance(31)
    await client.get_requests(user, refs)  # Success: the approval set is read too
    with sim.lock:
        sim.configure({"approval_delay": 0})
    await client.submit_removals(user, batches[1], "leaver-1-3")


def entries(sim: IiqSimulator) -> list[tuple[str, str, str, Any]]:
    with sim.lock:
        return [(e.method, e.path, e.query, e.body) for e in sim.log if e.path.startswith(SCIM)]


async def test_every_request_the_adapter_sends_matches_the_spec(
    served: tuple[IiqSimulator, str], recorded: tuple[SailPointIiqClient, Recorder], api: OpenAPI
) -> None:
    sim, _ = served
    client, _ = recorded
    await drive_adapter(sim, client)
    calls = entries(sim)
    operations = {(m, p.removeprefix(SCIM).split("/")[1]) for m, p, _, _ in calls}
    assert operations == {
        ("GET", "Users"),
        ("GET", "Accounts"),
        ("GET", "Entitlements"),
        ("GET", "Roles"),
        ("POST", "LaunchedWorkflows"),
        ("GET", "LaunchedWorkflows"),
        ("GET", "LaunchedWorkflow"),
        ("GET", "TaskResults"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method, path, query, body in calls:
            api.validate_request(mock_request(method, path, query, body))


async def test_every_launch_body_carries_a_plan_the_spec_shape_allows(
    served: tuple[IiqSimulator, str], recorded: tuple[SailPointIiqClient, Recorder], api: OpenAPI
) -> None:
    sim, _ = served
    client, _ = recorded
    await drive_adapter(sim, client)
    launches = [body for method, path, _, body in entries(sim) if method == "POST"]
    assert len(launches) == 3
    for body in launches:
        launch = body["urn:ietf:params:scim:schemas:sailpoint:1.0:LaunchedWorkflow"]
        assert launch["workflowName"] == "LCM Provisioning"
        plan = next(i for i in launch["input"] if i["key"] == "plan")
        assert plan["type"] == "application/xml" and plan["value"].startswith("<ProvisioningPlan ")
        # The spec's own form (top-level) is checked against its request schema too.
        flat = {"schemas": body["schemas"], **launch}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            api.validate_request(mock_request("POST", LAUNCH, "", flat))


def test_the_check_has_teeth(api: OpenAPI) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for wrong in ({"workflowName": 5}, {"input": "plan"}):
            with pytest.raises(OpenAPIError):
                api.validate_request(mock_request("POST", LAUNCH, "", wrong))
        with pytest.raises(OpenAPIError):
            api.validate_response(
                mock_request("GET", f"{SCIM}/TaskResults/x", "", None),
                MockResponse(json.dumps({"completionStatus": "Done"}).encode()),
            )


async def test_every_simulator_answer_to_the_adapter_matches_the_spec(
    served: tuple[IiqSimulator, str], recorded: tuple[SailPointIiqClient, Recorder], api: OpenAPI
) -> None:
    sim, _ = served
    client, recorder = recorded
    await drive_adapter(sim, client)
    checked = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for request, response, content in recorder.calls:
            url = urlsplit(str(request.url))
            if not url.path.startswith(SCIM) or response.status_code >= 400:
                continue
            sent = json.loads(request.content) if request.content else None
            answer = MockResponse(content, status_code=response.status_code)
            api.validate_response(mock_request(request.method, url.path, url.query, sent), answer)
            checked.add((request.method, url.path.removeprefix(SCIM).split("/")[1], response.status_code))
    assert ("POST", "LaunchedWorkflows", 201) in checked and ("GET", "TaskResults", 200) in checked
    assert ("GET", "LaunchedWorkflow", 200) in checked and ("GET", "LaunchedWorkflows", 200) in checked
