"""What the simulated IDHub holds and how it changes: carts, the UserRequests a submitted cart
makes (one per cart item and beneficiary), their workflow over the simulator's clock, approval
tasks, and the access that changes when a request completes.

Everything here is plain data and rules; the HTTP routes (`app`) translate to and from it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.simulator.idhub.catalog import BY_ROLE, Entity, Grant, Person, seed
from app.simulator.idhub.config import Outcome
from app.simulator.idhub.wire import IdHubError, iso_offset

KINDS = ("Role", "TargetSystem", "Entitlement")
TASK_ACTIONS = ("Claim", "Approve", "Reject", "Escalate", "Re-Assign")


@dataclass
class Timing:
    """The parts of the configuration a request is created under."""

    approval_delay: float
    fulfil_delay: float
    verify_delay: float
    outcome: Outcome
    revoke_type: str
    rejected_as: str
    resolutions: Mapping[str, str]
    still_held: bool


@dataclass
class Cart:
    oid: str
    etag: str
    owner: str
    name: str
    created: float
    submitted: bool = False


@dataclass
class Request:
    oid: str
    etag: str
    request_id: str
    correlation_id: str
    created: float
    visible_at: float
    person_id: str
    beneficiary: dict[str, Any]
    requester: dict[str, Any]
    entity: Entity
    type: str
    justification: str
    cart_name: str
    form: Any
    timing: Timing
    approved_at: float
    status: str = "Request Submitted"
    resolution: str = "Initiated"
    history: list[dict[str, Any]] = field(default_factory=list)
    done_at: float | None = None
    applied: bool = False
    rejected_by_task: bool = False

    @property
    def fulfilled_at(self) -> float:
        return self.approved_at + self.timing.fulfil_delay

    @property
    def outcome(self) -> Outcome:
        return "rejected" if self.rejected_by_task else self.timing.outcome


@dataclass
class Task:
    oid: str
    request: Request
    created: float
    assignee: str = "spencer"
    status: str = "Assigned"
    outcome: str | None = None
    comments: list[dict[str, Any]] = field(default_factory=list)


class Store:
    """The tenant's data. Not thread-safe: the simulator holds its lock around every call."""

    def __init__(self, now: float, rng: random.Random) -> None:
        self.rng = rng
        self.catalog, self.people = seed(now - 86400)
        self.carts: list[Cart] = []
        self.requests: list[Request] = []
        self.tasks: dict[str, Task] = {}
        self._seq = 0

    # ---- ids

    def object_id(self, at: float) -> str:
        """A fresh ObjectId: 4 bytes of time, then 8 bytes of counter and randomness."""
        self._seq += 1
        return f"{int(at):08x}{self.rng.getrandbits(40):010x}{self._seq:06x}"

    def hex_id(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    # ---- lookups

    def person_by_login(self, login: Any) -> Person | None:
        wanted = str(login).casefold()
        return next((p for p in self.people.values() if p.login.casefold() == wanted), None)

    def entity(self, entity_id: Any, kind: Any) -> Entity:
        entity = self.catalog.entities.get(str(entity_id))
        if entity is None:
            raise IdHubError(400, f"entityId {entity_id} not found in the catalog")
        if kind != entity.kind:
            raise IdHubError(400, f"entityType {kind!r} does not match {entity.kind} {entity_id}")
        return entity

    # ---- carts

    def create_cart(self, body: Mapping[str, Any], now: float) -> Cart:
        self._cart_items(body)  # a cart that could never be submitted is refused at once
        cart = Cart(self.object_id(now), self.object_id(now), str(body["owner"]), str(body["name"]), now)
        self.carts.append(cart)
        return cart

    def open_cart(self, owner: Any, name: Any, cart_id: str | None = None) -> Cart:
        """The cart a submit names: by id where the route carries one, else the newest open cart
        of this owner and name (the documented submit body has no cart id)."""
        for cart in reversed(self.carts):
            named = cart.oid == cart_id if cart_id else (cart.owner, cart.name) == (owner, name)
            if named and not cart.submitted:
                return cart
        raise IdHubError(404, f"no open cart {cart_id or repr(name)} of {owner}")

    def _cart_items(self, body: Mapping[str, Any]) -> list[tuple[Entity, dict[str, Any]]]:
        """Every (entity, beneficiary) of a cart body, checked; a 400 names the first problem."""
        requester = body.get("requester")
        if not isinstance(requester, Mapping) or not requester.get("login"):
            raise IdHubError(400, "requester must be a non-empty object with a login")
        for key in ("owner", "name"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise IdHubError(400, f"{key} is required")
        items = body.get("cartItems")
        if not isinstance(items, list) or not items:
            raise IdHubError(400, "cartItems must be a non-empty array")
        out = []
        for item in items:
            if not isinstance(item, Mapping):
                raise IdHubError(400, "cartItems entries must be objects")
            entity = self.entity(item.get("entityId"), item.get("entityType"))
            beneficiaries = item.get("beneficiaries")
            listed = [beneficiaries] if isinstance(beneficiaries, Mapping) else beneficiaries
            if not isinstance(listed, list) or not listed:
                raise IdHubError(400, f"cart item {entity.id}: beneficiaries are required")
            out += [(entity, dict(b)) for b in listed if isinstance(b, Mapping)]
        return out

    def submit(self, body: Mapping[str, Any], cart: Cart, timing: Timing, now: float, lag: float) -> list[Request]:
        """Turn a cart into requests: all of them or, on any problem, none (400)."""
        allowed = ("create", "modify", timing.revoke_type)
        pairs = self._cart_items(body)
        for entity, who in pairs:
            person = self.person_by_login(who.get("login"))
            if person is None:
                raise IdHubError(400, f"beneficiary {who.get('login')!r} is not an IDHub user")
            kind = who.get("type")
            if kind not in allowed:
                raise IdHubError(400, f"beneficiary type {kind!r} is not one of {', '.join(allowed)}")
            if kind == timing.revoke_type and entity.id not in person.grants:
                raise IdHubError(400, f"{person.login} does not hold {entity.kind} {entity.name}")
        justification = body.get("justification")
        if not isinstance(justification, str):
            raise IdHubError(400, "justification is required")
        cart.submitted = True
        made = []
        for entity, who in pairs:
            person = self.person_by_login(who.get("login"))
            assert person is not None
            req = Request(
                oid=self.object_id(now),
                etag=self.object_id(now),
                request_id=self.hex_id(5),
                correlation_id=self.hex_id(32),
                created=now,
                visible_at=now + lag,
                person_id=person.id,
                beneficiary={
                    "displayName": person.display_name,
                    "employeeNumber": person.employee_number,
                    "login": person.login,
                },
                requester={k: body["requester"].get(k) for k in ("displayName", "employeeNumber", "login")},
                entity=entity,
                type=str(who.get("type")),
                justification=justification,
                cart_name=cart.name,
                form=who.get("form"),
                timing=timing,
                approved_at=now + timing.approval_delay,
            )
            self._record(req, now)
            if timing.approval_delay > 0:
                req.status = "Waiting for Approval"
                self._record(req, now)
                task = Task(self.object_id(now), req, now)
                self.tasks[task.oid] = task
            self.requests.append(req)
            made.append(req)
        return made

    # ---- the workflow over time

    def tick(self, now: float) -> None:
        """Move every request to where the clock says it is, and apply what completed."""
        for req in self.requests:
            self._advance(req, now)

    def _advance(self, req: Request, now: float) -> None:
        if req.done_at is None and now >= req.approved_at:
            self._close_task(req, "MANAGERREJECT" if req.outcome == "rejected" else "MANAGERAPPROVE")
            if req.outcome == "rejected":
                self._finish(req, req.approved_at)
            else:
                if req.status != self._working(req):
                    req.status = self._working(req)
                    self._record(req, req.approved_at)
                if now >= req.fulfilled_at:
                    self._finish(req, req.fulfilled_at)
        held = req.outcome == "completed" and not req.timing.still_held
        if req.done_at is not None and held and not req.applied and now >= req.done_at + req.timing.verify_delay:
            self._apply(req)

    def _working(self, req: Request) -> str:
        """After approval: a person fulfils items of a disconnected application, a connector the rest."""
        app = self.catalog.entities.get(req.entity.app_id or "") if req.entity.kind == "Entitlement" else req.entity
        return "Waiting for Fulfiller" if app is not None and app.manual else "Request Approved"

    def _finish(self, req: Request, at: float) -> None:
        outcome, words = req.outcome, req.timing.resolutions
        req.resolution = words.get(outcome, outcome)
        req.status = {
            "rejected": "Request Rejected" if req.timing.rejected_as == "status" else "Request Completed",
            "failed": "Request Failed",
        }.get(outcome, "Request Completed")
        req.done_at = at
        self._record(req, at)

    def _record(self, req: Request, at: float) -> None:
        req.history.append(
            {
                "diff": {"status": req.status, "resolution": req.resolution},
                "snapshot": {"_id": req.oid, "status": req.status, "resolution": req.resolution},
                "timeStamp": iso_offset(at),
            }
        )

    def _apply(self, req: Request) -> None:
        """A completed request changes the beneficiary's access."""
        req.applied = True
        person = self.people.get(req.person_id)
        if person is None:
            return
        entity = req.entity
        if req.type == "create":
            person.grants.setdefault(entity.id, Grant(entity.id, "Request", (), req.done_at or 0.0))
        if req.type != req.timing.revoke_type:
            return
        person.grants.pop(entity.id, None)
        for grant in list(person.grants.values()):
            granted = self.catalog.entities.get(grant.entity_id)
            if entity.kind == "TargetSystem" and granted is not None and granted.app_id == entity.id:
                del person.grants[grant.entity_id]  # the account goes, and everything on it
            elif entity.kind == "Role" and grant.mechanism == BY_ROLE and entity.name in grant.roles:
                grant.roles = tuple(r for r in grant.roles if r != entity.name)
                if not grant.roles:
                    del person.grants[grant.entity_id]

    # ---- tasks

    def _close_task(self, req: Request, outcome: str) -> None:
        for task in self.tasks.values():
            if task.request is req and task.status == "Assigned":
                task.status, task.outcome = "Completed", outcome

    def act(self, task_id: str, action: str, body: Mapping[str, Any], now: float) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise IdHubError(404, f"task {task_id} not found")
        if action not in TASK_ACTIONS:
            raise IdHubError(400, f"action must be one of {', '.join(TASK_ACTIONS)}")
        if task.status != "Assigned":
            raise IdHubError(400, f"task {task_id} is {task.status}")
        login = str(body.get("userLogin") or "")
        if body.get("comment"):
            task.comments.append({"comment": body["comment"], "userLogin": login, "timestamp": iso_offset(now)})
        if action in ("Claim", "Re-Assign"):
            task.assignee = login or task.assignee
        elif action == "Escalate":
            task.assignee = "derrick"
        else:
            task.request.rejected_by_task = action == "Reject"
            task.request.approved_at = now
            self._advance(task.request, now)
        return task

    def find_tasks(self, wanted: Callable[[Task], bool]) -> list[Task]:
        return [t for t in self.tasks.values() if wanted(t)]
