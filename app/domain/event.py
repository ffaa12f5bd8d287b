"""`LeaverEvent`: the one normalised event every intake format becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

EventType = Literal["user.disabled", "user.terminated", "user.enabled"]
#: Dates outside this span are a sender's bug, not a leaver.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class EventUser(BaseModel):
    """The user as the IDM knows them; at least one identifier is required."""

    model_config = ConfigDict(extra="forbid")

    dn: str | None = Field(default=None, max_length=1024)
    username: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=320)
    employee_id: str | None = Field(default=None, max_length=128)
    #: A known IGA ID per target name, skipping the lookup.
    ids: dict[str, Annotated[str, Field(min_length=1, max_length=300)]] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _has_identifier(self) -> EventUser:
        if not (self.dn or self.username or self.email or self.employee_id or self.ids):
            raise ValueError("user needs at least one of dn, username, email, employee_id, ids")
        return self

    def label(self) -> str:
        return self.username or self.email or self.employee_id or self.dn or next(iter(self.ids.values()), "?")


class LeaverEvent(BaseModel):
    """The generic JSON event of the design (and what SCIM, SSF, Okta... are mapped to)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    type: EventType
    occurred_at: AwareDatetime
    effective_at: AwareDatetime | None = None
    source: str = Field(default="unknown", min_length=1, max_length=100)
    user: EventUser
    target: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] = Field(default_factory=dict)
    #: Plan and record everything, submit nothing (beside the global and per-target settings).
    dry_run: bool = False

    @field_validator("occurred_at", "effective_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("date out of range") from None
        if not EARLIEST <= utc < LATEST:
            raise ValueError(f"date out of range: must fall between {EARLIEST:%Y} and {LATEST:%Y}")
        return utc

    @property
    def effective(self) -> datetime:
        """When removals fall due: `effective_at`, or the time the event occurred."""
        return self.effective_at or self.occurred_at
