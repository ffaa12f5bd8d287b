"""Database outage, for real: PostgreSQL is reached through a proxy the test cuts and restores.

Intake answers 503 + Retry-After while the database is away and 202 again when it is back;
readiness follows; a worker holding a job pauses and the job is finished afterwards, once."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.main import create_app
from app.runtime import build_runtime
from app.store.migrate import upgrade
from tests.conftest import OPS_TOKEN, _pg_admin, make_settings
from tests.servers import serve_in_thread
from tests.support import FIRST_SYSTEM, event_body, serve_simulator, signed
from tests.tcp_proxy import TcpProxy

PG = os.environ.get("LEAVER_TEST_DATABASE_URL") or "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def proxied_pg() -> Iterator[tuple[str, TcpProxy]]:
    """A fresh migrated PostgreSQL database, and its URL through a cuttable proxy."""
    name = f"leaver_outage_{uuid.uuid4().hex[:8]}"
    try:
        _pg_admin(PG, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # a clear message instead of a skip: CI always has PostgreSQL
        raise AssertionError(f"this test needs PostgreSQL at {PG} (set LEAVER_TEST_DATABASE_URL): {exc}") from exc
    direct = f"{PG.rpartition('/')[0]}/{name}"
    upgrade(direct)
    parts = urlsplit(direct)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    user = f"{parts.username}@" if parts.username else ""
    yield f"{parts.scheme}://{user}127.0.0.1:{proxy.port}{parts.path}", proxy
    proxy.close()
    _pg_admin(PG, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_intake_and_workers_ride_out_a_database_outage(proxied_pg: tuple[str, TcpProxy], tmp_path: Path) -> None:
    url, proxy = proxied_pg
    auth = {"authorization": f"Bearer {OPS_TOKEN}"}
    with serve_simulator(FIRST_SYSTEM) as sim:
        http = httpx.Client(timeout=30)
        settings = make_settings(url, tmp_path, [sim.target()], lease_seconds=2.0)
        with serve_in_thread(create_app(build_runtime(settings))) as app_url:

            def send(user: str) -> httpx.Response:
                raw, headers = signed(event_body(user))
                return http.post(f"{app_url}/webhooks/events", content=raw, headers=headers)

            def case_states(event_id: str) -> list[str]:
                status = http.get(f"{app_url}/status/events/{event_id}", headers=auth).json()
                return [c["state"] for c in status["cases"]]

            assert http.get(f"{app_url}/readyz").status_code == 200
            # The IGA is slow, so the worker holds the job of this event while the database goes.
            sim.faults(latency=1.0)
            first = send("jdoe")
            assert first.status_code == 202
            time.sleep(0.3)
            proxy.cut()

            down = send("asmith")
            assert down.status_code == 503
            assert down.headers["retry-after"] == "5"
            assert down.headers["content-type"].startswith("application/problem+json")
            assert http.get(f"{app_url}/readyz").status_code == 503
            assert http.get(f"{app_url}/healthz").status_code == 200  # the process itself is fine
            time.sleep(2.5)  # the worker's lease runs out while the database is away

            proxy.restore()
            sim.clear_faults()
            _wait(lambda: http.get(f"{app_url}/readyz").status_code == 200)
            again = send("asmith")  # the IDM's retry of the refused delivery
            assert again.status_code == 202
            for event_id in (first.json()["event_id"], again.json()["event_id"]):
                _wait(lambda eid=event_id: case_states(eid) == ["done"], timeout=60)

        sent = sim.submitted_items()
        assert sent and len(sent) == len(set(sent)), "an item was submitted twice across the outage"
