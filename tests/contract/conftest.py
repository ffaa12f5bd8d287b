"""Fixtures of the shared contract suite: every system that has both a simulator
(`app.simulator.SIMULATORS`) and an adapter (`app.iga.registry.ADAPTERS`) runs the same tests.

What a system provides to join:
- its simulator module has `create_app()` and `demo_target(base_url, name)`, seeds the demo people,
  and answers the standard control routes: `/_reset`, `/_faults`, `/_log`, `/_clock`, and
  `POST /_config` with the standard keys (`approval_delay`, `fulfil_delay`, `verify_delay`, `outcome`,
  `token_lifetime`, `revoke_tokens`, `page_size_max`), returning the current values;
- optionally, its simulator module's `CONTRACT_SMALL_PAGES` names the adapter options that make it
  ask for pages of 3 (the suite always also caps the server's pages at 3 with `page_size_max`);
- its submit call carries the correlation key in the request body (how the suite counts submissions).
"""

from __future__ import annotations

import glob
import importlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest

from app.iga.base import IgaClient
from app.iga.registry import ADAPTERS, build_client
from app.settings import TargetSettings
from app.simulator import SIMULATORS, create_simulator
from tests.servers import serve_in_thread

SYSTEMS = sorted(set(SIMULATORS) & set(ADAPTERS))

#: Fast, still-retrying HTTP settings for every contract client.
FAST_HTTP: dict[str, Any] = {"attempts": 4, "retry_budget_seconds": 20.0, "requests_per_second": 100.0}

LogEntry = dict[str, Any]


@dataclass
class Sim:
    """One running simulator plus helpers to drive its control routes."""

    system: str
    url: str
    module: ModuleType
    control: httpx.Client

    def target(self, options: dict[str, Any] | None = None, **http: Any) -> TargetSettings:
        base: TargetSettings = self.module.demo_target(self.url, self.system)
        settings = base.http.model_copy(update={**FAST_HTTP, **http})
        return base.model_copy(update={"options": {**base.options, **(options or {})}, "http": settings})

    def small_page_options(self) -> dict[str, Any]:
        options: dict[str, Any] = dict(getattr(self.module, "CONTRACT_SMALL_PAGES", {}))
        return options

    @asynccontextmanager
    async def connect(self, options: dict[str, Any] | None = None, **http: Any) -> AsyncIterator[IgaClient]:
        client = build_client(self.target(options, **http))
        try:
            yield client
        finally:
            await client.aclose()

    def config(self, **changes: Any) -> dict[str, Any]:
        resp = self.control.post("/_config", json=changes)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def advance(self, seconds: float) -> None:
        self.control.post("/_clock", json={"advance": seconds}).raise_for_status()

    def faults(self, **body: Any) -> None:
        self.control.post("/_faults", json=body).raise_for_status()

    def fault_on(self, entry: LogEntry, *, hang_seconds: float | None = None, **rule: Any) -> None:
        """Inject one fault rule on exactly the route of a logged call."""
        body: dict[str, Any] = {"rules": [{"method": entry["method"], "path": glob.escape(entry["path"]), **rule}]}
        if hang_seconds is not None:
            body["hang_seconds"] = hang_seconds
        self.faults(**body)

    def clear_log(self) -> None:
        self.control.delete("/_log").raise_for_status()

    def log(self) -> list[LogEntry]:
        resp = self.control.get("/_log")
        resp.raise_for_status()
        entries: list[LogEntry] = resp.json()
        return entries

    def token_prefix(self) -> str | None:
        """Path prefix (relative to the simulator) of the token endpoint's folder, if it lives here."""
        token_url = self.target().token_url
        if not token_url or not token_url.startswith(self.url):
            return None
        return token_url[len(self.url) :].rsplit("/", 1)[0] + "/"

    def token_path(self) -> str | None:
        token_url = self.target().token_url
        return token_url[len(self.url) :] if token_url and token_url.startswith(self.url) else None

    def api_calls(self, entries: list[LogEntry] | None = None) -> list[LogEntry]:
        """Logged calls minus the token endpoint's (token, revoke)."""
        prefix = self.token_prefix()
        entries = self.log() if entries is None else entries
        return [e for e in entries if not (prefix and e["path"].startswith(prefix))]

    def submissions(self, key: str, entries: list[LogEntry] | None = None) -> list[LogEntry]:
        """Calls that sent the correlation key in a body, on the route of the first one (the submit)."""
        entries = self.log() if entries is None else entries
        carrying = [e for e in entries if e["method"] != "GET" and key in json.dumps(e["body"])]
        if not carrying:
            return []
        first = carrying[0]
        return [e for e in carrying if (e["method"], e["path"]) == (first["method"], first["path"])]


def _module(system: str) -> ModuleType:
    return importlib.import_module(SIMULATORS[system].split(":")[0])


@pytest.fixture(scope="module", params=SYSTEMS)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    system: str = request.param
    with serve_in_thread(create_simulator(system)) as url:
        yield system, url


@pytest.fixture
def sim(served: tuple[str, str]) -> Iterator[Sim]:
    system, url = served
    with httpx.Client(base_url=url, timeout=10) as control:
        control.post("/_reset").raise_for_status()
        control.delete("/_faults").raise_for_status()
        control.delete("/_log").raise_for_status()
        yield Sim(system, url, _module(system), control)
        control.delete("/_faults")


@pytest.fixture
async def client(sim: Sim) -> AsyncIterator[IgaClient]:
    async with sim.connect() as c:
        yield c
