"""A running leaver (API + in-process workers) wired to a running IGA simulator, both on real
loopback HTTP, on the test database."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.app import create_app
from app.runtime import build_runtime
from app.simulator import SIMULATORS, create_simulator
from tests.conftest import OPS_TOKEN, make_settings
from tests.servers import serve_in_thread
from tests.support import signed

#: Where each simulator logs removal submissions, and the item IDs one submission carries.
SUBMISSIONS: dict[str, tuple[str, str, Callable[[Any], list[str]]]] = {
    "netiq-ig": ("POST", "/api/request/request", lambda b: [i["requestItem"] for i in b["requestItems"]]),
    "sailpoint-isc": ("POST", "/v3/access-requests", lambda b: [i["id"] for i in b["requestedItems"]]),
}
FAST = {"approval_delay": 0, "fulfil_delay": 0.2, "verify_delay": 0.3}


@dataclass
class Stack:
    system: str
    url: str
    sim_url: str
    http: httpx.Client

    def send(self, body: dict[str, Any], **kw: Any) -> httpx.Response:
        raw, headers = signed(body, **kw)
        return self.http.post(f"{self.url}/webhooks/events", content=raw, headers=headers)

    def get(self, path: str) -> Any:
        resp = self.http.get(f"{self.url}{path}", headers={"authorization": f"Bearer {OPS_TOKEN}"})
        resp.raise_for_status()
        return resp.json()

    def ops(self, path: str) -> httpx.Response:
        return self.http.post(f"{self.url}{path}", headers={"authorization": f"Bearer {OPS_TOKEN}"})

    def sim(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, f"{self.sim_url}{path}", **kw)
        resp.raise_for_status()
        return resp.json()

    def wait_case(
        self, event_id: str, states: tuple[str, ...] = ("done", "failed", "cancelled"), timeout: float = 30.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.get(f"/status/events/{event_id}")
            if status["cases"] and all(c["state"] in states for c in status["cases"]):
                return status  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(f"event {event_id} not finished: {[c['state'] for c in status['cases']]}")
            time.sleep(0.1)

    def submitted_item_ids(self) -> list[str]:
        method, path, items = SUBMISSIONS[self.system]
        log = self.sim("GET", "/_log", params={"method": method, "path": path})
        return [i for entry in log if entry["fault"] is None or entry["status"] < 400 for i in items(entry["body"])]


@pytest.fixture
def make_stack(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a simulator and leaver on it; keyword arguments override leaver's settings."""
    started: list[Any] = []

    def start(
        system: str = "netiq-ig",
        sim_config: dict[str, Any] | None = None,
        target_http: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Stack:
        sim_cm = serve_in_thread(create_simulator(system))
        sim_url = sim_cm.__enter__()
        started.append(sim_cm)
        http = httpx.Client(timeout=30)
        http.post(f"{sim_url}/_config", json={**FAST, **(sim_config or {})}).raise_for_status()
        module = importlib.import_module(SIMULATORS[system].split(":")[0])
        target = module.demo_target(sim_url, system)
        limits = {"attempts": 3, "retry_budget_seconds": 5.0, "read_timeout": 5.0, **(target_http or {})}
        target = target.model_copy(update={"http": target.http.model_copy(update=limits)})
        settings = make_settings(database_url, tmp_path, [target], **overrides)
        app = create_app(build_runtime(settings))
        app_cm = serve_in_thread(app)
        url = app_cm.__enter__()
        started.append(app_cm)
        return Stack(system, url, sim_url, http)

    yield start
    for cm in reversed(started):
        cm.__exit__(None, None, None)
