"""What the simulators' plumbing keeps and their probes report: the clock tests move, injected
fault rules, the request log (bodies with credentials masked), and the submissions and withdrawals
the IGA acted on."""

from __future__ import annotations

import fnmatch
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

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
    """One API call as it arrived, and how it was answered."""

    method: str
    path: str
    query: str
    body: Any
    time: float  # simulator clock at arrival
    at: float  # wall clock (time.time()) at arrival: comparable with leaver's audit timestamps
    status: int = 0  # what the caller got
    handled_status: int | None = None  # what the handler answered; None when a fault answered before it ran
    fault: str | None = None


@dataclass(frozen=True)
class Submission:
    """One removal the IGA acted on (its submit handler accepted the call carrying it)."""

    at: float  # wall-clock time the call arrived
    user: str  # the IGA's ID of the person
    item: str  # the access item's ID as the adapter reports it (AccessItem.id)
    key: str | None  # leaver's correlation key, where the body carries it
    plan_item_id: int | None  # where the body names leaver's plan item


@dataclass(frozen=True)
class Withdrawal:
    """A removal request the IGA withdrew on the caller's request (a rehire)."""

    user: str
    item: str


#: Token-form fields the log masks.
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


def loggable_body(raw: bytes, content_type: str) -> Any:
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
