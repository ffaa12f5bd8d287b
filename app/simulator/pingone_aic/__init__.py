"""Simulator of PingOne Advanced Identity Cloud with Identity Governance, as the contract
`backends/pingone-aic.md` §9 describes it: AM's token endpoints (service-account JWT bearer and
client credentials), IDM managed-user queries, IGA grants, accounts and governance requests with
their decisions over the simulator clock, duplicates refused by `uniqueKeys`, drafts, IGA and
CREST errors, offset and cookie paging, and one `/_config` switch per assumption.

`directory` seeds the demo people, `requests` holds the requests and their workflow, `wire`
renders documents, `filters` evaluates `_queryFilter` and `targetFilter`, `signin` the tokens,
`api` the calls, `app` serves them.
"""

from __future__ import annotations

from app.settings import TargetSettings
from app.simulator import SimulatorSpec
from app.simulator.pingone_aic.app import SYSTEM, PingOneAicSimulator, create_app
from app.simulator.pingone_aic.config import SimConfig
from app.simulator.pingone_aic.keys import SERVICE_ACCOUNT_ID, demo_private_key_text


def demo_target(base_url: str, name: str = SYSTEM) -> TargetSettings:
    """A target pointing leaver's adapter at this simulator, signing in as its service account."""
    base_url = base_url.rstrip("/")
    return TargetSettings(
        name=name,
        system=SYSTEM,
        base_url=base_url,
        token_url=f"{base_url}/am/oauth2/access_token",
        options={"service_account_id": SERVICE_ACCOUNT_ID, "private_key": demo_private_key_text()},
    )


SPEC = SimulatorSpec(
    system=SYSTEM,
    create_app=create_app,
    demo_target=demo_target,
    test_config={"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.3},
    small_pages={"page_size": 3, "lookup_page_size": 3},
)

__all__ = ["SPEC", "PingOneAicSimulator", "SimConfig", "create_app", "demo_target"]
