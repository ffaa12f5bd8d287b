"""Real `leaver` processes for the crash, shutdown and scale-out tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.domain import LeaverEvent
from app.runtime import build_runtime
from app.settings import TargetSettings
from app.store.intake import store_event
from tests.conftest import OPS_TOKEN, WEBHOOK_SECRET, make_settings

FAST_ENV = {
    "LEAVER_IDLE_POLL_SECONDS": "0.05",
    "LEAVER_TRACK_INITIAL_SECONDS": "0.2",
    "LEAVER_TRACK_MAX_SECONDS": "1",
    "LEAVER_LEASE_SECONDS": "3",
    "LEAVER_LOG_FORMAT": "json",
    "LEAVER_LOG_LEVEL": "warning",
    # Load and crash tests send hundreds of leavers at once on purpose: no blast-radius guard.
    "LEAVER_GUARD_MAX_LEAVERS": "0",
}


def leaver_env(database_url: str, data_dir: Path, targets: list[TargetSettings], **extra: str) -> dict[str, str]:
    """The environment of a `leaver` process on these targets: fast polls and leases, and (unless
    `extra` sets it) the shortest resend grace its start check accepts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")}
    env.update(FAST_ENV)
    env.update(
        {
            "LEAVER_DATABASE_URL": database_url,
            "LEAVER_DATA_DIR": str(data_dir),
            "LEAVER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LEAVER_OPS_TOKEN": OPS_TOKEN,
            "LEAVER_TARGETS": json.dumps([t.model_dump(mode="json") | _secrets(t) for t in targets]),
        }
    )
    env.update(extra)
    if "LEAVER_RESEND_GRACE_SECONDS" not in extra:
        lease = float(env["LEAVER_LEASE_SECONDS"])
        env["LEAVER_RESEND_GRACE_SECONDS"] = repr(resend_grace(targets, lease))
    return env


def resend_grace(targets: list[TargetSettings], lease_seconds: float, floor: float = 0.5) -> float:
    """The shortest resend grace a process accepts at start: longer than any send in flight (the
    read timeout, never past 4/5 of the lease) plus the time the IGA takes to list a request."""
    needed = [min(t.http.read_timeout, lease_seconds * 0.8) + t.listing_lag_seconds for t in targets]
    return max([floor, *needed])


def _secrets(t: TargetSettings) -> dict[str, Any]:
    return {
        "client_secret": t.client_secret.get_secret_value() if t.client_secret else None,
        "password": t.password.get_secret_value() if t.password else None,
    }


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `leaver ARGS` in its own process group, output to `log`."""
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn(args, env, log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


def store_events(
    database_url: str, data_dir: Path, targets: list[TargetSettings], events: list[dict[str, Any]]
) -> list[str]:
    """Commit events straight into the store, as intake would (for worker-only tests)."""

    async def run() -> list[str]:
        rt = build_runtime(make_settings(database_url, data_dir, targets, workers=0))
        try:
            ids = []
            for body in events:
                ev = LeaverEvent.model_validate(body)
                stored = await store_event(rt.sessions, ev, targets=[t.name for t in targets], webhook_id=None)
                ids.append(stored.event_id)
            return ids
        finally:
            await rt.aclose()

    return asyncio.run(run())


def query(database_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    from app.store.db import make_engine

    async def run() -> list[tuple[Any, ...]]:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]
        finally:
            await engine.dispose()

    return asyncio.run(run())
