"""`/metrics` on an API replica reports what the database holds (open cases, what waits for an
operator, the queue), the same as `/status/summary`, whichever process did the work."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.domain import LeaverEvent
from app.main import create_app
from app.runtime import build_runtime
from app.settings import TargetSettings
from app.store.intake import store_event
from tests.conftest import OPS_TOKEN, make_settings

TARGETS = [TargetSettings(name="iga", system="netiq-ig", base_url="http://127.0.0.1:9/unused")]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_the_open_cases_the_summary_shows(database_url: str, tmp_path: Path) -> None:
    rt = build_runtime(make_settings(database_url, tmp_path, TARGETS))
    other = build_runtime(make_settings(database_url, tmp_path, TARGETS))  # another replica stored them
    try:
        for n in range(3):
            event = {"id": f"e{n}", "type": "user.terminated", "occurred_at": "2026-11-20T17:00:00Z"}
            await store_event(
                other.sessions,
                LeaverEvent.model_validate({**event, "user": {"username": f"u{n}"}}),
                targets=["iga"],
                webhook_id=None,
            )
        app = create_app(rt, workers=0)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            metrics = samples((await api.get("/metrics")).text)
            summary = (await api.get("/status/summary", headers={"authorization": f"Bearer {OPS_TOKEN}"})).json()
    finally:
        await rt.aclose()
        await other.aclose()
    assert summary["cases"] == {"received": 3}
    assert metrics[("leaver_open_cases", (("state", "received"),))] == 3
    assert metrics[("leaver_queue_due_jobs", ())] == 3
    assert metrics[("leaver_needs_attention", (("kind", "held"),))] == 0
