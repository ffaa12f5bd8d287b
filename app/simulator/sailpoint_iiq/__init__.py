"""Simulator of SailPoint IdentityIQ 8.x's SCIM 2.0 API, as the contract
`backends/sailpoint-iiq.md` §9 describes it: Basic and OAuth2 client-credentials sign-in (opaque
tokens that expire), Users with their roles and entitlements only on request, Accounts,
Entitlements and Roles, SCIM filters and ListResponse paging, LCM Provisioning launches whose
plan XML is parsed and applied, TaskResults that move over the simulator clock, approval sets,
SCIM error bodies, and one `/_config` switch per assumption.

`directory` seeds the demo people, `plan` parses plans, `launches` runs them, `scim` holds the
protocol's shapes, `simulator` the state and probes, `app` serves it. Every plan received is kept
and shown at `GET /_state/plans`.
"""

from __future__ import annotations

from pydantic import SecretStr

from app.settings import TargetSettings
from app.simulator import SimulatorSpec
from app.simulator.sailpoint_iiq.app import create_app
from app.simulator.sailpoint_iiq.config import IiqConfig
from app.simulator.sailpoint_iiq.simulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    READER_PASSWORD,
    READER_USER,
    ROOT,
    SCIM,
    SERVICE_PASSWORD,
    SERVICE_USER,
    SYSTEM,
    IiqSimulator,
)


def demo_target(base_url: str, name: str = SYSTEM) -> TargetSettings:
    """A target pointing leaver's adapter at this simulator: OAuth2 client credentials, whose
    proxy user (the launcher) is the service account."""
    base_url = base_url.rstrip("/")
    return TargetSettings(
        name=name,
        system=SYSTEM,
        base_url=f"{base_url}{SCIM}",
        token_url=f"{base_url}{ROOT}/oauth2/token",
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        options={"launcher": SERVICE_USER},
    )


SPEC = SimulatorSpec(
    system=SYSTEM,
    create_app=create_app,
    demo_target=demo_target,
    # Foreground launches without approval complete inside the call; a removal leaves the list at once.
    test_config={"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0},
    small_pages={"page_size": 3},
    withdraws=False,  # IIQ's SCIM API cannot terminate a launched workflow
    finds_by_key=False,  # SCIM has no field leaver can write and search for later
)

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "READER_PASSWORD",
    "READER_USER",
    "SERVICE_PASSWORD",
    "SERVICE_USER",
    "SPEC",
    "IiqConfig",
    "IiqSimulator",
    "create_app",
    "demo_target",
]
