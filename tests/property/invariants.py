"""The promises the pipeline keeps, checked once a scenario has settled: each violation is one
line naming the promise ("lost", "twice", "silent", "kept", "duplicates", "rehire", "legal hold").

What the IGA did is read from the simulator's probes (`submissions()`, `withdrawn()`,
`user_id()`), so the checks hold for every registered system alike.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from app.domain import ITEM_TERMINAL
from app.simulator.base import Submission
from app.store.models import Audit, Case, Event, IgaRequest, PlanItem
from tests.property.harness import TARGET, Harness


def _case_of(s: Submission) -> int | None:
    """The case ID in a submission's correlation key `leaver-<case>-<batch>`."""
    if s.key is None or not s.key.startswith("leaver-"):
        return None
    return int(s.key.split("-")[1])


async def violations(h: Harness) -> list[str]:
    async with h.rt.sessions() as session:
        events = {e.id: e for e in await session.scalars(select(Event))}
        cases = {c.id: c for c in await session.scalars(select(Case))}
        items = {i.id: i for i in await session.scalars(select(PlanItem))}
        requests = {r.key: r for r in await session.scalars(select(IgaRequest))}
        dones = list(
            await session.scalars(select(Audit).where(Audit.entity == "case", Audit.after == "done").order_by(Audit.id))
        )
    accepted = h.submissions()
    withdrawn = h.withdrawn()
    out: list[str] = []
    by_external = Counter(e.external_id for e in events.values())

    # Duplicates stored once.
    if sorted(by_external) != sorted(f"prop-{k}" for k in h.delivered) or set(by_external.values()) - {1}:
        out.append(f"duplicates: event rows {dict(by_external)} for deliveries of {sorted(h.delivered)}")
    if set(events) != set(h.delivered.values()):
        out.append(f"duplicates: stored {sorted(events)} but intake answered {sorted(h.delivered.values())}")

    # Nothing lost.
    cases_of = {eid: [c for c in cases.values() if c.event_id == eid] for eid in events}
    for eid, its in cases_of.items():
        if [c.target for c in its] != [TARGET]:
            out.append(f"lost: event {events[eid].external_id} has cases {[(c.id, c.target) for c in its]}")
    for c in cases.values():
        if c.state not in ("done", "cancelled"):
            out.append(f"lost: case {c.id} ({events[c.event_id].external_id}) ended {c.state}: {c.error}")
    for i in items.values():
        if i.state not in ITEM_TERMINAL:
            out.append(f"lost: item {i.id} {i.name!r} of case {i.case_id} ended {i.state} ({i.note})")

    # Nothing twice: per (user, item), the submissions the IGA acted on (no fault, or a fault
    # after it acted), minus requests withdrawn since.
    acted = Counter((s.user, s.item) for s in accepted)
    for pair, n in acted.items():
        if n - withdrawn[pair] > 1:
            sends = [(s.key, s.plan_item_id) for s in accepted if (s.user, s.item) == pair]
            out.append(f"twice: {pair} accepted {n}x ({withdrawn[pair]} withdrawn): {sends}")

    # Nothing silent: what the IGA accepted is on its plan item, with the request ID.
    for s in accepted:
        case_id = _case_of(s)
        item = items.get(s.plan_item_id) if s.plan_item_id is not None else None
        if item is None:
            item = next((i for i in items.values() if i.case_id == case_id and i.item_id == s.item), None)
        row = requests.get(s.key) if s.key is not None else None
        if item is None or row is None or item.case_id != case_id:
            out.append(f"silent: IGA accepted {s.item} under {s.key}, no such plan item / request row")
            continue
        if item.action != "remove":
            out.append(f"kept: IGA accepted {item.name!r} under {s.key}; policy rule {item.rule} says {item.action}")
        if item.request_row_id != row.id or not item.iga_request_id:
            out.append(
                f"silent: IGA accepted {item.name!r} under {s.key}; plan item {item.id} is {item.state} "
                f"with request row {item.request_row_id} and IGA request {item.iga_request_id!r}"
            )
        elif item.state == "cancelled" and withdrawn[(s.user, s.item)] == 0 and item.iga_status != "cancelled":
            out.append(f"silent: IGA accepted {item.name!r} under {s.key} but plan item {item.id} says cancelled")

    # Rehire safety.
    ev_of_case = {c.id: events[c.event_id] for c in cases.values()}
    for r_case in (c for c in cases.values() if ev_of_case[c.id].type == "user.enabled"):
        rehire = ev_of_case[r_case.id]
        planned = next((a.at for a in dones if a.case_id == r_case.id), None)
        r_k = int(rehire.external_id.split("-")[1])
        for s in accepted:
            case_id = _case_of(s)
            older = ev_of_case.get(case_id) if case_id is not None else None
            if older is None or older.user_username != rehire.user_username or older.type == "user.enabled":
                continue
            if older.occurred_at >= rehire.occurred_at:
                continue
            o_k = int(older.external_id.split("-")[1])
            if planned is not None and s.at > planned.timestamp():
                out.append(
                    f"rehire: {s.item} of older {older.type} {older.external_id} submitted "
                    f"{s.at - planned.timestamp():.3f}s after rehire {rehire.external_id} was planned"
                )
            elif h.delivery_order.index(r_k) < h.delivery_order.index(o_k):
                out.append(
                    f"rehire: {older.type} {older.external_id} is older than rehire {rehire.external_id}, "
                    f"arrived after it, and still submitted {s.item}"
                )

    # Legal hold.
    lhold = h.user_id("lhold")
    for s in accepted:
        if s.user == lhold:
            out.append(f"legal hold: {s.item} submitted for lhold under {s.key}")

    if h.unexpected:
        out.append(f"unexpected worker errors: {h.unexpected}")
    return out
