"""The operator console: server-rendered pages (readable without JavaScript) over the same data as
the JSON status routes, and buttons for the operator actions. Readers see; operators act. Signing in
trades an ops token for a `SameSite=Strict` session cookie, and every action checks the origin."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.api import status
from app.api.auth import SESSION_COOKIE, Acting, Reader, operator_for_secret
from app.api.deps import ReadSession, RuntimeDep
from app.domain import CaseState
from app.store import actions, guard, reads
from app.store.models import Audit, Event
from app.store.operators import close_session, open_session

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(FilePath(__file__).parent / "templates"))
SESSION_HOURS = 12.0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _user_key(event: Event) -> str:
    return event.user_username or event.user_email or event.user_employee_id or event.user_dn or "?"


def _counts(items: list[Any]) -> str:
    seen: dict[str, int] = {}
    for i in items:
        seen[i.state] = seen.get(i.state, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(seen.items())) or "-"


templates.env.filters.update(duration=_duration, when=_when, user_key=_user_key, counts=_counts)


def _page(request: Request, name: str, who: Any, **context: Any) -> HTMLResponse:
    context |= {"who": who, "msg": request.query_params.get("msg"), "error": request.query_params.get("error")}
    return templates.TemplateResponse(request, name, context)


def _chart(days: list[dict[str, Any]]) -> str:
    """Median (filled) and worst (outline) time-to-revoke per day as an inline SVG: no script."""
    worst = max((d["worst"] or 0 for d in days), default=0) or 1.0
    width, height, bar = 28 * len(days), 120, 20
    parts = [
        f'<svg role="img" viewBox="0 0 {width} {height + 30}" width="100%" style="max-width:{width * 2}px">',
        "<title>Time to revoke per day: median filled, worst outlined</title>",
    ]
    for n, d in enumerate(days):
        x = n * 28 + 4
        for key, style in (("worst", 'fill="none" stroke="#a50e0e"'), ("median", 'fill="#0b57d0"')):
            if d[key] is not None:
                h = max(2, round(height * d[key] / worst))
                parts.append(f'<rect x="{x}" y="{height - h}" width="{bar}" height="{h}" {style}/>')
        parts.append(f'<text x="{x}" y="{height + 14}" font-size="9">{d["day"][5:]}</text>')
    parts.append("</svg>")
    return "".join(parts)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, session: ReadSession, who: Reader) -> HTMLResponse:
    open_cases = await reads.open_cases_by_state(session)
    oldest = await reads.oldest_open_case(session)
    attention = await reads.attention_counts(session)
    ttr = await reads.ttr_by_day(session)
    recent = await reads.cases(session, reads.CaseFilter())
    age = _duration((datetime.now(UTC) - oldest.created_at).total_seconds()) if oldest else None
    return _page(
        request,
        "overview.html",
        who,
        open_cases=open_cases,
        open_total=sum(open_cases.values()),
        oldest=oldest,
        oldest_age=age,
        attention=attention,
        attention_total=sum(attention.values()),
        ttr=ttr,
        chart=_chart(ttr),
        cases=recent[:20],
        guard_held=[b for b in await guard.batches(session) if b["state"] == "held"],
    )


def _day(value: str | None) -> datetime | None:
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC) if value else None


@router.get("/console/cases", response_class=HTMLResponse)
async def case_list(
    request: Request,
    session: ReadSession,
    who: Reader,
    rt: RuntimeDep,
    state: Annotated[str | None, Query(max_length=20)] = None,
    target: Annotated[str | None, Query(max_length=100)] = None,
    type: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    until: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    end = _day(until)
    f = reads.CaseFilter(
        state or None, target or None, type or None, _day(since), end and end + timedelta(days=1), before
    )
    found = await reads.cases(session, f)
    next_before = found[-1].id if len(found) == reads.PAGE else None
    keep = {k: v for k, v in request.query_params.items() if k != "before" and v}
    return _page(
        request,
        "cases.html",
        who,
        cases=found,
        f=f,
        states=[s.value for s in CaseState],
        targets=rt.target_names(),
        types=["user.terminated", "user.disabled", "user.enabled"],
        next_before=next_before,
        next_url=f"/console/cases?{urlencode({**keep, 'before': next_before})}",
    )


def _with_ttr(case: dict[str, Any], received: datetime, items: list[Any]) -> dict[str, Any]:
    by_id = {i.id: i for i in items}
    for view in case["items"]:
        view["ttr"] = reads.item_ttr(by_id[view["id"]], received) if view["id"] in by_id else None
    return case


@router.get("/console/events/{event_id}", response_class=HTMLResponse)
async def event_page(event_id: str, request: Request, session: ReadSession, who: Reader) -> HTMLResponse:
    data = await status.event_status(event_id, session)
    events = await status.load_events(session, Event.id == event_id)
    items = [i for c in events[0].cases for i in c.items]
    cases = [_with_ttr(c, events[0].received_at, items) for c in data["cases"]]
    return _page(
        request,
        "event.html",
        who,
        event=data,
        cases=cases,
        timeline=data["timeline"],
        user_label=_user_key(events[0]),
    )


@router.get("/console/users", response_class=HTMLResponse)
async def user_search(key: Annotated[str, Query(min_length=1, max_length=1024)]) -> Response:
    return RedirectResponse(f"/console/users/{key}", status_code=303)


@router.get("/console/users/{key:path}", response_class=HTMLResponse)
async def user_page(key: str, request: Request, session: ReadSession, who: Reader) -> HTMLResponse:
    events = await status.load_events(session, status.user_condition(key))
    requests = await reads.requests_of(session, [c.id for e in events for c in e.cases])
    views = [
        {
            **status.event_view(e),
            "cases": [_with_ttr(status.case_view(c, requests), e.received_at, c.items) for c in e.cases],
        }
        for e in events
    ]
    return _page(request, "user.html", who, key=key, events=views)


@router.get("/console/attention", response_class=HTMLResponse)
async def attention(request: Request, session: ReadSession, who: Reader) -> HTMLResponse:
    items = await reads.attention_items(session)
    dead = await reads.dead_letters(session)
    batches = await guard.batches(session)
    return _page(request, "attention.html", who, items=items, dead=dead, guard_batches=batches)


@router.get("/console/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    return _page(request, "login.html", None)


@router.post("/console/login")
async def login(request: Request, rt: RuntimeDep, token: Annotated[str, Form(max_length=200)]) -> Response:
    found = await operator_for_secret(rt, token.strip())
    if found is None:
        return RedirectResponse("/console/login?" + urlencode({"error": "that token is not valid"}), status_code=303)
    who, token_id = found
    async with rt.sessions() as session, session.begin():
        raw = await open_session(session, who, token_id, SESSION_HOURS)
        session.add(Audit(actor=who.name, entity="session", entity_id=who.name, why="signed in to the console"))
    response = RedirectResponse("/?" + urlencode({"msg": f"signed in as {who.name} ({who.role})"}), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=int(SESSION_HOURS * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/console/logout")
async def logout(request: Request, rt: RuntimeDep) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        async with rt.sessions() as session, session.begin():
            await close_session(session, raw)
    response = RedirectResponse("/?" + urlencode({"msg": "signed out"}), status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


CASE_ACTIONS = {"retry": actions.retry_case, "cancel": actions.cancel_case, "reverify": actions.reverify_case}
ITEM_ACTIONS = {"approve": actions.approve_item, "keep": actions.keep_item}
GUARD_ACTIONS = {"confirm": actions.confirm_guard, "cancel": actions.cancel_guard}


@router.post("/console/actions/{kind}/{row_id}/{verb}")
async def act(
    kind: str,
    row_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    verb: str,
    request: Request,
    rt: RuntimeDep,
    who: Acting,
    reason: Annotated[str, Form(max_length=1000)] = "",
    outcome: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """A button: run the action as the signed-in operator, then back to the page it came from."""
    back = request.headers.get("referer") or "/"
    back = back.split("?", 1)[0]
    text = reason.strip() or "via the console"
    try:
        async with rt.sessions() as session, session.begin():
            if kind == "cases" and verb == "settle" and outcome == "removed":
                await actions.settle_case(session, row_id, who.name, text, "removed")
            elif kind == "cases" and verb == "settle" and outcome == "failed":
                await actions.settle_case(session, row_id, who.name, text, "failed")
            elif kind == "cases" and verb in CASE_ACTIONS:
                await CASE_ACTIONS[verb](session, row_id, who.name, text)
            elif kind == "items" and verb in ITEM_ACTIONS:
                await ITEM_ACTIONS[verb](session, row_id, who.name, text)
            elif kind == "guard" and verb in GUARD_ACTIONS:
                await GUARD_ACTIONS[verb](session, row_id, who.name, text)
            else:
                raise actions.Refused(404, f"no action {verb} on {kind}")
    except actions.Refused as exc:
        return RedirectResponse(f"{back}?{urlencode({'error': exc.detail})}", status_code=303)
    rt.wakeup.set()
    done = f"{verb} {kind.rstrip('s')} {row_id}: done by {who.name}"
    return RedirectResponse(f"{back}?{urlencode({'msg': done})}", status_code=303)
