"""The evidence report after real leavers went through the real pipeline to a simulator: every
leaver is in it, and its times match what the IGA simulator saw."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.store import report
from tests.conftest import OPS_TOKEN
from tests.e2e.conftest import Stack
from tests.support import event_body

AUTH = {"authorization": f"Bearer {OPS_TOKEN}"}


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_report_lists_every_leaver_with_the_simulators_times(
    make_stack: Callable[..., Stack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack()
    bodies = [
        event_body("jdoe", occurred_at="2026-11-20T17:00:00Z"),
        event_body("asmith", occurred_at="2026-11-20T18:30:00Z"),
        event_body("user001", occurred_at="2026-11-20T19:00:00Z", dry_run=True),
    ]
    ids = [stack.send(b).json()["event_id"] for b in bodies]
    statuses = [stack.wait_case(i) for i in ids]
    today = datetime.now(UTC).date()
    period = {"from": str(today - timedelta(days=1)), "to": str(today)}

    doc = stack.http.get(f"{stack.url}/status/report", params=period, headers=AUTH)
    assert doc.status_code == 200, doc.text
    rows = doc.json()["rows"]
    assert {r["event_id"] for r in rows} == set(ids)
    for body, status in zip(bodies, statuses, strict=True):
        mine = [r for r in rows if r["event_id"] == status["event_id"]]
        assert {r["occurred_at"] for r in mine} == {body["occurred_at"]}
        assert {_t(r["received_at"]) for r in mine} == {_t(status["received_at"])}
        items = status["cases"][0]["items"]
        assert sorted(r["item_id"] for r in mine if r["item_id"]) == sorted(i["item_id"] for i in items)
        assert {r["dry_run"] for r in mine} == {body.get("dry_run", False)}

    # Every removal the simulator accepted is a row with its request ID, submitted when the IGA
    # got it, and its time-to-revoke counted from receipt; the dry run sent nothing.
    submissions = stack.sim.submissions()
    sent = [r for r in rows if r["iga_request_id"]]
    assert submissions and len(sent) == len(submissions)
    assert not [r for r in sent if r["dry_run"]]
    assert [r for r in rows if r["dry_run"] and r["item_id"] and r["action"] == "remove"]
    arrivals = {s["item"]: s["at"] for s in submissions}
    for r in sent:
        at = datetime.fromtimestamp(arrivals[r["item_id"]], UTC)
        assert _t(r["received_at"]) <= at
        assert abs((_t(r["submitted_at"]) - at).total_seconds()) < 5, (r, at)
        if r["item_state"] == "removed":
            assert r["time_to_revoke_seconds"] is not None and r["time_to_revoke_seconds"] >= 0
            assert r["breach"] is False  # a default SLA of a day
    kept = [r for r in rows if r["item_state"] == "kept"]
    assert kept and all(r["rule"] and r["reason"] and r["action"] == "keep" for r in kept)
    totals = doc.json()["totals"]
    assert totals["leavers"] == 3 and totals["dry_run_cases"] == 1 and totals["breaches"] == 0

    # The same report as CSV opens as a table with a header row; as HTML it is self-contained.
    as_csv = stack.http.get(f"{stack.url}/status/report", params=period | {"format": "csv"}, headers=AUTH)
    table = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8"))))
    assert tuple(table[0]) == report.COLUMNS and len(table) == len(rows) + 1
    as_html = stack.http.get(f"{stack.url}/status/report", params=period | {"format": "html"}, headers=AUTH)
    assert as_html.headers["content-disposition"].startswith("attachment;")
    assert not re.search(r"(https?:)?//|src=|<link|<script|@import|url\(", as_html.text, re.IGNORECASE)
    assert as_html.text.count("DRY RUN") >= 2 and "jdoe" in as_html.text

    # Another target's report is empty; a bad period is a problem document.
    other = stack.http.get(f"{stack.url}/status/report", params=period | {"target": "elsewhere"}, headers=AUTH)
    assert other.json()["rows"] == []
    bad = stack.http.get(f"{stack.url}/status/report", params={"from": "2026-13-01", "to": "x"}, headers=AUTH)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"

    # `leaver report` writes the same CSV to a file, and says why when the API refuses.
    monkeypatch.setenv("LEAVER_OPS_TOKEN", OPS_TOKEN)
    monkeypatch.setenv("LEAVER_DATA_DIR", str(tmp_path))
    out = tmp_path / "report.csv"
    args = ["report", "--from", period["from"], "--to", period["to"], "--url", stack.url]
    done = CliRunner().invoke(cli, [*args, "--output", str(out)])
    assert done.exit_code == 0, done.output
    assert list(csv.reader(io.StringIO(out.read_text("utf-8")))) == table
    refused = CliRunner().invoke(cli, ["report", "--from", "2026-12-02", "--to", "2026-12-01", "--url", stack.url])
    assert refused.exit_code == 1 and "from must be before to" in refused.output
