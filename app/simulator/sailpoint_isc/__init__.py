"""A faithful fake of SailPoint Identity Security Cloud (IdentityNow), API v3.

It serves what leaver uses (contract `backends/sailpoint-isc.md` §9): the token endpoint, identity
search, accounts, access requests (submit, status, cancel), with ISC's IDs, error bodies, paging,
throttling and an asynchronous per-item state machine driven by the simulator clock. The same
routes answer under `/v3`, `/v2024`, `/v2025` and `/v2026`, as the real tenant does.

Where the real behaviour is an assumption, a `/_config` switch lets tests choose.

`wire` holds the constants, IDs, error bodies, paging and request checks; `query` the filter and
search languages; `model` the configuration and records; `docs` the JSON documents; `state` the
request state machine and the probes; `app` the routes.
"""

from __future__ import annotations

from pydantic import SecretStr

from app.settings import TargetSettings
from app.simulator import SimulatorSpec
from app.simulator.sailpoint_isc.app import create_app
from app.simulator.sailpoint_isc.model import IscConfig
from app.simulator.sailpoint_isc.state import IscSimulator
from app.simulator.sailpoint_isc.wire import (
    API_CLIENT_ID,
    API_CLIENT_SECRET,
    CONTRACT_SMALL_PAGES,
    PAT_CLIENT_ID,
    PAT_CLIENT_SECRET,
    SYSTEM,
    IscError,
    error_body,
    hex_id,
    iso,
)


def demo_target(base_url: str, name: str = SYSTEM) -> TargetSettings:
    """A target that points leaver's adapter at this simulator with the ORG_ADMIN PAT."""
    base_url = base_url.rstrip("/")
    return TargetSettings(
        name=name,
        system=SYSTEM,
        base_url=base_url,
        token_url=f"{base_url}/oauth/token",
        client_id=PAT_CLIENT_ID,
        client_secret=SecretStr(PAT_CLIENT_SECRET),
        # The simulator lists a request as soon as it is made: a short lookup grace is enough.
        options={"lookup_grace_tries": 2, "lookup_grace_seconds": 0.5},
    )


SPEC = SimulatorSpec(
    system=SYSTEM,
    create_app=create_app,
    demo_target=demo_target,
    # ISC also throttles callers (100 calls per 10 s per token by default): lifted for tests.
    test_config={"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.3, "rate_limit_per_10s": 100_000},
    small_pages=CONTRACT_SMALL_PAGES,
)

__all__ = [
    "API_CLIENT_ID",
    "API_CLIENT_SECRET",
    "CONTRACT_SMALL_PAGES",
    "PAT_CLIENT_ID",
    "PAT_CLIENT_SECRET",
    "SPEC",
    "SYSTEM",
    "IscConfig",
    "IscError",
    "IscSimulator",
    "create_app",
    "demo_target",
    "error_body",
    "hex_id",
    "iso",
]
