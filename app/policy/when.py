"""When a removal may be submitted: the `when` value of a rule, parsed once at load time.

Durations are ISO 8601 without months or years, and bounded, so evaluation never meets a value it
cannot compute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from app.domain import LeaverEvent

#: Longest delay a rule may ask for. Anything longer is almost certainly a typo (P3000D for P30D),
#: and an unbounded value could overflow the date arithmetic at evaluation time.
MAX_DELAY = timedelta(days=3660)

_WHEN_RE = re.compile(r"^(?P<base>[A-Za-z]+)\s*(?:(?P<sign>[+-])\s*(?P<duration>\S.*))?$")
_DURATION_RE = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True)
class When:
    """When a removal may be submitted: a base time plus a fixed offset.

    Kept as a parsed value (not the raw string) so evaluation cannot fail on a bad string later:
    every problem is found when the file is loaded.
    """

    base: Literal["now", "effective"]
    offset: timedelta = timedelta(0)
    text: str = ""

    def resolve(self, event: LeaverEvent, now: datetime) -> datetime:
        """The due time for this event; `now` is passed in so evaluation stays reproducible."""
        start = now if self.base == "now" else event.effective
        return start + self.offset

    def __str__(self) -> str:
        return self.text or self.base


EFFECTIVE = When("effective", timedelta(0), "effective")


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration in weeks, days, hours, minutes and seconds (``P30D``, ``P1DT2H``).

    Months and years are refused on purpose: their length depends on the calendar, and a policy
    that says "30 days" should mean exactly that in every month. Raises ValueError.
    """
    value = text.strip().upper()
    date_part = value.partition("T")[0]
    if value.startswith("P"):
        if "Y" in date_part:
            raise ValueError(f"{text!r} — years are not supported, use days (P365D)")
        if "M" in date_part:
            raise ValueError(f"{text!r} — months are not supported, use days (P30D)")
    found = _DURATION_RE.match(value)
    if not found or value in ("P", "PT") or value.endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration; use weeks, days, hours, minutes, seconds, "
            "e.g. P30D, PT12H, P1W, P1DT2H"
        )
    parts = {key: int(number) for key, number in found.groupdict().items() if number is not None}
    try:
        delay = timedelta(**parts)
    except OverflowError:
        delay = MAX_DELAY + timedelta(days=1)
    if delay > MAX_DELAY:
        raise ValueError(f"{text!r} is longer than the {MAX_DELAY.days}-day maximum")
    return delay


def parse_when(text: str) -> When:
    """``now``, ``effective`` or ``effective+DURATION``; raises ValueError with a readable message."""
    found = _WHEN_RE.match(text.strip())
    usage = "expected now, effective or effective+DURATION (e.g. effective+P30D)"
    if not found or found["base"] not in ("now", "effective"):
        raise ValueError(f"{text!r} — {usage}")
    base: Literal["now", "effective"] = "now" if found["base"] == "now" else "effective"
    if found["sign"] is None:
        return When(base, timedelta(0), base)
    if found["sign"] == "-":
        raise ValueError(f"{text!r} — only delays after the effective time are supported ({usage})")
    if base == "now":
        # "now" moves every time a plan is rebuilt (retry, crash recovery), so a delay after it
        # would never settle; the effective time is fixed by the event.
        raise ValueError(f"{text!r} — a delay is only allowed after 'effective' (effective+P1D)")
    try:
        offset = parse_duration(found["duration"])
    except ValueError as exc:
        message = str(exc)
        if message.startswith(repr(found["duration"])):
            message = repr(text) + message[len(repr(found["duration"])) :]
        raise ValueError(message) from None
    return When("effective", offset, f"effective+{found['duration'].strip().upper()}")


def _validate_when(value: Any) -> When:
    if isinstance(value, When):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "policy_when",
            "{value} — expected a string: now, effective or effective+DURATION",
            {"value": repr(value)},
        )
    try:
        return parse_when(value)
    except ValueError as exc:
        raise PydanticCustomError("policy_when", "{message}", {"message": str(exc)}) from None


WhenField = Annotated[
    When,
    PlainValidator(_validate_when),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["now", "effective", "effective+P30D"]}),
]
