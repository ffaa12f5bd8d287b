"""What a policy file may say: its rules, their conditions and actions.

Every model forbids unknown keys, so a typo (``aplication:``) stops the start instead of silently
matching everything.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.domain import EventType, GrantSource, ItemType
from app.policy.when import EFFECTIVE, When, WhenField

Action = Literal["remove", "keep", "hold"]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


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
