"""Keeping the API answering under stalled or excess connections: a deadline for each request's
head (uvicorn alone keeps a silent connection open for ever, so a few thousand of them use up the
process's file descriptors), a cap on requests in flight answered with 503 + Retry-After, and the
highest file-descriptor limit the host allows. Documented in docs/deployment.md."""

from __future__ import annotations

import asyncio
import json
import resource
from asyncio import TimerHandle
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Routes that must answer even when the service sheds load (probes of the orchestrator).
ALWAYS_ANSWERED = ("/healthz", "/readyz", "/metrics")


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a request-head deadline (slow or silent clients are cut off):
    a connection must send a complete request head within `head_timeout` seconds of opening, or of
    its previous response."""

    head_timeout = 10.0
    _head_deadline: TimerHandle | None = None

    @classmethod
    def with_head_timeout(cls, seconds: float) -> type[GuardedHttpProtocol]:
        return type("GuardedHttpProtocol", (cls,), {"head_timeout": seconds})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()


class LoadShedding:
    """At most `limit` requests in flight; beyond it, an immediate 503 problem with Retry-After, so
    clients back off instead of queueing until everything times out. Probes always pass."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ALWAYS_ANSWERED:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await _busy(send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


async def _busy(send: Send) -> None:
    body = json.dumps(
        {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "too many requests in flight"}
    ).encode()
    headers: list[Any] = [
        (b"content-type", b"application/problem+json"),
        (b"retry-after", b"1"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def raise_file_limit() -> None:
    """Use the hard limit of open files the host allows (the soft default is often 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
