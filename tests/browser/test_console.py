"""The operator console in a real browser (Playwright driving Debian's chromium) against the
embedded demo as the README runs it: find a leaver's case and each item's reason and request ID,
approve a held item with a button, retry a dead letter; a reader cannot act, and a form posted from
another site changes nothing. `LEAVER_SCREENSHOTS=DIR` keeps a screenshot of each page."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.intake.signature import sign
from app.simulator.demo_users import demo_people

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Another demo person with privileged access than the one demo-disable.json names.
SECOND_PRIVILEGED = [
    p.username for p in demo_people() if p.username.startswith("user") and any(a.privileged for a in p.access)
][1]
pytestmark = pytest.mark.slow


@dataclass
class Demo:
    url: str
    data: Path

    def secret(self, name: str) -> str:
        return (self.data / name).read_text().strip()

    def send(self, body: dict[str, object]) -> str:
        raw = json.dumps(body).encode()
        msg_id, stamp = f"msg_{time.time_ns()}", int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(self.secret("webhook-secret"), msg_id, stamp, raw),
        }
        resp = httpx.post(f"{self.url}/webhooks/events", content=raw, headers=headers, timeout=10)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["event_id"])

    def leaver(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")} | {"LEAVER_DATA_DIR": str(self.data)}
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def event(self, event_id: str) -> dict[str, object]:
        headers = {"authorization": f"Bearer {self.secret('ops-token')}"}
        data: dict[str, object] = httpx.get(f"{self.url}/status/events/{event_id}", headers=headers, timeout=10).json()
        return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from run_demo(tmp_path_factory.mktemp("console-demo"))


def run_demo(data: Path, **env_extra: str) -> Iterator[Demo]:
    """`leaver serve --demo` as the README runs it, on a free port, until the generator closes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")} | {"LEAVER_DATA_DIR": str(data)}
    env |= env_extra
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_for(up, "the demo to start")
        assert proc.poll() is None, (data / "serve.log").read_text()
        yield Demo(url, data)
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("the console tests need Debian's chromium: apt-get install chromium")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("LEAVER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(page: Page, demo: Demo, token: str) -> None:
    page.goto(f"{demo.url}/console/login")
    page.get_by_label("Ops token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_contain_text("signed in as")


def test_an_operator_finds_a_leaver_approves_a_held_item_and_retries_a_dead_letter(
    demo: Demo, browser: Browser
) -> None:
    terminated = demo.send(json.loads((demo.data / "demo-event.json").read_text()))
    disabled = demo.send(json.loads((demo.data / "demo-disable.json").read_text()))
    ambiguous = demo.send(
        {
            "id": "twins-1",
            "type": "user.terminated",
            "occurred_at": "2026-11-20T17:00:00Z",
            "user": {"email": "twins@example.com"},
        }
    )
    wait_for(lambda: all(c["state"] == "done" for c in demo.event(terminated)["cases"]), "jdoe's cases done")  # type: ignore[index,union-attr]
    wait_for(lambda: all(c["state"] == "failed" for c in demo.event(ambiguous)["cases"]), "the dead letters")  # type: ignore[index,union-attr]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo.url)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    shot(page, "overview")

    # Find jdoe: every item with its rule and reason, and the IGA request ID of each removal.
    page.get_by_label("User").fill("jdoe")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="jdoe", exact=True)).to_be_visible()
    expect(page.get_by_text("birthright-stays").first).to_be_visible()
    expect(page.locator("td.state-removed").first).to_be_visible()
    expect(page.locator("td code").first).to_be_visible()  # a request ID
    shot(page, "user")

    # Approve the held privileged access of the disabled person, signed in as the demo operator.
    sign_in(page, demo, demo.secret("ops-token"))
    page.goto(f"{demo.url}/console/attention")
    shot(page, "attention")
    page.get_by_role("button", name="Approve removal").first.click()
    expect(page.get_by_role("status")).to_contain_text("approve item")
    wait_for(
        lambda: any(
            i["rule"] == "privileged-needs-approval" and i["state"] == "removed"
            for c in demo.event(disabled)["cases"]  # type: ignore[union-attr]
            for i in c["items"]
        ),
        "the approved item to be removed",
    )
    page.goto(f"{demo.url}/console/events/{disabled}")
    expect(page.locator("ol.timeline")).to_contain_text("ops-token")  # the audit names the operator
    shot(page, "event")

    # Retry a dead letter from the queue.
    page.goto(f"{demo.url}/console/attention")
    page.get_by_role("button", name="Retry").first.click()
    expect(page.get_by_role("status")).to_contain_text("retry case")
    page.goto(f"{demo.url}/console/cases?state=failed")
    shot(page, "cases")
    page.close()


def test_a_reader_sees_but_cannot_act(demo: Demo, browser: Browser) -> None:
    reader = demo.leaver("tokens", "create", "viewer", "--role", "reader")
    page = browser.new_page()
    sign_in(page, demo, reader)
    page.goto(f"{demo.url}/console/attention")
    expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    answer = page.request.post(
        f"{demo.url}/console/actions/cases/1/cancel", form={"reason": "x"}, headers={"origin": demo.url}
    )
    assert answer.status == 403
    page.close()


class _Attacker(BaseHTTPRequestHandler):
    """Another site: its page posts a form to leaver as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}"><input name="reason" value="evil"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_a_form_posted_from_another_site_changes_nothing(demo: Demo, browser: Browser) -> None:
    event_id = demo.send(
        {
            "id": "csrf-1",
            "type": "user.disabled",
            "occurred_at": "2026-11-20T18:00:00Z",
            "user": {"username": SECOND_PRIVILEGED},
        }
    )
    wait_for(
        lambda: any(i["state"] == "held" for c in demo.event(event_id)["cases"] for i in c["items"]),  # type: ignore[union-attr]
        "a held item",
    )
    case_id = demo.event(event_id)["cases"][0]["case_id"]  # type: ignore[index]
    _Attacker.target = f"{demo.url}/console/actions/cases/{case_id}/cancel"
    evil = HTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        sign_in(page, demo, demo.secret("ops-token"))  # the operator is signed in to leaver...
        with page.expect_navigation():
            page.goto(f"http://localhost:{evil.server_port}/")  # ...and visits another site
        page.wait_for_load_state()
        assert page.url.startswith(demo.url)  # the form went to leaver
        assert "done by" not in page.content()
        page.close()
    finally:
        evil.shutdown()
    after = demo.event(event_id)
    assert not [t for t in after["timeline"] if "evil" in t["why"]]  # type: ignore[union-attr,index]
    assert after["cases"][0]["state"] != "cancelled"  # type: ignore[index]
    assert any(i["state"] == "held" for i in after["cases"][0]["items"])  # type: ignore[index]
