"""Which adapter serves which IGA system, and building one client per configured target."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import httpx

from app.iga.base import IgaClient
from app.settings import TargetSettings

#: system name -> "module:class"; each class takes (target, transport=None).
ADAPTERS: dict[str, str] = {
    "netiq-ig": "app.iga.netiq_ig:NetIqIgClient",
    "sailpoint-isc": "app.iga.sailpoint_isc:SailPointIscClient",
    "idhub": "app.iga.idhub:IdHubClient",
    "pingone-aic": "app.iga.pingone_aic:PingOneAicClient",
    "sailpoint-iiq": "app.iga.sailpoint_iiq:SailPointIiqClient",
}

ClientFactory = Callable[..., IgaClient]


def build_client(target: TargetSettings, transport: httpx.AsyncBaseTransport | None = None) -> IgaClient:
    """A ready client for `target` (raises ValueError for a system with no adapter yet)."""
    try:
        module_name, class_name = ADAPTERS[target.system].split(":")
    except KeyError:
        raise ValueError(
            f"target {target.name!r}: no adapter for system {target.system!r} yet; "
            f"available: {', '.join(sorted(ADAPTERS))}"
        ) from None
    cls: ClientFactory = getattr(importlib.import_module(module_name), class_name)
    return cls(target, transport=transport)
