"""Everything a running process shares: settings, database, one IGA client per target, policy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.iga.base import IgaClient
from app.iga.registry import build_client
from app.policy.model import Policy, load_policy
from app.settings import Settings, TargetSettings
from app.store.budget import SharedPacer
from app.store.db import is_postgres, make_engine, make_sessionmaker


@dataclass
class Runtime:
    settings: Settings
    targets: list[TargetSettings]
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    policy: Policy
    clients: dict[str, IgaClient] = field(default_factory=dict)
    #: Set when work arrives in this process (intake, an operator action): idle workers look now.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def postgres(self) -> bool:
        return is_postgres(self.engine)

    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def target(self, name: str) -> TargetSettings:
        found = next((t for t in self.targets if t.name == name), None)
        if found is None:
            raise KeyError(f"unknown target {name!r}")
        return found

    def dry_run_targets(self) -> frozenset[str]:
        """Targets whose cases are planned and recorded but never submitted."""
        return frozenset(t.name for t in self.targets if self.settings.dry_run or t.dry_run)

    def guard(self, target: str) -> tuple[int, timedelta]:
        """The blast-radius guard of `target`: (most leavers, window); 0 leavers: no guard."""
        t = self.target(target)
        most = self.settings.guard_max_leavers if t.guard_max_leavers is None else t.guard_max_leavers
        return most, t.guard_window or self.settings.guard_window

    def client(self, target: str) -> IgaClient:
        """The process-wide client of `target`, built on first use (shared rate limits)."""
        if target not in self.clients:
            client = build_client(self.target(target), transport=self._transports.get(target))
            if self.postgres:  # several worker processes: one budget per target for all of them
                rate = client.http.policy.requests_per_second
                client.http.share_budget(SharedPacer(self.sessions, target, rate, burst=max(1, int(rate))))
            self.clients[target] = client
        return self.clients[target]

    _transports: dict[str, httpx.AsyncBaseTransport] = field(default_factory=dict)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()
        await self.engine.dispose()


def build_runtime(
    settings: Settings,
    targets: list[TargetSettings] | None = None,
    transports: dict[str, Any] | None = None,
) -> Runtime:
    """Assemble a runtime; `targets` overrides settings (the demo computes its own)."""
    engine = make_engine(settings.resolved_database_url)
    runtime = Runtime(
        settings=settings,
        targets=list(targets if targets is not None else settings.targets),
        engine=engine,
        sessions=make_sessionmaker(engine),
        policy=load_policy(settings.resolved_policy_file),
    )
    runtime._transports = dict(transports or {})
    return runtime
