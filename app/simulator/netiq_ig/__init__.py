"""Simulator of NetIQ / OpenText Identity Governance 3.7 - 4.2 (contract: backends/netiq-ig.md, §9).

Same paths, bodies, ID formats, Fault errors, paging and OSP password grant as the real REST API.
Request items move through their statuses on the simulator clock, computed when asked, so tests
advance `POST /_clock` instead of sleeping. Points the contract marks as assumed [A] are reproduced
as assumed there; the ones a test may want to vary are switches in `/_config`.

`wire` holds the API's constants, Fault errors, parameters and token shape; `model` the
configuration and records; `catalog` the people and access seeded from the demo; `query` the user
search; `shapes` the JSON answers; `state` the request state machine and the probes; `app` the routes.
"""

from __future__ import annotations

from pydantic import SecretStr

from app.settings import TargetSettings
from app.simulator import SimulatorSpec
from app.simulator.netiq_ig.app import create_app
from app.simulator.netiq_ig.model import NetIqConfig
from app.simulator.netiq_ig.state import NetIqIgSimulator
from app.simulator.netiq_ig.wire import (
    CLIENT_ID,
    CLIENT_SECRET,
    CONTRACT_SMALL_PAGES,
    NO_RIGHTS_USER,
    OSP,
    SERVICE_PASSWORD,
    SERVICE_USER,
    SYSTEM,
    IgFault,
    fault_body,
)


def demo_target(base_url: str, name: str = SYSTEM) -> TargetSettings:
    """A target for the real adapter against this simulator served at `base_url`."""
    base = base_url.rstrip("/")
    return TargetSettings(
        name=name,
        system=SYSTEM,
        base_url=base,
        token_url=f"{base}{OSP}/token",
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        username=SERVICE_USER,
        password=SecretStr(SERVICE_PASSWORD),
        # The simulator marks privileged permissions with risk HIGH (risk values are site-defined).
        options={"privileged_field": "risk", "privileged_values": ["HIGH"]},
    )


SPEC = SimulatorSpec(
    system=SYSTEM,
    create_app=create_app,
    demo_target=demo_target,
    test_config={"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.3},
    small_pages=CONTRACT_SMALL_PAGES,
)

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CONTRACT_SMALL_PAGES",
    "NO_RIGHTS_USER",
    "OSP",
    "SERVICE_PASSWORD",
    "SERVICE_USER",
    "SPEC",
    "SYSTEM",
    "IgFault",
    "NetIqConfig",
    "NetIqIgSimulator",
    "create_app",
    "demo_target",
    "fault_body",
]
