"""Okta Event Hooks: the one-time verification, the shared-secret header, lifecycle events several
to a delivery, each stored once by its `uuid`, and `204` only after all of them are committed."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.intake.conftest import DOWN, OKTA_SECRET, SOURCES, Intake, stored

AUTH = {"authorization": OKTA_SECRET, "content-type": "application/json"}


def log_event(
    event_type: str = "user.lifecycle.deactivate", login: str = "jdoe@example.com", **changes: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "published": "2026-11-20T17:00:01.512Z",
        "eventType": event_type,
        "displayMessage": "Deactivate Okta user",
        "outcome": {"result": "SUCCESS"},
        "actor": {"id": "00u1admin", "type": "User", "alternateId": "admin@acme.com", "displayName": "Admin"},
        "target": [{"id": "00u1jdoe", "type": "User", "alternateId": login, "displayName": "J Doe"}],
    }
    event.update(changes)
    return event


def delivery(*events: dict[str, Any]) -> dict[str, Any]:
    """The envelope of intake-formats.md §4."""
    return {
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "contentType": "application/json",
        "eventId": "b5a1c9f0-0000-4000-8000-000000000001",
        "eventTime": "2026-11-20T17:00:02.000Z",
        "source": "https://acme.okta.com/api/v1/eventHooks/who8ab1",
        "data": {"events": list(events)},
    }


async def test_the_verification_challenge_is_echoed(intake: Intake) -> None:
    client, rt = await intake(SOURCES["okta"])
    resp = await client.get("/webhooks/okta", headers={"x-okta-verification-challenge": "X1uVhJp4ZdoyNRaS3nSg"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == {"verification": "X1uVhJp4ZdoyNRaS3nSg"}
    assert (await client.get("/webhooks/okta")).status_code == 400
    assert await stored(rt) == []


async def test_the_documented_delivery_is_stored_and_answered_204(intake: Intake) -> None:
    client, rt = await intake(SOURCES["okta"])
    event = log_event(uuid="f790999f-fe87-467a-9880-6982a583986c")
    resp = await client.post("/webhooks/okta", json=delivery(event), headers=AUTH)
    assert resp.status_code == 204 and resp.content == b""
    again = await client.post("/webhooks/okta", json=delivery(event), headers=AUTH)  # Okta's one retry
    assert again.status_code == 204
    (stored_event,) = await stored(rt)
    assert stored_event["external_id"] == "f790999f-fe87-467a-9880-6982a583986c"
    assert (stored_event["type"], stored_event["source"], stored_event["cases"]) == ("user.disabled", "okta", 1)
    assert stored_event["user"] == {"username": "jdoe@example.com", "email": "jdoe@example.com"}
    assert stored_event["occurred_at"].isoformat() == "2026-11-20T17:00:01.512000+00:00"
    assert stored_event["attributes"]["okta"]["actor"]["alternateId"] == "admin@acme.com"


async def test_every_lifecycle_event_of_a_batch_maps_to_its_type(intake: Intake) -> None:
    source = {**SOURCES["okta"], "options": {"deactivate_as": "user.terminated"}}
    client, rt = await intake(source)
    kinds = [
        "user.lifecycle.suspend",
        "user.lifecycle.deactivate",
        "user.lifecycle.delete.initiated",
        "user.lifecycle.unsuspend",
        "user.lifecycle.activate",
        "user.lifecycle.reactivate",
    ]
    ignored = [
        log_event("user.session.start"),
        log_event("user.lifecycle.deactivate", outcome={"result": "FAILURE"}),
    ]
    resp = await client.post("/webhooks/okta", json=delivery(*[log_event(k) for k in kinds], *ignored), headers=AUTH)
    assert resp.status_code == 204
    found = [(e["type"], e["cases"]) for e in await stored(rt)]
    assert sorted(found) == sorted(
        [
            ("user.disabled", 1),
            ("user.terminated", 1),
            ("user.terminated", 1),
            ("user.enabled", 1),
            ("user.enabled", 1),
            ("user.enabled", 0),
        ]
    )


@pytest.mark.parametrize(
    ("name", "headers", "body", "status"),
    [
        ("no auth header", {"content-type": "application/json"}, delivery(log_event()), 401),
        ("wrong secret", {**AUTH, "authorization": "Bearer hk_wrong-0123456789"}, delivery(log_event()), 401),
        ("wrong content type", {**AUTH, "content-type": "text/plain"}, delivery(log_event()), 415),
        ("malformed JSON", AUTH, b'{"data": {"events": [', 400),
        ("not an envelope", AUTH, {"events": []}, 400),
        ("an event without a uuid", AUTH, delivery(log_event(uuid=None)), 400),
        (
            "an event without a User target",
            AUTH,
            delivery(log_event(), log_event(target=[{"type": "AppInstance"}])),
            400,
        ),
        ("a bad date", AUTH, delivery(log_event(published="yesterday")), 400),
        ("oversize", AUTH, delivery(*[log_event() for _ in range(40)]), 413),
    ],
)
async def test_bad_deliveries_are_refused_whole_and_store_nothing(
    intake: Intake, name: str, headers: dict[str, str], body: dict[str, Any] | bytes, status: int
) -> None:
    client, rt = await intake(SOURCES["okta"], max_body_bytes=16384)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post("/webhooks/okta", content=raw, headers=headers)
    assert resp.status_code == status, (name, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    assert await stored(rt) == []


async def test_a_custom_header_name_and_two_hooks_at_once(intake: Intake) -> None:
    other = {
        "name": "okta-eu",
        "format": "okta",
        "secrets": ["eu-hook-key-0123456789abcdef"],
        "options": {"header": "X-Leaver-Hook-Key"},
    }
    client, rt = await intake(SOURCES["okta"], other)
    eu = {"x-leaver-hook-key": "eu-hook-key-0123456789abcdef", "content-type": "application/json"}
    assert (await client.post("/webhooks/okta", json=delivery(log_event()), headers=eu)).status_code == 204
    assert (await client.post("/webhooks/okta", json=delivery(log_event()), headers=AUTH)).status_code == 204
    assert sorted(e["source"] for e in await stored(rt)) == ["okta", "okta-eu"]


async def test_answered_well_within_okta_s_three_seconds(intake: Intake) -> None:
    client, rt = await intake(SOURCES["okta"])
    started = time.monotonic()
    resp = await client.post("/webhooks/okta", json=delivery(*[log_event() for _ in range(20)]), headers=AUTH)
    assert resp.status_code == 204 and time.monotonic() - started < 3
    assert len(await stored(rt)) == 20


async def test_a_database_that_is_down_answers_503(intake: Intake) -> None:
    client, _ = await intake(SOURCES["okta"], db=DOWN)
    resp = await client.post("/webhooks/okta", json=delivery(log_event()), headers=AUTH)
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
