"""Talking to a running leaver over HTTP: send events, read what happened, act as an operator."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from app.cli.common import fail, ops_token, settings_or_exit, webhook_secret

client_app = typer.Typer()
events_app = typer.Typer(help="Send events to a running leaver.", no_args_is_help=True)


@events_app.command("send")
def events_send(
    file: Annotated[Path, typer.Argument(help="JSON file with the generic event.", exists=True, dir_okay=False)],
    url: Annotated[str, typer.Option(help="Base URL of leaver.")] = "http://127.0.0.1:8000",
    message_id: Annotated[str | None, typer.Option("--id", help="webhook-id (default: derived from the body).")] = None,
) -> None:
    """Sign (Standard Webhooks) and post an event; sending the same file again is a redelivery."""
    from app.intake.signature import sign

    settings = settings_or_exit()
    body = file.read_bytes()
    try:
        json.loads(body)
    except ValueError:
        fail(f"{file} is not valid JSON")
    msg_id = message_id or "msg_" + hashlib.sha256(body).hexdigest()[:32]
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(webhook_secret(settings), msg_id, stamp, body),
    }
    try:
        resp = httpx.post(f"{url.rstrip('/')}/webhooks/events", content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}")
    typer.echo(f"{resp.status_code} {resp.text}")
    if resp.status_code >= 400:
        raise typer.Exit(1)


URL = Annotated[str, typer.Option(help="Base URL of leaver.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _call(method: str, url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One authenticated call to the API; any error is one line and exit code 1."""
    token = ops_token(settings_or_exit())
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.request(method, f"{url.rstrip('/')}{path}", headers=headers, json=body, timeout=30)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}")
    if resp.status_code >= 400:
        detail = resp.json().get("detail") if "json" in resp.headers.get("content-type", "") else resp.text
        typer.echo(f"leaver: {resp.status_code} {detail}", err=True)
        raise typer.Exit(1)
    result: dict[str, Any] = resp.json()
    return result


def _when(value: str | None) -> str:
    return value.replace("+00:00", "Z")[:19] + "Z" if value else "-"


def _print_case(case: dict[str, Any]) -> None:
    extra = f" — {case['error']}" if case["error"] else (f" — {case['outcome']}" if case.get("outcome") else "")
    dry = " (dry run: nothing submitted)" if case.get("dry_run") else ""
    typer.echo(f"  case {case['case_id']} on {case['target']}: {case['state']}{dry}{extra}")
    for item in case["items"]:
        via = " via role" if item["granted_by"] == "role" else ""
        typer.echo(
            f"    {item['state']:<10} {item['type']:<14} {item['name']}{via} [item {item['id']}]\n"
            f"               rule {item['rule']}: {item['note'] or item['reason']}\n"
            f"               request {item['iga_request_id'] or '-'} ({item['iga_status'] or '-'}), "
            f"due {_when(item['due_at'])}, submitted {_when(item['submitted_at'])}, "
            f"finished {_when(item['finished_at'])}"
        )


@client_app.command("status")
def status_cmd(
    event_id: Annotated[str, typer.Argument(help="Event ID returned by the webhook.")],
    url: URL = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    timeline: Annotated[bool, typer.Option("--timeline", help="Also print every state change.")] = False,
) -> None:
    """What happened to one event: each item's state, rule and reason, request ID, times."""
    data = _call("GET", url, f"/status/events/{event_id}")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"event {data['event_id']} ({data['type']}, {data['source']}/{data['external_id']})")
    typer.echo(f"  occurred {_when(data['occurred_at'])}, received {_when(data['received_at'])}")
    for case in data["cases"]:
        _print_case(case)
    if timeline:
        typer.echo("  timeline:")
        for t in data["timeline"]:
            change = f"{t['before'] or ''} -> {t['after']}" if t["before"] != t["after"] else "note"
            typer.echo(f"    {_when(t['at'])} {t['actor']}: {t['entity']} {t['entity_id']} {change}: {t['why']}")


USER_KEY = Annotated[str, typer.Argument(help="Username, email, employee ID, DN or IGA ID.")]


