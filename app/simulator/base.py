"""What every IGA simulator shares, so that tests read one vocabulary instead of each wire format
(`records` holds the plain records: clock, fault rules, log entries, submissions, withdrawals):

- the standard configuration (`SimConfig`, `/_config`), the request log (`/_log`), fault injection
  (`/_faults`), a clock tests move instead of sleeping (`/_clock`), `/_reset`;
- one way to answer an error (`SimError`, `install_error_handlers`, from `errors`) and to cut a
  page (`Paging`, from `paging`), each system passing its own error body and parameter names;
- the probes: which removals the IGA acted on (`submissions()`, `GET /_probe/submissions`), which
  requests it withdrew (`withdrawn()`), a demo person's IGA ID (`user_id()`).

A system's wire format, IDs and state machine stay in its own package; none shares adapter code.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import fnmatch
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, field_validator

from app.simulator.demo_users import DemoPerson
from app.simulator.errors import ErrorShape, SimError, install_error_handlers
from app.simulator.paging import Page, Paging, int_param
from app.simulator.records import FaultRule, Faults, LogEntry, SimClock, Submission, Withdrawal, loggable_body

__all__ = [
    "OUTCOMES",
    "ErrorShape",
    "FaultRule",
    "Faults",
    "LogEntry",
    "Page",
    "Paging",
    "SimClock",
    "SimConfig",
    "SimError",
    "Simulator",
    "SimulatorBase",
    "SimulatorCore",
    "Submission",
    "Withdrawal",
    "install_error_handlers",
    "install_simulator_plumbing",
    "int_param",
]


#: The outcomes every simulator knows; a system may add its own (`SimConfig.outcomes`).
OUTCOMES = ("completed", "rejected", "failed", "cancelled")


class SimConfig(BaseModel, extra="forbid", validate_assignment=True):
    """`/_config`: the keys every simulator shares. A system subclasses it with its own switches
    and defaults; `POST /_config` is a partial update, validated as a whole."""

    #: The outcomes `outcome` may name (a subclass extends them with the system's own).
    outcomes: ClassVar[tuple[str, ...]] = OUTCOMES

    #: Seconds a new request waits for approval, then for fulfilment, then until its effect shows.
    approval_delay: float = Field(0.0, ge=0)
    fulfil_delay: float = Field(1.0, ge=0)
    verify_delay: float = Field(2.0, ge=0)
    #: What becomes of the requests submitted from now on.
    outcome: str = "completed"
    #: Seconds an access token lives.
    token_lifetime: float = Field(300.0, gt=0)
    #: Set true to revoke every token issued so far (an action: it reads false again afterwards).
    revoke_tokens: bool = False
    #: The most records one page holds.
    page_size_max: int = Field(1000, ge=1)

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, value: str) -> str:
        if value not in cls.outcomes:
            raise ValueError(f"must be one of {', '.join(cls.outcomes)}")
        return value


def config_problem(exc: ValidationError) -> str:
    """A refused `/_config` update in one line that names the key."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    if first["type"] == "extra_forbidden":
        return f"invalid simulator config: unknown key {where!r}"
    return f"invalid simulator config: {where}: {first['msg'].removeprefix('Value error, ')}"


# ---------------------------------------------------------------- the simulator


class SimulatorCore(abc.ABC):
    """What the plumbing needs of a simulator: its log, faults, clock, lock, probes and `/_config`.
    Subclass `Simulator`; every public method expects `lock` to be held (the routes take it).

    `submissions` comes from the log: once a call on the submit route was answered 2xx by its
    handler, `submitted(entry)` parses the removals its body carried."""

    #: (method or None for any, path glob relative to the simulator root) of the system's calls, by
    #: role: "submit", "lookup" (the recovery search), "status", "withdraw", "inventory", "search"
    #: (user lookup), "token", "any" (every API call).
    endpoints: ClassVar[dict[str, tuple[str | None, str]]] = {}
    #: The status of a refused `POST /_config`.
    config_error_status: ClassVar[int] = 422

    def __init__(self, system: str) -> None:
        self.system = system
        self.clock = SimClock()
        self.faults = Faults()
        self.log: list[LogEntry] = []
        self.rng = random.Random(7)
        self.lock = threading.RLock()
        self.accepted: list[Submission] = []

    @abc.abstractmethod
    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial `POST /_config` update; return the whole configuration."""

    @abc.abstractmethod
    def current_config(self) -> dict[str, Any]:
        """What `GET /_config` answers."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Back to the seeded demo data and the default configuration."""

    @abc.abstractmethod
    def add_people(self, people: list[DemoPerson]) -> None:
        """Seed more people beside the demo ones."""

    def reset_all(self) -> None:
        """`POST /_reset`: `reset()`, and an empty log, no faults, no submissions, the clock at wall time."""
        self.reset()
        self.accepted.clear()
        self.log.clear()
        self.faults = Faults()
        self.clock.offset = 0.0

    # ---- probes

    def is_submission(self, entry: LogEntry) -> bool:
        """Whether a call went to the submit route (by default, `endpoints["submit"]`)."""
        method, path = self.endpoints["submit"]
        return (method is None or entry.method == method) and fnmatch.fnmatchcase(entry.path, path)

    def submitted(self, entry: LogEntry) -> list[Submission]:
        """The removals one accepted submit call carried, read from its logged body. A system whose
        submit body does not name them (a cart) returns none here and calls `record` from its handler."""
        return []

    def handled(self, entry: LogEntry) -> None:
        """Called once the handler answered `entry`, before any fault injected after it: the IGA has
        acted even if the answer is then lost."""
        status = entry.handled_status
        if status is not None and 200 <= status < 300 and self.is_submission(entry):
            self.accepted.extend(self.submitted(entry))

    def record(self, submissions: Iterable[Submission]) -> None:
        """Count removals a submit handler accepted (for systems whose body does not name them)."""
        self.accepted.extend(submissions)

    def submissions(self) -> list[Submission]:
        """Every removal submission the IGA acted on, in arrival order."""
        with self.lock:
            return list(self.accepted)

    @abc.abstractmethod
    def withdrawn(self) -> list[Withdrawal]:
        """Every removal request the IGA withdrew on the caller's request."""

    @abc.abstractmethod
    def user_id(self, username: str) -> str:
        """The IGA's ID of a seeded person; KeyError when there is none."""

    # ---- faults

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


