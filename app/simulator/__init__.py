"""Faithful fake IGA servers, one module per system, used by tests, benchmarks and the demo.

`SIMULATORS` maps a system name to the factory of its FastAPI app (imported lazily so that a
worker process never loads simulator code it does not run).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

#: system name -> "module:factory" of a zero-argument function returning the simulator app
SIMULATORS: dict[str, str] = {
    "netiq-ig": "app.simulator.netiq_ig:create_app",
    "sailpoint-isc": "app.simulator.sailpoint_isc:create_app",
}


def create_simulator(system: str) -> FastAPI:
    """Build a fresh simulator app with its demo users for `system`."""
    try:
        module_name, factory = SIMULATORS[system].split(":")
    except KeyError:
        raise ValueError(f"no simulator for system {system!r}; known: {', '.join(sorted(SIMULATORS))}") from None
    module = importlib.import_module(module_name)
    app: FastAPI = getattr(module, factory)()
    return app