@client_app.command("users")
def users_cmd(key: USER_KEY, url: URL = DEFAULT_URL) -> None:
    """Every event and case of one person."""
    data = _call("GET", url, f"/status/users/{key}")
    for event in data["events"]:
        typer.echo(f"event {event['event_id']} {event['type']} occurred {_when(event['occurred_at'])}")
        for case in event["cases"]:
            _print_case(case)


@client_app.command("attention")
def attention_cmd(url: URL = DEFAULT_URL) -> None:
    """What waits for an operator: blast-radius guard batches, held and uncertain items, dead letters."""
    held = _call("GET", url, "/status/guard")["held"]
    for batch in held:
        print_batch(batch)
    data = _call("GET", url, "/status/attention")
    for item in data["items"]:
        typer.echo(f"{item['state']:<10} item {item['id']:<6} {item['user']:<20} {item['name']} ({item['why']})")
    for case in data["dead_letters"]:
        typer.echo(f"{'failed':<10} case {case['case_id']:<6} {case['user']:<20} {case['target']}: {case['error']}")
    if not held and not data["items"] and not data["dead_letters"]:
        typer.echo("nothing waits for an operator")


def _action(kind: str, verb: str, row: int, reason: str, url: str) -> None:
    result = _call("POST", url, f"/ops/{kind}/{row}/{verb}", {"reason": reason})
    typer.echo(json.dumps(result))


REASON = Annotated[str, typer.Option("--reason", help="Why (kept in the audit).")]
REQUIRED_REASON = Annotated[str, typer.Option("--reason", help="Why (required; kept in the audit).")]


@client_app.command("approve")
def approve_cmd(item: int, reason: REASON = "approved from the CLI", url: URL = DEFAULT_URL) -> None:
    """Release a held item for removal now."""
    _action("items", "approve", item, reason, url)


@client_app.command("keep")
def keep_cmd(item: int, reason: REQUIRED_REASON, url: URL = DEFAULT_URL) -> None:
    """Keep a held item: it is not removed."""
    _action("items", "keep", item, reason, url)


@client_app.command("retry")
def retry_cmd(case: int, reason: REASON = "retried from the CLI", url: URL = DEFAULT_URL) -> None:
    """Send a failed case back through the pipeline (sent batches are looked up, never resent)."""
    _action("cases", "retry", case, reason, url)


@client_app.command("cancel")
def cancel_cmd(case: int, reason: REQUIRED_REASON, url: URL = DEFAULT_URL) -> None:
    """Cancel every removal of a case not yet sent to the IGA."""
    _action("cases", "cancel", case, reason, url)


def print_batch(batch: dict[str, Any]) -> None:
    """A guard batch, loud when it waits: its size and first events."""
    head = "GUARD HELD" if batch["state"] == "held" else f"guard {batch['state']}"
    limit = f"more than {batch['max_leavers']} leavers within {batch['window_seconds']:g}s"
    typer.echo(
        f"{head}: batch {batch['id']} on {batch['target']}: {batch['waiting']} of {batch['cases']} cases waiting "
        f"({limit}, since {_when(batch['tripped_at'])})"
    )
    for first in batch["first_events"]:
        typer.echo(f"    case {first['case_id']:<6} {first['type']:<16} {first['user'] or '-':<20} {first['event_id']}")
    if batch["decided_by"]:
        typer.echo(f"    {batch['state']} by {batch['decided_by']} at {_when(batch['decided_at'])}: {batch['reason']}")


guard_app = typer.Typer(help="The blast-radius guard: list, confirm or cancel held batches.", no_args_is_help=True)


@guard_app.command("list")
def guard_list(url: URL = DEFAULT_URL) -> None:
    """Guard batches, waiting ones first."""
    batches = _call("GET", url, "/status/guard")["batches"]
    for batch in batches:
        print_batch(batch)
    if not batches:
        typer.echo("the guard has never tripped")


@guard_app.command("confirm")
def guard_confirm(batch: int, reason: REQUIRED_REASON, url: URL = DEFAULT_URL) -> None:
    """The leavers are real: every case of the batch proceeds to submission."""
    _action("guard", "confirm", batch, reason, url)


@guard_app.command("cancel")
def guard_cancel(batch: int, reason: REQUIRED_REASON, url: URL = DEFAULT_URL) -> None:
    """A bad feed: every case of the batch is cancelled; nothing is submitted."""
    _action("guard", "cancel", batch, reason, url)
