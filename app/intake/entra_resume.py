"""Resuming the Entra leaver workflow that waits on leaver: once every case of its event ended
(or at once, per source), `POST {graph}{callbackUriPath}` with the outcome.

It reads state and writes none: which events still wait is asked of the events and cases tables
each round, and a resume already sent is remembered in memory only. After a restart, or with
several API replicas, a workflow may be resumed twice; Graph refuses the second call (4xx), which
is taken as done. A workflow waits at most three hours, so only events received within the
source's `resume_window_seconds` are considered."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.domain import CASE_TERMINAL, CaseState
from app.iga.base import IgaPermanentError, IgaTransientError
from app.iga.http import OAuth2Token
from app.intake.sources import EntraOptions, Source, Sources
from app.runtime import Runtime
from app.store.models import Case, Event

log = structlog.get_logger(__name__)
TIMEOUT = 10.0


class Resumer:
    """One per app: resumes waiting workflows of every Entra source with `resume` set."""

    def __init__(self, rt: Runtime, sources: Sources) -> None:
        self.rt = rt
        self.sources = [s for s in sources.of("entra") if s.options.resume != "never"]
        self._tokens = {s.name: _token(s.options) for s in self.sources}
        self._sent: dict[str, datetime] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look now (an event arrived that may be resumed at once)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        if not self.sources:
            return
        poll = min(s.options.resume_poll_seconds for s in self.sources)
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            while not stop.is_set():
                try:
                    await self.round(http)
                except Exception as exc:  # a round that fails must not end the loop
                    log.error("intake.entra_resume_failed", error=type(exc).__name__)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), timeout=poll)

    async def round(self, http: httpx.AsyncClient) -> None:
        """Resume every workflow whose event is ready; forget what is out of every window."""
        now = datetime.now(UTC)
        for source in self.sources:
            for event_id, callback, outcome in await self._ready(source, now):
                if await self._resume(http, source, callback, outcome):
                    self._sent[event_id] = now
        horizon = now - timedelta(seconds=max(s.options.resume_window_seconds for s in self.sources))
        self._sent = {k: v for k, v in self._sent.items() if v >= horizon}

    async def _ready(self, source: Source, now: datetime) -> list[tuple[str, str, str]]:
        """(event ID, callback path, "Completed"/"Failed") of events ready to resume."""
        options: EntraOptions = source.options
        since = now - timedelta(seconds=options.resume_window_seconds)
        try:
            async with self.rt.sessions() as session:
                events = (
                    await session.execute(
                        select(Event.id, Event.payload).where(
                            Event.format == "entra", Event.source == source.name, Event.received_at >= since
                        )
                    )
                ).all()
                waiting = {eid: payload for eid, payload in events if eid not in self._sent}
                states: dict[str, list[str]] = {eid: [] for eid in waiting}
                if waiting:
                    rows = await session.execute(select(Case.event_id, Case.state).where(Case.event_id.in_(waiting)))
                    for eid, state in rows.all():
                        states[eid].append(state)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("intake.entra_resume_db_unavailable", error=type(exc).__name__)
            return []
        ready = []
        for eid, payload in waiting.items():
            callback = _callback(payload)
            outcome = _outcome(states[eid], options.resume)
            if callback and outcome:
                ready.append((eid, callback, outcome))
        return ready

    async def _resume(self, http: httpx.AsyncClient, source: Source, callback: str, outcome: str) -> bool:
        """Whether the workflow is resumed (or cannot be any more); False: try again next round."""
        options: EntraOptions = source.options
        body = {"data": {"operationStatus": outcome}, "source": "leaver", "type": "lifecycleEvent"}
        token = self._tokens[source.name]
        try:
            headers = await token.headers(http)
            resp = await http.post(f"{options.graph_url.rstrip('/')}{callback}", json=body, headers=headers)
        except (IgaTransientError, httpx.HTTPError) as exc:
            log.warning("intake.entra_resume_retry", source=source.name, error=type(exc).__name__)
            return False
        except IgaPermanentError as exc:
            log.error("intake.entra_resume_token_refused", source=source.name, error=str(exc))
            return False
        if resp.status_code in (401, 403):
            token.invalidate()
            log.warning("intake.entra_resume_unauthorized", source=source.name, status=resp.status_code)
            return False
        if resp.status_code == 429 or resp.status_code >= 500:
            return False
        level = log.info if resp.status_code < 300 else log.warning
        level("intake.entra_resumed", source=source.name, outcome=outcome, status=resp.status_code)
        return True


def _token(options: EntraOptions) -> OAuth2Token:
    graph = urlsplit(options.graph_url)
    form = {
        "grant_type": "client_credentials",
        "client_id": options.client_id or "",
        "client_secret": options.client_secret.get_secret_value() if options.client_secret else "",
        "scope": f"{graph.scheme}://{graph.netloc}/.default",
    }
    return OAuth2Token(options.resolved_token_url, form)


def _callback(payload: Any) -> str | None:
    entra = payload.get("attributes", {}).get("entra") if isinstance(payload, dict) else None
    value = entra.get("callbackUriPath") if isinstance(entra, dict) else None
    return value if isinstance(value, str) else None


def _outcome(states: list[str], mode: str) -> str | None:
    """What to tell the workflow, or None while it must still wait."""
    if mode == "accepted":
        return "Completed"
    if not states or not all(s in CASE_TERMINAL for s in states):
        return None
    return "Failed" if any(s == CaseState.FAILED for s in states) else "Completed"


async def _first(*events: asyncio.Event) -> None:
    """Return when any of `events` is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
