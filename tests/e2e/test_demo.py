"""The embedded demo exactly as the README runs it: `leaver serve --demo` with no configuration,
then `leaver events send` and `leaver status`, all as real processes. Its targets are the systems
with both a simulator and an adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.simulator import simulator_spec
from tests.procs import running, wait_http
from tests.servers import free_port
from tests.support import SYSTEMS, SimControl

TERMINAL = {"removed", "kept", "cancelled", "rejected", "failed"}


def leaver(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_demo_from_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")}
    env["LEAVER_DATA_DIR"] = str(tmp_path / "leaver-data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(["serve", "--demo", "--port", str(port)], env, tmp_path / "serve.log"):
        wait_http(f"{url}/readyz")
        banner = (tmp_path / "serve.log").read_text()
        assert "leaver events send" in banner and "whsec_" in banner
        secret = (tmp_path / "leaver-data" / "webhook-secret").read_text().strip()
        assert secret in banner  # printed so it can be pasted into the IDM

        event_file = tmp_path / "leaver-data" / "demo-event.json"
        sent = leaver("events", "send", str(event_file), "--url", url, env=env)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202 ")
        event_id = json.loads(sent.stdout[4:])["event_id"]

        deadline = time.monotonic() + 60
        while True:
            status = leaver("status", event_id, "--url", url, "--json", env=env)
            assert status.returncode == 0, status.stderr
            data = json.loads(status.stdout)
            if data["cases"] and all(c["state"] == "done" for c in data["cases"]):
                break
            assert time.monotonic() < deadline, [c["state"] for c in data["cases"]]
            time.sleep(0.5)

        assert {c["target"] for c in data["cases"]} == set(SYSTEMS)  # every system with a simulator and an adapter
        for case in data["cases"]:
            assert len(case["items"]) >= 8
            assert all(i["state"] in TERMINAL and i["rule"] and i["reason"] for i in case["items"])
            assert all(
                i["iga_request_id"] for i in case["items"] if i["state"] == "removed" and i["granted_by"] == "direct"
            )

        again = leaver("events", "send", str(event_file), "--url", url, env=env)
        assert again.stdout.startswith("200 ") and event_id in again.stdout

        with httpx.Client(timeout=30) as http:
            for system in SYSTEMS:
                sent_ids = SimControl(system, f"{url}/sim/{system}", http).submitted_items()
                case = next(c for c in data["cases"] if c["target"] == system)
                assert len(sent_ids) == len(set(sent_ids)) == len([i for i in case["items"] if i["iga_request_id"]])

        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and event_id in page.text
        ops = httpx.post(f"{url}/ops/cases/1/retry")
        assert ops.status_code == 401  # ops actions need the token even in the demo
        metrics = httpx.get(f"{url}/metrics").text
        assert 'leaver_events_received_total{outcome="accepted"} 1.0' in metrics

    # Nothing secret reached the log: not the ops token, not the IGA credentials, no bearer token.
    log = (tmp_path / "serve.log").read_text()
    ops_token = (tmp_path / "leaver-data" / "ops-token").read_text().strip()
    credentials = [
        secret.get_secret_value()
        for target in (simulator_spec(system).demo_target(url, system) for system in SYSTEMS)
        for secret in (target.client_secret, target.password)
        if secret is not None
    ]
    assert credentials
    for secret in (ops_token, *credentials, "Bearer ", "eyJ"):
        assert secret not in log
