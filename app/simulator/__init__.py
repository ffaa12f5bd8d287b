"""Faithful fake IGA servers, one module (or package) per system, used by tests, benchmarks and the
demo. Each exposes a `SPEC`; tests and the demo find every system through `SIMULATORS`, so a new
system joins them with one line here.

Simulators are imported lazily, so a worker process never loads simulator code it does not run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.settings import TargetSettings

#: system name -> the module (or package) that defines its `SPEC`
SIMULATORS: dict[str, str] = {
    "netiq-ig": "app.simulator.netiq_ig",
    "sailpoint-isc": "app.simulator.sailpoint_isc",
    "idhub": "app.simulator.idhub",
    "pingone-aic": "app.simulator.pingone_aic",
    "sailpoint-iiq": "app.simulator.sailpoint_iiq",
}


@dataclass(frozen=True)
class SimulatorSpec:
    """How tests and the demo use one system's simulator, without knowing its wire format."""

    system: str
    #: A fresh app with the demo people; `app.state.sim` is the simulator with its probes.
    create_app: Callable[[], FastAPI]
    #: (base URL, target name) -> the settings of a target pointed at a running simulator.
    demo_target: Callable[[str, str], TargetSettings]
    #: `POST /_config` for fast tests: no approval wait, short fulfilment, throttling lifted.
    test_config: dict[str, Any] = field(default_factory=dict)
    #: Adapter options that make it ask for pages of 3 (the contract suite checks paging with them).
    small_pages: dict[str, Any] = field(default_factory=dict)
    #: Whether the system's API can withdraw a submitted request (a rehire asks it to).
    withdraws: bool = True
    #: Whether a submission can be found again by leaver's correlation key. Where it cannot (IIQ), the
    #: adapter judges an interrupted send by its effect: what is no longer held is adopted, not resent.
    finds_by_key: bool = True


def simulator_spec(system: str) -> SimulatorSpec:
    try:
        module = importlib.import_module(SIMULATORS[system])
    except KeyError:
        raise ValueError(f"no simulator for system {system!r}; known: {', '.join(sorted(SIMULATORS))}") from None
    spec: SimulatorSpec = module.SPEC
    return spec


def create_simulator(system: str) -> FastAPI:
    """A fresh simulator app with its demo users for `system`."""
    return simulator_spec(system).create_app()
