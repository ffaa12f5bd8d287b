"""Deciding, item by item, what happens to a leaver's access.

Pure on purpose: no I/O and no clock (`now` is an argument), so the same inputs always give the
same plan. That makes a plan reproducible after a crash, testable exhaustively, and explainable
after the fact from what was recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from app.domain import AccessItem, IgaUser, LeaverEvent
from app.policy.model import Action, DefaultRule, Match, Policy

__all__ = ["Action", "Decision", "Plan", "evaluate", "explain"]

_EVENT_USER_FIELDS = ("dn", "username", "email", "employee_id")


@dataclass(frozen=True)
class Decision:
    """What the policy decided for one item, and which rule said so (promise 5: explainable)."""

    item: AccessItem
    action: Action
    rule: str
    reason: str
    due_at: datetime | None


@dataclass(frozen=True)
class Plan:
    """One decision per access item, in the order the items were given."""

    decisions: list[Decision]


def _glob(value: str | None, patterns: Iterable[str]) -> bool:
    """Case-insensitive fnmatch against any pattern; a missing value matches nothing, not even ``*``."""
    if value is None:
        return False
    folded = value.casefold()
    return any(fnmatchcase(folded, pattern.casefold()) for pattern in patterns)


def _as_texts(value: Any) -> list[str] | None:
    """An attribute value as the strings a `user` glob is compared with; None when absent.

    Booleans become "true"/"false" (so ``legalHold: "true"`` matches a real boolean), and a
    multi-valued attribute matches when any of its values does.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list | tuple | set | frozenset):
        return [text for element in value for text in (_as_texts(element) or [])]
    return [str(value)]


def _user_attribute(name: str, event: LeaverEvent, user: IgaUser) -> list[str] | None:
    """The IGA's view first (it is the system of record for access), then the event, then the
    identifiers the IDM sent."""
    sources: list[Mapping[str, Any]] = [user.attributes, event.attributes]
    for source in sources:
        texts = _as_texts(source.get(name))
        if texts is not None:
            return texts
    if name in _EVENT_USER_FIELDS:
        return _as_texts(getattr(event.user, name))
    return None


def _matches(match: Match, event: LeaverEvent, user: IgaUser, item: AccessItem, target: str) -> bool:
    """True when every condition given in `match` holds; conditions not given are ignored."""
    if match.event is not None and event.type not in match.event:
        return False
    if match.target is not None and target not in match.target:
        return False
    if match.type is not None and item.type not in match.type:
        return False
    if match.application is not None and not _glob(item.application, match.application):
        return False
    if match.name is not None and not _glob(item.name, match.name):
        return False
    if match.id is not None and item.id not in match.id:
        return False
    if match.privileged is not None and item.privileged != match.privileged:
        return False
    if match.granted_by is not None and item.granted_by not in match.granted_by:
        return False
    if match.user is not None:
        for attribute, pattern in match.user.items():
            texts = _user_attribute(attribute, event, user)
            if texts is None or not any(_glob(text, (pattern,)) for text in texts):
                return False
    return True


def _decide(rule: DefaultRule, rule_name: str, item: AccessItem, event: LeaverEvent, now: datetime) -> Decision:
    due = rule.due
    return Decision(
        item=item,
        action=rule.action,
        rule=rule_name,
        reason=rule.reason,
        due_at=due.resolve(event, now).astimezone(UTC) if due is not None else None,
    )


def evaluate(
    policy: Policy,
    event: LeaverEvent,
    user: IgaUser,
    items: Sequence[AccessItem],
    *,
    target: str,
    now: datetime,
) -> Plan:
    """Decide every item: the first matching rule wins, else the default.

    `now` must be timezone-aware; a naive time would silently mean the host's local zone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("evaluate: `now` must be timezone-aware")
    decisions: list[Decision] = []
    for item in items:
        for rule in policy.rules:
            if _matches(rule.match, event, user, item, target):
                decisions.append(_decide(rule, rule.name, item, event, now))
                break
        else:
            decisions.append(_decide(policy.default, "default", item, event, now))
    return Plan(decisions=decisions)


def _cell(value: str) -> str:
    """One table cell on one line: names and reasons come from outside and may hold newlines."""
    return " ".join(value.split())


def _when(decision: Decision) -> str:
    if decision.due_at is None:
        return "-"
    return decision.due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def explain(plan: Plan) -> str:
    """The plan as a fixed-width table, for `leaver policy explain` and for operators reading logs."""
    if not plan.decisions:
        return "No access items: nothing to decide."
    header = ("TYPE", "APPLICATION", "NAME", "ACTION", "WHEN", "RULE", "REASON")
    rows = [header] + [
        (
            d.item.type,
            _cell(d.item.application or "-"),
            _cell(d.item.name),
            d.action,
            _when(d),
            d.rule,
            _cell(d.reason),
        )
        for d in plan.decisions
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]
    counts = Counter(d.action for d in plan.decisions)
    total = len(plan.decisions)
    lines.append("")
    lines.append(
        f"{total} item{'s' if total != 1 else ''}: "
        f"{counts['remove']} remove, {counts['keep']} keep, {counts['hold']} hold"
    )
    return "\n".join(lines)
