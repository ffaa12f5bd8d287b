"""The policy file: what it may say, and how a mistake in it is reported.

Every model forbids unknown keys, so a typo (``aplication:``) stops the start instead of silently
matching everything. Every error names the rule and the field, because an operator reading
"Input should be 'remove'" without knowing *where* has to bisect a file under pressure.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from app.domain import EventType, GrantSource, ItemType, LeaverEvent

__all__ = [
    "MAX_DELAY",
    "Action",
    "DefaultRule",
    "Match",
    "Policy",
    "PolicyError",
    "Rule",
    "When",
    "load_policy",
    "parse_duration",
    "parse_policy",
    "parse_when",
]

Action = Literal["remove", "keep", "hold"]

#: Longest delay a rule may ask for. Anything longer is almost certainly a typo (P3000D for P30D),
#: and an unbounded value could overflow the date arithmetic at evaluation time.
MAX_DELAY = timedelta(days=3660)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_WHEN_RE = re.compile(r"^(?P<base>[A-Za-z]+)\s*(?:(?P<sign>[+-])\s*(?P<duration>\S.*))?$")
_DURATION_RE = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


class PolicyError(Exception):
    """The policy file cannot be used; the message says where and why, for the operator."""


# --------------------------------------------------------------------------------------------- when


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

# -------------------------------------------------------------------------------------------- rules


def _one_or_many(value: Any) -> Any:
    """Let the file say ``type: role`` as well as ``type: [role, entitlement]``."""
    if isinstance(value, str | bool | int | float):
        return [value]
    return value


class Match(BaseModel):
    """Conditions on the event, the user and the item; all given keys must hold, a list means any.

    Globs (`application`, `name`, `user` values) are fnmatch patterns compared case-insensitively,
    because IGA systems disagree on the casing of the same application or attribute value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: list[EventType] | None = Field(default=None, min_length=1)
    target: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    type: list[ItemType] | None = Field(default=None, min_length=1)
    application: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    name: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    id: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    privileged: StrictBool | None = None
    granted_by: list[GrantSource] | None = Field(default=None, min_length=1)
    user: dict[str, str] | None = None

    @field_validator("event", "target", "type", "application", "name", "id", "granted_by", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("user", mode="before")
    @classmethod
    def _user_values_as_text(cls, value: Any) -> Any:
        """YAML reads ``legalHold: true`` as a boolean; the rule means the text "true"."""
        if not isinstance(value, dict):
            return value
        converted: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                converted[key] = "true" if item else "false"
            elif isinstance(item, int | float):
                converted[key] = str(item)
            else:
                converted[key] = item
        return converted


def _check_reason(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("policy_reason", "must not be empty: say why, it is shown to operators")
    return value


def _check_when_allowed(value: When | None, info: ValidationInfo) -> When | None:
    action = info.data.get("action")
    if value is not None and action in ("keep", "hold"):
        raise PydanticCustomError(
            "policy_when",
            "'when' only applies to action remove, not {action}; delete it",
            {"action": action},
        )
    return value


class DefaultRule(BaseModel):
    """What happens to an item no rule matches. Required: there must be no silent gap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    when: WhenField | None = None
    reason: str

    @field_validator("reason")
    @classmethod
    def _reason_not_empty(cls, value: str) -> str:
        return _check_reason(value)

    @field_validator("when")
    @classmethod
    def _when_only_for_remove(cls, value: When | None, info: ValidationInfo) -> When | None:
        return _check_when_allowed(value, info)

    @property
    def due(self) -> When | None:
        """The effective `when` for a removal (defaults to the effective time); None otherwise."""
        if self.action != "remove":
            return None
        return self.when or EFFECTIVE

    def describe(self) -> str:
        """``remove (effective+P30D)`` or ``keep``: how the CLI and logs show the action."""
        due = self.due
        return f"{self.action} ({due})" if due is not None else self.action


class Rule(DefaultRule):
    """A named rule; the first rule whose `match` holds decides the item."""

    name: str
    match: Match

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value == "default":
            raise PydanticCustomError("policy_name", "'default' is reserved for the default rule")
        if not _NAME_RE.match(value):
            raise PydanticCustomError(
                "policy_name",
                "{value} — use lowercase letters, digits and '-', starting with a letter or digit",
                {"value": repr(value)},
            )
        return value


class Policy(BaseModel):
    """A whole policy file: version, the default, and the ordered rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    default: DefaultRule
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise PydanticCustomError(
                    "policy_duplicate",
                    "rule {name} (rules[{index}]).name: duplicate, already used by rules[{first}]",
                    {"name": repr(rule.name), "index": index, "first": seen[rule.name]},
                )
            seen[rule.name] = index
        return self


# ------------------------------------------------------------------------------------------ loading


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which plain YAML silently overwrites."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` may legitimately be overridden by the mapping's own keys
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_ALLOWED_KEYS: dict[str, list[str]] = {
    "policy": sorted(Policy.model_fields),
    "default": sorted(DefaultRule.model_fields),
    "rule": sorted(Rule.model_fields),
    "match": sorted(Match.model_fields),
}


def _rule_label(data: Any, index: int) -> str:
    """``rule 'mailbox-grace' (rules[1])``, or ``rules[1]`` when the rule has no usable name."""
    rules = data.get("rules") if isinstance(data, dict) else None
    name = None
    if isinstance(rules, list) and 0 <= index < len(rules) and isinstance(rules[index], dict):
        name = rules[index].get("name")
    if isinstance(name, str) and name:
        return f"rule {name!r} (rules[{index}])"
    return f"rules[{index}]"


def _path(parts: tuple[int | str, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: ErrorDetails, data: Any) -> str:
    """One pydantic error as ``<where>: <what>``, worded for someone editing the YAML."""
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "policy_duplicate" or not loc:
        return error["msg"]

    if loc[0] == "rules" and len(loc) >= 2 and isinstance(loc[1], int):
        where = _rule_label(data, loc[1])
        rest = loc[2:]
        where = f"{where}.{_path(rest)}" if rest else where
        owner = "match" if rest[:1] == ("match",) else "rule"
    else:
        where = _path(loc)
        owner = "default" if loc[0] == "default" else "policy"

    if kind == "extra_forbidden":
        return f"{where}: unknown key; allowed: {', '.join(_ALLOWED_KEYS[owner])}"
    if kind == "missing":
        if loc == ("default",):
            return "default: required — every policy needs one, e.g. {action: remove, when: effective, reason: ...}"
        return f"{where}: required"
    if kind.startswith("policy_"):
        return f"{where}: {error['msg']}"
    if kind == "literal_error" and loc == ("version",):
        return f"version: {value!r} is not supported; use version: 1"
    message = error["msg"]
    if isinstance(value, str | int | float | bool) or value is None:
        message = f"{value!r} — {message}"
    return f"{where}: {message}"


def _format_validation(exc: ValidationError, data: Any, source: str) -> str:
    problems = [_describe(error, data) for error in exc.errors(include_url=False)]
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problems:\n" + "\n".join(f"  - {problem}" for problem in problems)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """YAML text to a validated Policy; every problem becomes one PolicyError naming its place."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(f"{source}: YAML syntax error{where}: {problem}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy must be a YAML mapping with version, default and rules")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_validation(exc, data, source)) from None


def load_policy(path: pathlib.Path) -> Policy:
    """Read and validate a policy file; a missing or unreadable file is a PolicyError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy file") from None
    except IsADirectoryError:
        raise PolicyError(f"{path}: is a directory, not a policy file") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_policy(text, source=str(path))
