"""A real `leaver serve` under a flood of stalled connections keeps answering `/healthz` and
cuts the stalled ones off; beyond its in-flight limit it answers 503 with Retry-After at once."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import OPS_TOKEN, WEBHOOK_SECRET
from tests.hardening.test_start import TARGET

pytestmark = pytest.mark.slow
STALLED = 1500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.05)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")} | {
        "LEAVER_DATABASE_URL": database_url,
        "LEAVER_DATA_DIR": str(tmp_path),
        "LEAVER_TARGETS": json.dumps([TARGET]),
        "LEAVER_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LEAVER_OPS_TOKEN": OPS_TOKEN,
        "LEAVER_REQUEST_HEAD_TIMEOUT_SECONDS": "1",
        "LEAVER_MAX_INFLIGHT_REQUESTS": "2",
        "LEAVER_WORKERS": "0",
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or proc.poll() is not None, "the API to come up")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


def open_idle(port: int, count: int) -> list[socket.socket]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 512)), hard))
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_stalled_connections_leave_healthz_answering_and_are_cut_off(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    sockets = open_idle(port, STALLED)
    try:
        started = time.monotonic()
        assert healthy(server)
        assert time.monotonic() - started < 2
        wait_for(lambda: all(closed_by_server(s) for s in sockets[:: STALLED // 50]), "stalled connections closed")
    finally:
        for s in sockets:
            s.close()
    assert healthy(server)


def test_beyond_the_in_flight_limit_the_api_answers_503_at_once(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        for _ in range(2):  # two requests in flight: their bodies never finish arriving
            s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            s.sendall(b"POST /webhooks/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            s.sendall(b"Content-Length: 1000\r\n\r\n{")
        headers = {"authorization": f"Bearer {OPS_TOKEN}"}
        wait_for(
            lambda: httpx.get(f"{server}/status/summary", headers=headers, timeout=5).status_code == 503,
            "the third request to be shed",
        )
        shed = httpx.get(f"{server}/status/summary", headers=headers, timeout=5)
        assert shed.headers["retry-after"] == "1" and shed.headers["content-type"] == "application/problem+json"
        assert healthy(server)  # probes always pass
    wait_for(lambda: httpx.get(f"{server}/status/summary", headers=headers, timeout=5).status_code == 200, "recovery")


def test_a_configured_server_shows_nothing_of_the_demo_and_says_what_it_runs(server: str, tmp_path: Path) -> None:
    assert httpx.get(f"{server}/status/summary", timeout=5).status_code == 401  # reads need the token
    assert httpx.get(f"{server}/", timeout=5).status_code == 401
    assert httpx.get(f"{server}/sim/netiq-ig/_log", timeout=5).status_code == 404  # no simulator mounted
    log = (tmp_path / "serve.log").read_text()
    assert "leaver.start" in log and "iga (netiq-ig)" in log and "demo_policy.yaml" in log
    assert WEBHOOK_SECRET not in log and OPS_TOKEN not in log


def test_the_api_description_works_without_internet(server: str) -> None:
    page = httpx.get(f"{server}/docs", timeout=5)
    assert page.status_code == 200
    scripts = [part.split('"')[1] for part in page.text.split("src=")[1:]]
    assert scripts and all(src.startswith("/docs-assets/") for src in scripts), scripts
    assert "cdn" not in page.text.lower()
    for src in scripts:
        asset = httpx.get(f"{server}{src}", timeout=5)
        assert asset.status_code == 200 and len(asset.content) > 100_000
