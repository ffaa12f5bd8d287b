"""Fixtures of the shared contract suite: every system that has both a simulator
(`app.simulator.SIMULATORS`) and an adapter (`app.iga.registry.ADAPTERS`) runs the same tests.

What a system provides to join is what every simulator provides (`app.simulator.simulator_spec`):
`demo_target`, `small_pages` (the adapter options that make it ask for pages of 3; the suite also
caps the server's pages at 3 with `page_size_max`), the demo people, the standard control routes
(`/_reset`, `/_faults`, `/_log`, `/_clock`, `/_config` with the standard keys), its `endpoints`,
and the probes (`/_probe/submissions`: how the suite counts submissions).
"""

from __future__ import annotations

import glob
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.iga.base import IgaClient
from app.iga.registry import build_client
from app.settings import TargetSettings
from app.simulator import simulator_spec
from tests.servers import serve_in_thread
from tests.support import SYSTEMS, SimControl, endpoints_of, with_http

#: Fast, still-retrying HTTP settings for every contract client.
FAST_HTTP: dict[str, Any] = {"attempts": 4, "retry_budget_seconds": 20.0, "requests_per_second": 100.0}

LogEntry = dict[str, Any]


@dataclass
class Sim(SimControl):
    """One running simulator plus what the contract tests ask of it."""

    def contract_target(self, options: dict[str, Any] | None = None, **http: Any) -> TargetSettings:
        base = with_http(self.target(), **{**FAST_HTTP, **http})
        return base.model_copy(update={"options": {**base.options, **(options or {})}})

    def small_page_options(self) -> dict[str, Any]:
        return dict(simulator_spec(self.system).small_pages)

    @asynccontextmanager
    async def connect(self, options: dict[str, Any] | None = None, **http: Any) -> AsyncIterator[IgaClient]:
        client = build_client(self.contract_target(options, **http))
        try:
            yield client
        finally:
            await client.aclose()

    def fault_on(self, entry: LogEntry, *, hang_seconds: float | None = None, **rule: Any) -> None:
        """Inject one fault rule on exactly the route of a logged call."""
        body: dict[str, Any] = {"rules": [{"method": entry["method"], "path": glob.escape(entry["path"]), **rule}]}
        if hang_seconds is not None:
            body["hang_seconds"] = hang_seconds
        self.faults(**body)

    def fault_on_submit(self, *, hang_seconds: float | None = None, **rule: Any) -> None:
        """Inject one fault rule on the simulator's submit endpoint."""
        method, path = self.endpoints["submit"]
        body: dict[str, Any] = {"rules": [{"method": method, "path": path, **rule}]}
        if hang_seconds is not None:
            body["hang_seconds"] = hang_seconds
        self.faults(**body)

    def clear_log(self) -> None:
        self.http.delete(f"{self.url}/_log").raise_for_status()

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


@pytest.fixture(scope="module", params=SYSTEMS)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, FastAPI]]:
    system: str = request.param
    app = simulator_spec(system).create_app()
    with serve_in_thread(app) as url:
        yield system, url, app


@pytest.fixture
def sim(served: tuple[str, str, FastAPI]) -> Iterator[Sim]:
    system, url, app = served
    with httpx.Client(timeout=10) as http:
        control = Sim(system, url, http, endpoints_of(app))
        http.post(f"{url}/_reset").raise_for_status()
        control.clear_faults()
        control.clear_log()
        yield control
        http.delete(f"{url}/_faults")


@pytest.fixture
async def client(sim: Sim) -> AsyncIterator[IgaClient]:
    async with sim.connect() as c:
        yield c
