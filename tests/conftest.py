"""Shared fixtures: a real database (SQLite file, or PostgreSQL from LEAVER_TEST_DATABASE_URL)
migrated with the real migrations, and settings pointing at it."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from app.settings import Settings, TargetSettings
from app.store.db import make_engine
from app.store.migrate import upgrade
from app.store.models import Base

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OPS_TOKEN = "test-ops-token-0123456789"
PG_URL = os.environ.get("LEAVER_TEST_DATABASE_URL")
#: The demo policy without its hold rule: every item of a test case ends terminal on its own.
TEST_POLICY = Path(__file__).parent / "policy.yaml"


def _pg_admin(url: str, sql: str) -> None:
    async def run() -> None:
        base, _, _ = url.rpartition("/")
        engine = make_engine(f"{base}/postgres")
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run the tests that use a database (through `migrated_template`, or marked
    `postgres`): the others (simulators, adapters, policy, deployment files) cannot differ by
    database and already run on SQLite. `LEAVER_TEST_ALL=1` runs everything anyway."""
    if not PG_URL or os.environ.get("LEAVER_TEST_ALL"):
        return
    keep, drop = [], []
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        uses_db = "migrated_template" in fixtures or item.get_closest_marker("postgres")
        (keep if uses_db else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the whole session: a SQLite file to copy, or a PostgreSQL database."""
    if PG_URL:
        name = f"leaver_test_{uuid.uuid4().hex[:10]}"
        _pg_admin(PG_URL, f'CREATE DATABASE "{name}"')
        url = f"{PG_URL.rpartition('/')[0]}/{name}"
        upgrade(url)
        yield url
        _pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path_factory.mktemp("template") / "leaver.db"
        upgrade(f"sqlite+aiosqlite:///{path}")
        yield str(path)


def _truncate(url: str) -> None:
    async def run() -> None:
        engine = make_engine(url)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def database_url(migrated_template: str, tmp_path: Path) -> str:
    """A clean, migrated database for one test."""
    if PG_URL:
        _truncate(migrated_template)
        return migrated_template
    path = tmp_path / "leaver.db"
    shutil.copy(migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


def make_settings(
    database_url: str, data_dir: Path, targets: list[TargetSettings] | None = None, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "webhook_secret": SecretStr(WEBHOOK_SECRET),
        "ops_token": SecretStr(OPS_TOKEN),
        "targets": targets or [],
        "policy_file": TEST_POLICY,
        "workers": 4,
        "idle_poll_seconds": 0.05,
        "track_initial_seconds": 0.2,
        "track_max_seconds": 1.0,
        "resend_grace_seconds": 0.5,
        "verify_grace_seconds": 30.0,
        "lease_seconds": 10.0,
        "guard_max_leavers": 0,  # the guard's own tests turn it on
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)
