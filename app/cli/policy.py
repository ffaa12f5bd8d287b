"""`leaver policy check|explain`: validate a policy and see what it would do, before it runs.

Both commands exit 2 on bad input, so they can gate a deployment pipeline (`policy check` in CI).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.domain import AccessItem, GrantSource, IgaUser, ItemType, LeaverEvent
from app.policy.evaluate import evaluate, explain
from app.policy.model import PolicyError, load_policy

__all__ = ["demo_user_and_items", "policy_app"]

policy_app = typer.Typer(
    name="policy",
    help="Check a policy file, or explain what it decides for an event.",
    no_args_is_help=True,
    add_completion=False,
)


class _ItemIn(BaseModel):
    """One entry of `--items`: the AccessItem fields, with typos refused."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    type: ItemType
    name: str
    application: str | None = None
    privileged: bool = False
    granted_by: GrantSource = "direct"
    removable: bool = True

    def to_item(self) -> AccessItem:
        return AccessItem(**self.model_dump())


_ITEMS = TypeAdapter(list[_ItemIn])


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _errors(exc: ValidationError, prefix: str) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        lines.append(f"  - {prefix}{where}: {error['msg']}")
    return "\n".join(lines)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"{what} {path}: no such file")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{what} {path}: cannot read: {exc}")


def demo_user_and_items(event: LeaverEvent) -> tuple[IgaUser, list[AccessItem]]:
    """The demo person the event names, as the simulators would list them. Raises LookupError.

    Matches on any identifier the event gives; more than one person is refused, as a real IGA
    lookup would be, rather than guessing.
    """
    from app.simulator.demo_users import demo_people  # only the CLI needs the demo data

    given = {
        key: value.casefold()
        for key, value in event.user.model_dump().items()
        if key in ("dn", "username", "email", "employee_id") and value
    }
    people = [p for p in demo_people() if not p.deleted]
    found = [p for p in people if any(getattr(p, key).casefold() == value for key, value in given.items())]
    if not found:
        known = ", ".join(p.username for p in people[:5])
        raise LookupError(
            f"no demo user matches the event user {event.user.label()!r} (demo users include {known}); "
            "pass --items ITEMS.json to explain other users"
        )
    if len(found) > 1:
        names = ", ".join(p.username for p in found)
        raise LookupError(f"the event user matches several demo users ({names}); pass --items ITEMS.json")
    person = found[0]
    user = IgaUser(id=person.username, display_name=person.display_name, attributes=dict(person.attributes))
    items = [
        AccessItem(
            id=f"{access.kind}:{access.name}",
            type=access.kind,
            name=access.name,
            application=access.application,
            privileged=access.privileged,
            granted_by=access.granted_by,
            removable=access.granted_by == "direct",
        )
        for access in person.access
    ]
    return user, items


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--now {value!r}: not an ISO 8601 time (e.g. 2026-11-21T09:00:00Z)")
    # A bare time is read as UTC, the zone every time in leaver is kept in.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_user_attrs(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        attrs = json.loads(value)
    except json.JSONDecodeError as exc:
        _fail(f"--user-attrs: not valid JSON: {exc}")
    if not isinstance(attrs, dict):
        _fail('--user-attrs: expected a JSON object, e.g. {"legalHold": "true"}')
    return attrs


@policy_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The policy YAML file.")],
) -> None:
    """Validate a policy file; exit 2 with the problems if it is not usable."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        _fail(str(exc))
    count = len(policy.rules)
    typer.echo(f"OK: {count} rule{'s' if count != 1 else ''}, default: {policy.default.describe()}")


@policy_app.command("explain")
def explain_command(
    file: Annotated[Path, typer.Argument(help="The policy YAML file.")],
    event_file: Annotated[Path, typer.Argument(metavar="EVENT", help="A generic JSON event file.")],
    items_file: Annotated[
        Path | None,
        typer.Option("--items", help="JSON list of access items; default: the demo user's access."),
    ] = None,
    user_attrs: Annotated[
        str | None,
        typer.Option("--user-attrs", help="IGA user attributes as a JSON object (merged over the demo user's)."),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="IGA target name; default: the event's target.")
    ] = None,
    now: Annotated[
        str | None, typer.Option("--now", help="Evaluate as of this ISO 8601 time; default: the clock.")
    ] = None,
) -> None:
    """Show, item by item, what the policy decides for an event, which rule decided, and why."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        _fail(str(exc))
    try:
        event = LeaverEvent.model_validate_json(_read(event_file, "EVENT"))
    except ValidationError as exc:
        _fail(f"EVENT {event_file}: not a valid event:\n{_errors(exc, 'event')}")
    extra_attrs = _parse_user_attrs(user_attrs)
    at = _parse_now(now)

    if items_file is not None:
        try:
            items = [entry.to_item() for entry in _ITEMS.validate_json(_read(items_file, "--items"))]
        except ValidationError as exc:
            _fail(f"--items {items_file}: not a JSON list of access items:\n{_errors(exc, 'items')}")
        user = IgaUser(id=event.user.label(), attributes=extra_attrs)
    else:
        try:
            user, items = demo_user_and_items(event)
        except LookupError as exc:
            _fail(str(exc))
        # Given attributes override the demo person's, to try e.g. a legal hold on jdoe.
        attributes = {**user.attributes, **extra_attrs}
        user = IgaUser(id=user.id, display_name=user.display_name, attributes=attributes)

    plan = evaluate(policy, event, user, items, target=target or event.target or "", now=at)
    typer.echo(explain(plan))
