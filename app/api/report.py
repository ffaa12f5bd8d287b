"""`GET /status/report`: the evidence report for auditors, streamed as CSV, JSON or one
self-contained HTML file (see docs/report.md)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.api.auth import reader
from app.api.deps import RuntimeDep
from app.problems import Problem, problem_responses
from app.runtime import Runtime
from app.settings import Settings
from app.store import report
from app.store.models import utcnow

router = APIRouter(
    prefix="/status", tags=["status"], dependencies=[Depends(reader)], responses=problem_responses(401, 422, 503)
)

MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json", "html": "text/html; charset=utf-8"}
#: Rows written per chunk sent.
CHUNK = 200
#: Cells a spreadsheet would read as a formula (OWASP CSV injection) get a leading quote.
FORMULA = ("=", "+", "-", "@", "\t", "\r")

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(("html",)),
    enable_async=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def parse_moment(value: str, name: str, *, end: bool = False) -> datetime:
    """A day (`2026-12-05`: its start, or for `to` its end) or an ISO 8601 time (UTC if no zone)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(422, f"{name} is not a date (YYYY-MM-DD) or an ISO 8601 time: {value[:40]!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def sla_of(settings: Settings) -> report.Sla:
    targets = {t.name: t.sla_seconds for t in settings.targets if t.sla_seconds is not None}
    return report.Sla(settings.sla_seconds, targets, dict(settings.sla_rules))


def period_of(since: str, until: str, target: str | None) -> report.Period:
    start, end = parse_moment(since, "from"), parse_moment(until, "to", end=True)
    if start >= end:
        raise Problem(422, "from must be before to")
    return report.Period(start, end, target or None)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA):
        return "'" + value
    return value


async def csv_body(rt: Runtime, period: report.Period, sla: report.Sla) -> AsyncIterator[str]:
    """RFC 4180 (CRLF, quotes doubled), UTF-8, a header row, row by row."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(report.COLUMNS)
    async with rt.sessions() as session:
        n = 0
        async for row in report.rows(session, period, sla):
            out.writerow([_cell(row[c]) for c in report.COLUMNS])
            n += 1
            if n % CHUNK == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    yield buf.getvalue()


def _head(period: report.Period, sla: report.Sla) -> dict[str, Any]:
    return {
        "from": period.since.isoformat().replace("+00:00", "Z"),
        "to": period.until.isoformat().replace("+00:00", "Z"),
        "target": period.target,
        "generated_at": utcnow().isoformat().replace("+00:00", "Z"),
        "sla": {"seconds": sla.seconds, "targets": sla.targets, "rules": sla.rules},
    }


def _totals(totals: report.Totals) -> dict[str, Any]:
    return {k: v for k, v in vars(totals).items()}


async def json_body(rt: Runtime, period: report.Period, sla: report.Sla) -> AsyncIterator[str]:
    """One JSON document: the period, `rows` written one by one, then `totals`."""
    totals = report.Totals()
    async with rt.sessions() as session:
        totals.leavers = await report.leaver_count(session, period)
        yield json.dumps({"report": _head(period, sla)})[:-1] + ', "rows": ['
        sep = "\n"
        async for row in report.rows(session, period, sla, totals):
            yield sep + json.dumps(row, ensure_ascii=False)
            sep = ",\n"
    yield '\n], "totals": ' + json.dumps(_totals(totals), ensure_ascii=False) + "}\n"


def chart(days: list[dict[str, Any]], sla: float) -> dict[str, Any]:
    """Geometry of the per-day chart (inline SVG): worst as bars, median as dots, the SLA a line."""
    width, height, pad = 720, 220, 40
    top = max([sla, *(d["worst"] for d in days)]) or 1.0
    step = (width - pad * 2) / max(len(days), 1)
    bar = min(step * 0.7, 48.0)

    def y(v: float) -> float:
        return round(height - pad - (height - pad * 2) * v / top, 1)

    bars = [
        {
            "x": round(pad + i * step + (step - bar) / 2, 1),
            "w": round(bar, 1),
            "y": y(d["worst"]),
            "h": round(height - pad - y(d["worst"]), 1),
            "cx": round(pad + i * step + step / 2, 1),
            "cy": y(d["median"]),
            **d,
        }
        for i, d in enumerate(days)
    ]
    return {"width": width, "height": height, "pad": pad, "bars": bars, "sla_y": y(sla), "top": top}


async def html_body(rt: Runtime, period: report.Period, sla: report.Sla) -> AsyncIterator[str]:
    """First the per-day aggregate, then two row passes streamed through the template (the
    breaches, then every row), each finished before the next begins."""
    totals = report.Totals()
    async with rt.sessions() as session:
        totals.leavers = await report.leaver_count(session, period)
        days = await report.ttr_by_day(session, period)
        template = _env.get_template("report.html")
        context = {
            "head": _head(period, sla),
            "chart": chart(days, sla.seconds),
            "days": days,
            "breaches": report.rows(session, period, sla, breaches_only=True),
            "rows": report.rows(session, period, sla, totals),
            "totals": totals,
        }
        async for chunk in template.generate_async(context):
            yield chunk


@router.get(
    "/report",
    summary="Evidence report: every leaver of a period, each item's fate, time-to-revoke and SLA breaches",
    response_class=StreamingResponse,
    responses={200: {"content": {m: {} for m in MEDIA.values()}}},
)
async def evidence_report(
    rt: RuntimeDep,
    since: Annotated[str, Query(alias="from", max_length=40, description="YYYY-MM-DD or ISO 8601, inclusive")],
    until: Annotated[str, Query(alias="to", max_length=40, description="YYYY-MM-DD (inclusive day) or ISO 8601")],
    target: Annotated[str | None, Query(max_length=100)] = None,
    format: Annotated[Literal["csv", "json", "html"], Query()] = "json",
) -> StreamingResponse:
    period = period_of(since, until, target)
    sla = sla_of(rt.settings)
    body = {"csv": csv_body, "json": json_body, "html": html_body}[format](rt, period, sla)
    name = f"leaver-report-{period.since.date()}-{(period.until - timedelta(microseconds=1)).date()}.{format}"
    return StreamingResponse(
        body, media_type=MEDIA[format], headers={"content-disposition": f'attachment; filename="{name}"'}
    )
