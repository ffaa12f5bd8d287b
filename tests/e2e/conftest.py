"""A running leaver (API + in-process workers) wired to a running IGA simulator, both on real
loopback HTTP, on the test database. Submissions are counted at the simulator, by its probe."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.runtime import build_runtime
from tests.conftest import OPS_TOKEN, make_settings
from tests.servers import serve_in_thread
from tests.support import FIRST_SYSTEM, SimControl, serve_simulator, signed


@dataclass
class Stack:
    system: str
    url: str
    sim: SimControl
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
        """The item of every removal submission the IGA acted on."""
        return self.sim.submitted_items()


@pytest.fixture
def make_stack(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a simulator (the first registered system unless `system`) and leaver on it; keyword
    arguments override leaver's settings."""
    with ExitStack() as started, httpx.Client(timeout=30) as http:

        def start(
            system: str = FIRST_SYSTEM,
            sim_config: dict[str, Any] | None = None,
            target_http: dict[str, Any] | None = None,
            **overrides: Any,
        ) -> Stack:
            sim = started.enter_context(serve_simulator(system, **(sim_config or {})))
            limits = {"attempts": 3, "retry_budget_seconds": 5.0, "read_timeout": 5.0, **(target_http or {})}
            settings = make_settings(database_url, tmp_path, [sim.target(**limits)], **overrides)
            url = started.enter_context(serve_in_thread(create_app(build_runtime(settings))))
            return Stack(system, url, sim, http)

        yield start
