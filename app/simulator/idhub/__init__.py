"""Simulator of IDHub (Sath), API 1.0.0 as the contract `backends/idhub.md` §9 describes it:
Keycloak sign-in with a tenant header, the catalog with live `accessList`s, user accounts,
carts whose submit makes one UserRequest per item and beneficiary (Mongo ObjectIds, 32-hex
correlation ids, 5-hex request ids), the request workflow and approval tasks over the simulator
clock, RESTHeart errors and paging, and one `/_config` switch per assumption.

`catalog` seeds the demo people, `state` holds carts, requests and tasks, `wire` renders
documents, `api` dispatches calls by the configured route table, `app` serves it.
"""

from __future__ import annotations

from pydantic import SecretStr

from app.settings import TargetSettings
from app.simulator import SimulatorSpec
from app.simulator.idhub.api import CLIENT_ID, CLIENT_SECRET
from app.simulator.idhub.app import SYSTEM, IdHubSimulator, create_app
from app.simulator.idhub.catalog import object_id
from app.simulator.idhub.config import TENANT, IdHubConfig

#: The IDHub user leaver submits as (carts name it requester and owner).
SERVICE_USER = {
    "login": "svc-leaver",
    "employee_number": "SVC0001",
    "display_name": "Leaver Service",
    "user_id": object_id("User", "svc-leaver"),
}


def demo_target(base_url: str, name: str = SYSTEM) -> TargetSettings:
    """A target pointing leaver's adapter at this simulator (its Keycloak client and tenant)."""
    base_url = base_url.rstrip("/")
    return TargetSettings(
        name=name,
        system=SYSTEM,
        base_url=base_url,
        token_url=f"{base_url}/auth/realms/{TENANT}/protocol/openid-connect/token",
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        # The simulator lists a request as soon as it makes it: a short wait after a submit is enough.
        options={
            "tenant": TENANT,
            "requester": dict(SERVICE_USER),
            "resolve_attempts": 3,
            "resolve_interval_seconds": 0.5,
        },
    )


SPEC = SimulatorSpec(
    system=SYSTEM,
    create_app=create_app,
    demo_target=demo_target,
    test_config={"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.3},
    small_pages={"page_size": 3},
    withdraws=False,  # IDHub offers no API to withdraw a submitted request
)

__all__ = ["SERVICE_USER", "SPEC", "IdHubConfig", "IdHubSimulator", "create_app", "demo_target"]
