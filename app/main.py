"""The composition root: the FastAPI application with intake, status, ops, health, the web page,
the in-process workers and (demo) simulators, wired to one runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import console, guard, health, ops, report, status
from app.api.deps import Serving
from app.api.docs import install_docs
from app.intake import formats as intake_formats
from app.intake import routes as intake
from app.problems import install_problem_handlers
from app.runtime import Runtime
from app.serving import LoadShedding
from app.worker.loop import Worker


def create_app(
    rt: Runtime,
    *,
    workers: int | None = None,
    simulators: dict[str, FastAPI] | None = None,
    open_reads: bool = False,
) -> FastAPI:
    """`workers`: in-process worker concurrency (default from settings; 0 = API only).
    `open_reads`: status pages without a token (the embedded demo only)."""
    concurrency = rt.settings.workers if workers is None else workers
    serving = Serving(open_reads=open_reads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = None
        if concurrency > 0:
            task = asyncio.create_task(Worker(rt, concurrency).run(stop))
        try:
            yield
        finally:
            serving.stopping = True
            stop.set()
            if task is not None:
                await task
            await rt.aclose()

    app = FastAPI(
        title="leaver",
        summary="Closes the leaver gap: removes a leaver's remaining access in the IGA, exactly once.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = rt
    app.state.serving = serving
    install_problem_handlers(app)
    install_docs(app)
    app.add_middleware(LoadShedding, limit=rt.settings.max_inflight_requests)
    for router in (
        intake.router,
        intake_formats.router,
        status.router,
        report.router,
        ops.router,
        guard.router,
        health.router,
        console.router,
    ):
        app.include_router(router)
    for system, sim in (simulators or {}).items():
        app.mount(f"/sim/{system}", sim)
    return app
