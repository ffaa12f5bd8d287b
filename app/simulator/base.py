"""What every IGA simulator shares: a request log, fault injection, a controllable clock, the
`/_log`, `/_faults`, `/_clock`, `/_config`, `/_reset` control routes, and the probes every test
reads instead of a system's wire format: which submissions the IGA acted on (`submissions()`,
`GET /_probe/submissions`), which requests it withdrew (`withdrawn()`), a demo user's IGA ID.

Only the system-specific wire format lives in each simulator module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class SimClock:
    """Wall time plus an offset that tests move forward instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FaultRule(BaseModel):
    """One injected failure. Matches by method and path glob (path relative to the simulator)."""

    method: str | None = None
    path: str | None = None
    status: int = 500
    retry_after: float | None = None
    latency: float = 0.0
    timeout: bool = False
    when: Literal["before", "after"] = "before"
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=0)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path or fnmatch.fnmatchcase(path, self.path)


class Faults(BaseModel):
    """The `POST /_faults` body: blanket rates for every call plus specific rules."""

    latency: float = Field(default=0.0, ge=0.0)
    rate_429: float = Field(default=0.0, ge=0.0, le=1.0)
    rate_5xx: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    retry_after: float = Field(default=1.0, ge=0.0)
    hang_seconds: float = Field(default=30.0, ge=0.0)
    rules: list[FaultRule] = Field(default_factory=list)


@dataclass
class LogEntry:
    method: str
    path: str
    query: str
    body: Any
    time: float
    status: int = 0
    fault: str | None = None


@dataclass(frozen=True)
class Submission:
    """One removal the IGA acted on (its submit handler accepted the call carrying it)."""

    at: float  # wall-clock time (time.time()), comparable with leaver's audit timestamps
    user: str  # the IGA's ID of the person
    item: str  # the access item's ID as the adapter reports it (AccessItem.id)
    key: str | None  # leaver's correlation key, where the body carries it
    plan_item_id: int | None  # where the body names leaver's plan item


@dataclass(frozen=True)
class Withdrawal:
    """A removal request the IGA withdrew on the caller's request (a rehire)."""

    user: str
    item: str


