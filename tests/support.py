"""Helpers for tests that talk to leaver: signing events, counting rows; and the IGA systems the
shared suites run on, with a client of a served simulator's control and probe routes.

Nothing here names an IGA system: the suites read the registries (`app.simulator.SIMULATORS`,
`app.iga.registry.ADAPTERS`), so a system added to both joins every suite with no edit.
"""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.iga.registry import ADAPTERS
from app.intake.signature import sign
from app.runtime import Runtime
from app.settings import TargetSettings
from app.simulator import SIMULATORS, simulator_spec
from app.store.models import Audit, Case, Event, IgaRequest, Job, PlanItem
from tests.conftest import WEBHOOK_SECRET
from tests.servers import serve_in_thread

#: Every system with both a simulator and an adapter, in a stable order: what the shared suites run on.
SYSTEMS: list[str] = sorted(set(SIMULATORS) & set(ADAPTERS))
#: The system a test that needs just one IGA runs on.
FIRST_SYSTEM: str = SYSTEMS[0]

#: (method or None for any, path glob relative to the simulator root), as in `Simulator.endpoints`.
Endpoint = tuple[str | None, str]


def event_body(
    user: str = "jdoe",
    *,
    event_id: str | None = None,
    type_: str = "user.terminated",
    target: str | None = None,
    occurred_at: str = "2026-11-20T17:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id or f"evt-{uuid.uuid4().hex[:12]}",
        "type": type_,
        "occurred_at": occurred_at,
        "source": "test-idm",
        "user": {"username": user},
        **extra,
    }
    if target:
        body["target"] = target
    return body


def signed(
    body: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = timestamp if timestamp is not None else int(time.time())
    return raw, {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, raw),
    }


async def row_counts(rt: Runtime) -> dict[str, int]:
    async with rt.sessions() as session:
        return {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Event, Case, Job, PlanItem, IgaRequest, Audit)
        }


# ---------------------------------------------------------------- simulators


def endpoints_of(app: FastAPI) -> dict[str, Endpoint]:
    """Where a simulator app takes each kind of call: "submit", "lookup", "status", "withdraw",
    "inventory", "search", "token", "any" (its `Simulator.endpoints`)."""
    return dict(type(app.state.sim).endpoints)


def with_http(target: TargetSettings, **http: Any) -> TargetSettings:
    """`target` with some of its HTTP settings changed."""
    return target.model_copy(update={"http": target.http.model_copy(update=http)})


def submitted_pairs(submissions: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(IGA user ID, access item ID) of each submission, counted."""
    return Counter((str(s["user"]), str(s["item"])) for s in submissions)


@dataclass
class SimControl:
    """A simulator served over HTTP (at `url`, which may be a mount point), driven through its
    control routes and read through its probes."""

    system: str
    url: str
    http: httpx.Client
    #: Its `Simulator.endpoints` (known when the app was built in this process).
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, f"{self.url}{path}", **kw)
        resp.raise_for_status()
        return resp.json()

    def target(self, name: str | None = None, **http: Any) -> TargetSettings:
        """The demo target of this simulator (named after the system unless `name`), with `http`
        changes. A simulator lists a request as soon as it accepts it: no listing lag."""
        target = simulator_spec(self.system).demo_target(self.url, name or self.system)
        target = target.model_copy(update={"listing_lag_seconds": 0.0})
        return with_http(target, **http) if http else target

    def config(self, **changes: Any) -> dict[str, Any]:
        """`POST /_config` (a partial update); the whole configuration."""
        result: dict[str, Any] = self._call("POST", "/_config", json=changes)
        return result

    def advance(self, seconds: float) -> None:
        self._call("POST", "/_clock", json={"advance": seconds})

    def faults(self, **body: Any) -> None:
        """`POST /_faults`: replaces every fault."""
        self._call("POST", "/_faults", json=body)

    def fault(self, endpoint: str, **rule: Any) -> None:
        """Replace every fault with one rule on one of the simulator's endpoints ("submit", "status", ...)."""
        method, path = self.endpoints[endpoint]
        self.faults(rules=[{"method": method, "path": path, **rule}])

    def clear_faults(self) -> None:
        self._call("DELETE", "/_faults")

    def log(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The request log, or the calls to one endpoint."""
        params: dict[str, str] = {}
        if endpoint is not None:
            method, path = self.endpoints[endpoint]
            params = {"path": path} | ({"method": method} if method else {})
        entries: list[dict[str, Any]] = self._call("GET", "/_log", params=params)
        return entries

    def is_token_call(self, entry: dict[str, Any]) -> bool:
        method, path = self.endpoints["token"]
        return method in (None, entry["method"]) and fnmatch.fnmatchcase(entry["path"], path)

    def submissions(self, key: str | None = None) -> list[dict[str, Any]]:
        """Every removal submission the IGA acted on (one per item), or those under one correlation key."""
        found: list[dict[str, Any]] = self._call("GET", "/_probe/submissions")
        return [s for s in found if key is None or s["key"] == key]

    def submitted_items(self, key: str | None = None) -> list[str]:
        """The access item ID of every submission, in order."""
        return [str(s["item"]) for s in self.submissions(key)]

    def withdrawn(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/_probe/withdrawn")
        return found

    def user_id(self, username: str) -> str:
        return str(self._call("GET", f"/_probe/users/{username}")["id"])


@contextmanager
def serve_simulator(system: str, app: FastAPI | None = None, **config: Any) -> Iterator[SimControl]:
    """Serve a fresh simulator of `system` (or `app`) on loopback, configured for tests (its
    `test_config`, then `config`)."""
    spec = simulator_spec(system)
    app = app or spec.create_app()
    with serve_in_thread(app) as url, httpx.Client(timeout=30) as http:
        sim = SimControl(system, url, http, endpoints_of(app))
        sim.config(**{**spec.test_config, **config})
        yield sim
