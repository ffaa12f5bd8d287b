"""`GET /`: one plain page for operators: the summary, recent events, dead letters."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.auth import reader
from app.api.deps import ReadSession
from app.api.status import summary
from app.store.models import Case, Event

router = APIRouter(tags=["web"], dependencies=[Depends(reader)])

STYLE = """body{font:14px system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}th{background:#f3f3f3}.failed{color:#b00}
.done{color:#070}code{font-size:12px}"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(session: ReadSession) -> HTMLResponse:
    stats = await summary(session)
    events = (
        await session.scalars(
            select(Event)
            .order_by(Event.received_at.desc())
            .limit(50)
            .options(selectinload(Event.cases).selectinload(Case.items))
        )
    ).all()
    rows = []
    for ev in events:
        user = ev.user_username or ev.user_email or ev.user_employee_id or ev.user_dn or "?"
        for case in ev.cases:
            state, items = case.state, case.items
            counts = ", ".join(
                f"{s}: {sum(1 for i in items if i.state == s)}" for s in sorted({i.state for i in items})
            )
            rows.append(
                f"<tr><td><a href='/status/events/{escape(ev.id)}'><code>{escape(ev.id)}</code></a></td>"
                f"<td>{escape(ev.type)}</td><td>{escape(user)}</td><td>{escape(case.target)}</td>"
                f"<td class='{escape(state)}'>{escape(state)}</td><td>{escape(counts)}</td>"
                f"<td>{escape(case.error or '')}</td></tr>"
            )
    ttr = stats["time_to_revoke_seconds"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>leaver</title><style>{STYLE}</style></head>
<body><h1>leaver</h1>
<p>Events: {stats["events"]} · Cases: {escape(str(stats["cases"]))} · Items: {escape(str(stats["items"]))}</p>
<p>Time to revoke (s): p50 {ttr["p50"]} · p90 {ttr["p90"]} · p99 {ttr["p99"]} · max {ttr["max"]}
 over {ttr["cases"]} cases</p>
<h2>Recent events</h2><table><tr><th>event</th><th>type</th><th>user</th><th>target</th><th>case</th>
<th>items</th><th>error</th></tr>{"".join(rows)}</table>
<p><a href="/status/dead-letters">dead letters</a> · <a href="/status/summary">summary</a> ·
<a href="/docs">API</a> · <a href="/metrics">metrics</a></p></body></html>"""
    return HTMLResponse(page)