@dataclass
class SimulatorBase:
    """State shared by the control routes; each simulator subclasses it with its own data and
    implements the probes."""

    system: str
    clock: SimClock = field(default_factory=SimClock)
    faults: Faults = field(default_factory=Faults)
    log: list[LogEntry] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    lock: threading.RLock = field(default_factory=threading.RLock)
    accepted: list[Submission] = field(default_factory=list)

    #: (method, path glob) of the system's calls, by role: "submit", "lookup", "status",
    #: "withdraw", "inventory", "search", "token", "any" (every API call).
    endpoints: ClassVar[dict[str, tuple[str | None, str]]] = {}

    def record(self, submissions: list[Submission]) -> None:
        """Called by the submit handler once it accepted a call."""
        self.accepted.extend(submissions)

    def submissions(self) -> list[Submission]:
        with self.lock:
            return list(self.accepted)

    def withdrawn(self) -> list[Withdrawal]:
        raise NotImplementedError

    def user_id(self, username: str) -> str:
        """The IGA's ID of a seeded person (KeyError when there is none)."""
        raise NotImplementedError

    def add_people(self, people: list[Any]) -> None:
        """Seed more people (`DemoPerson`s) beside the demo ones."""
        raise NotImplementedError

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `POST /_config`; subclasses expose their delays and outcomes here."""
        raise NotImplementedError

    def reset(self) -> None:
        """Back to the seeded demo data."""
        raise NotImplementedError

    def pick_fault(self, method: str, path: str, when: str) -> tuple[FaultRule | None, str | None]:
        """The fault to apply to this call at this moment, if any (consumes counted rules)."""
        with self.lock:
            for rule in self.faults.rules:
                if rule.when != when or not rule.matches(method, path):
                    continue
                if rule.count == 0 or self.rng.random() >= rule.rate:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                return rule, f"rule:{rule.status}{'/timeout' if rule.timeout else ''}/{when}"
            if when != "before":
                return None, None
            f = self.faults
            roll = self.rng.random()
            if roll < f.rate_429:
                return FaultRule(status=429, retry_after=f.retry_after), "rate_429"
            if roll < f.rate_429 + f.rate_5xx:
                return FaultRule(status=503), "rate_5xx"
            if roll < f.rate_429 + f.rate_5xx + f.timeout_rate:
                return FaultRule(timeout=True), "timeout"
        return None, None


ErrorBody = Callable[[int], Any]
_SECRET_FIELDS = {
    "password",
    "client_secret",
    "token",
    "refresh_token",
    "access_token",
    "assertion",
    "client_assertion",
    "subject_token",
    "actor_token",
}


def _loggable_body(raw: bytes, content_type: str) -> Any:
    """The body as JSON where it is, with credential fields of token forms masked."""
    if not raw:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: "***" if k in _SECRET_FIELDS else v[-1] for k, v in form.items()}
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


CONTROL_PATHS = ("/_log", "/_faults", "/_clock", "/_config", "/_reset", "/_state", "/_probe")


def install_simulator_plumbing(app: FastAPI, sim: SimulatorBase, error_body: ErrorBody) -> None:
    """Add the request log, fault injection and control routes to a simulator app.

    `error_body(status)` renders an injected failure in the system's own error format."""

    def relative(request: Request) -> str:
        path: str = request.scope["path"]
        root: str = request.scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    async def faulted(rule: FaultRule) -> Response:
        if rule.timeout:
            await asyncio.sleep(sim.faults.hang_seconds)
        headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        return JSONResponse(error_body(rule.status), status_code=rule.status, headers=headers)

    @app.middleware("http")
    async def record_and_fault(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = relative(request)
        if path.startswith(CONTROL_PATHS):
            return await call_next(request)
        raw = await request.body()
        body = _loggable_body(raw, request.headers.get("content-type", ""))
        entry = LogEntry(request.method, path, request.url.query, body, sim.clock.now())
        with sim.lock:
            sim.log.append(entry)
        if sim.faults.latency:
            await asyncio.sleep(sim.faults.latency)
        rule, label = sim.pick_fault(request.method, path, "before")
        if rule is not None:
            if rule.latency:
                await asyncio.sleep(rule.latency)
            if rule.status < 400 and not rule.timeout:
                rule = None  # a pure latency rule
            else:
                entry.fault, entry.status = label, rule.status
                return await faulted(rule)
        response = await call_next(request)
        entry.status = response.status_code
        after, label = sim.pick_fault(request.method, path, "after")
        if after is not None:
            entry.fault, entry.status = label, after.status
            return await faulted(after)
        return response

    @app.get("/_log", include_in_schema=False)
    def get_log(method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        with sim.lock:
            entries = list(sim.log)
        return [
            e.__dict__
            for e in entries
            if (method is None or e.method == method.upper()) and (path is None or fnmatch.fnmatchcase(e.path, path))
        ]

    @app.delete("/_log", include_in_schema=False)
    def clear_log() -> dict[str, int]:
        with sim.lock:
            n = len(sim.log)
            sim.log.clear()
        return {"cleared": n}

    @app.get("/_faults", include_in_schema=False)
    def get_faults() -> Faults:
        return sim.faults

    @app.post("/_faults", include_in_schema=False)
    def set_faults(faults: Faults) -> Faults:
        with sim.lock:
            sim.faults = faults
        return sim.faults

    @app.delete("/_faults", include_in_schema=False)
    def clear_faults() -> Faults:
        with sim.lock:
            sim.faults = Faults()
        return sim.faults

    @app.post("/_clock", include_in_schema=False)
    def move_clock(change: dict[str, float]) -> dict[str, float]:
        sim.clock.advance(float(change.get("advance", 0.0)))
        return {"now": sim.clock.now(), "offset": sim.clock.offset}

    @app.post("/_config", include_in_schema=False)
    def configure(changes: dict[str, Any]) -> dict[str, Any]:
        with sim.lock:
            return sim.configure(changes)

    @app.get("/_probe/submissions", include_in_schema=False)
    def probe_submissions() -> list[dict[str, Any]]:
        return [dataclasses.asdict(s) for s in sim.submissions()]

    @app.get("/_probe/withdrawn", include_in_schema=False)
    def probe_withdrawn() -> list[dict[str, Any]]:
        with sim.lock:
            return [dataclasses.asdict(w) for w in sim.withdrawn()]

    @app.get("/_probe/users/{username}", include_in_schema=False)
    def probe_user(username: str) -> JSONResponse:
        with sim.lock:
            try:
                return JSONResponse({"id": sim.user_id(username)})
            except (KeyError, StopIteration):
                return JSONResponse({"detail": f"no user {username!r}"}, status_code=404)

    @app.post("/_reset", include_in_schema=False)
    def reset() -> dict[str, bool]:
        with sim.lock:
            sim.reset()
            sim.accepted.clear()
            sim.log.clear()
            sim.faults = Faults()
            sim.clock.offset = 0.0
        return {"reset": True}
