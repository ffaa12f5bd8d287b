"""The embedded demo (`leaver serve --demo`): built-in simulators as IGA targets, generated secrets
kept under the data folder, and ready-to-send demo events."""

from __future__ import annotations

import json
import secrets
from base64 import b64encode
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from pydantic import SecretStr

from app.iga.registry import ADAPTERS
from app.settings import Settings, TargetSettings
from app.simulator import SIMULATORS, create_simulator, simulator_spec
from app.simulator.demo_users import demo_people

DEMO_EVENT = {
    "id": "demo-jdoe-1",
    "type": "user.terminated",
    "occurred_at": "2026-11-20T17:00:00Z",
    "source": "demo-idm",
    "user": {
        "username": "jdoe",
        "email": "jdoe@example.com",
        "employee_id": "E1001",
        "dn": "cn=jdoe,ou=users,o=example",
    },
    "attributes": {"employeeStatus": "T"},
}


def demo_disable_event() -> dict[str, object]:
    """A disable for the first generated demo user holding privileged access: the demo policy
    holds that access for an operator to approve or keep in the console."""
    person = next(p for p in demo_people() if p.username.startswith("user") and any(a.privileged for a in p.access))
    return {
        "id": f"demo-{person.username}-disabled",
        "type": "user.disabled",
        "occurred_at": "2026-11-20T17:00:00Z",
        "source": "demo-idm",
        "user": {"username": person.username, "email": person.email},
        "attributes": {"employeeStatus": "L"},
    }


def demo_systems() -> list[str]:
    """Systems with both a simulator and an adapter, in a stable order."""
    return sorted(set(SIMULATORS) & set(ADAPTERS))


def demo_targets(base_url: str) -> list[TargetSettings]:
    targets = []
    for system in demo_systems():
        targets.append(simulator_spec(system).demo_target(f"{base_url}/sim/{system}", system))
    return targets


def demo_simulators() -> dict[str, FastAPI]:
    return {system: create_simulator(system) for system in demo_systems()}


def _kept_secret(path: Path, make: str) -> str:
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make + "\n")
    path.chmod(0o600)
    return make


def prepare_demo(settings: Settings) -> Settings:
    """Fill in what the demo needs and the operator did not set, keeping it across restarts."""
    data = settings.data_dir
    changes: dict[str, object] = {}
    if not settings.webhook_secret:
        value = _kept_secret(data / "webhook-secret", "whsec_" + b64encode(secrets.token_bytes(32)).decode())
        changes["webhook_secret"] = SecretStr(value)
    if not settings.ops_token:
        changes["ops_token"] = SecretStr(_kept_secret(data / "ops-token", secrets.token_urlsafe(24)))
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    for name, event in (("demo-event.json", DEMO_EVENT), ("demo-disable.json", demo_disable_event())):
        event_file = data / name
        if not event_file.exists():
            event_file.write_text(json.dumps({**event, "occurred_at": stamp}, indent=2) + "\n")
    return settings.model_copy(update=changes)


def demo_secret_from_disk(data_dir: Path, name: str) -> str | None:
    path = data_dir / name
    return path.read_text().strip() if path.is_file() else None