class Simulator(SimulatorCore):
    """One simulated IGA on the standard configuration. A system implements `reset`, `add_people`,
    `revoke_tokens`, `submitted` (or calls `record`) and the probes `withdrawn` and `user_id`."""

    config: SimConfig

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial update, all or nothing (pydantic's `ValidationError` names the key);
        `revoke_tokens: true` revokes every token issued so far."""
        config = self.config.model_validate({**self.config.model_dump(), **changes})
        if config.revoke_tokens:
            self.revoke_tokens()
            config.revoke_tokens = False
        self.config = config
        return self.current_config()

    def current_config(self) -> dict[str, Any]:
        return self.config.model_dump()

    @abc.abstractmethod
    def revoke_tokens(self) -> None:
        """Forget every access token issued so far: the next API call answers 401."""


class SimulatorBase(SimulatorCore):
    """Transitional, for simulators not yet on `SimConfig`: they keep their own `config` model and
    `configure()`. New simulators subclass `Simulator`."""

    def current_config(self) -> dict[str, Any]:
        config: BaseModel = vars(self)["config"]
        return config.model_dump()


# ---------------------------------------------------------------- plumbing

CONTROL_PATHS = ("/_log", "/_faults", "/_clock", "/_config", "/_reset", "/_state", "/_probe")


def _matching(entries: Sequence[LogEntry], method: str | None, path: str | None) -> list[dict[str, Any]]:
    return [
        dataclasses.asdict(e)
        for e in entries
        if (method is None or e.method == method.upper()) and (path is None or fnmatch.fnmatchcase(e.path, path))
    ]


def install_simulator_plumbing(app: FastAPI, sim: SimulatorCore, shape: Callable[[int], Any]) -> None:
    """Add the request log, fault injection, control routes and probes to a simulator app.
    `shape(status)` renders an injected failure in the system's error format. A refused `/_config`
    is raised as a `SimError`: call `install_error_handlers` too, or it is answered as `shape(status)`."""

    def relative(request: Request) -> str:
        path: str = request.scope["path"]
        root: str = request.scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    async def faulted(rule: FaultRule) -> Response:
        if rule.timeout:
            await asyncio.sleep(sim.faults.hang_seconds)
        headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        return JSONResponse(shape(rule.status), status_code=rule.status, headers=headers)

    async def plain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SimError)
        return JSONResponse(shape(exc.status), status_code=exc.status, headers=exc.headers or None)

    if SimError not in app.exception_handlers:
        app.add_exception_handler(SimError, plain_error)

    @app.middleware("http")
    async def record_and_fault(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = relative(request)
        if path.startswith(CONTROL_PATHS):
            return await call_next(request)
        raw = await request.body()
        body = loggable_body(raw, request.headers.get("content-type", ""))
        entry = LogEntry(request.method, path, request.url.query, body, sim.clock.now(), time.time())
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
        entry.status = entry.handled_status = response.status_code
        with sim.lock:
            sim.handled(entry)
        after, label = sim.pick_fault(request.method, path, "after")
        if after is not None:
            entry.fault, entry.status = label, after.status
            return await faulted(after)
        return response

    @app.get("/_log", include_in_schema=False)
    def get_log(method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        with sim.lock:
            entries = list(sim.log)
        return _matching(entries, method, path)

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

    @app.get("/_config", include_in_schema=False)
    def get_config() -> dict[str, Any]:
        with sim.lock:
            return sim.current_config()

    @app.post("/_config", include_in_schema=False)
    def configure(changes: dict[str, Any]) -> dict[str, Any]:
        with sim.lock:
            try:
                return sim.configure(changes)
            except ValidationError as exc:
                raise SimError(sim.config_error_status, config_problem(exc)) from None

    @app.post("/_reset", include_in_schema=False)
    def reset() -> dict[str, bool]:
        with sim.lock:
            sim.reset_all()
        return {"reset": True}

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
