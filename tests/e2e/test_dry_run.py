"""Dry run, visible: an event's own flag and a target's setting plan and record everything without
submitting, and the case says so in the JSON and the CLI; other cases on the same target are sent
as usual. (The global setting: `test_dry_run_plans_without_submitting` in test_pipeline.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from app.main import create_app
from app.runtime import build_runtime
from tests.conftest import OPS_TOKEN, make_settings
from tests.e2e.conftest import Stack
from tests.servers import serve_in_thread
from tests.support import FIRST_SYSTEM, event_body, serve_simulator, signed


def cli_status(url: str, event_id: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")}
    env |= {"LEAVER_DATA_DIR": str(tmp_path), "LEAVER_OPS_TOKEN": OPS_TOKEN}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "status", event_id, "--url", url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_an_events_own_dry_run_flag_submits_nothing_and_is_labelled(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = make_stack()
    dry = stack.send(event_body("jdoe", dry_run=True)).json()["event_id"]
    (case,) = stack.wait_case(dry)["cases"]
    assert (case["state"], case["dry_run"]) == ("done", True)
    assert case["items"] and all(i["rule"] for i in case["items"])
    assert stack.submitted_item_ids() == []
    assert "dry run: nothing submitted" in cli_status(stack.url, dry, tmp_path)

    real = stack.send(event_body("asmith")).json()["event_id"]
    assert stack.wait_case(real)["cases"][0]["dry_run"] is False
    assert stack.submitted_item_ids()


def test_a_dry_run_target_plans_without_submitting(database_url: str, tmp_path: Path) -> None:
    with serve_simulator(FIRST_SYSTEM) as sim, httpx.Client(timeout=30) as http:
        target = sim.target(attempts=3, read_timeout=5.0).model_copy(update={"dry_run": True})
        settings = make_settings(database_url, tmp_path, [target])
        with serve_in_thread(create_app(build_runtime(settings))) as url:
            stack = Stack(FIRST_SYSTEM, url, sim, http)
            raw, headers = signed(event_body("jdoe"))
            event_id = http.post(f"{url}/webhooks/events", content=raw, headers=headers).json()["event_id"]
            (case,) = stack.wait_case(event_id)["cases"]
        assert sim.submitted_items() == []
    assert (case["state"], case["dry_run"]) == ("done", True)
