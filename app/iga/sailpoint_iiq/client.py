"""`SailPointIiqClient`: the IdentityIQ calls in the order the contract needs them. Reading is in
`reader`, the plan and the launch body in `plan`, the JSON shapes in `wire`.

Recovery (contract §7): SCIM keeps nothing leaver writes in a searchable form, so an interrupted
launch is found by its effect. The items of the batch IIQ no longer lists were removed (adopted
as completed); items still held are adopted only where a launch of ours still running for the
identity lists them in its approval set; the rest is "not found" and, after the grace period, sent
again: IIQ compiles a Remove of access already gone into nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import structlog
from pydantic import ValidationError

from app.domain import AccessItem, IgaStatus, IgaUser, RemovalRequest, RequestRef, RequestState, UserIdentifiers
from app.iga.base import IgaPermanentError, IgaUncertainError
from app.iga.http import Auth, BasicAuth, HttpPolicy, IgaHttp, OAuth2Token
from app.iga.sailpoint_iiq.options import SailPointIiqOptions
from app.iga.sailpoint_iiq.plan import build_plan, identity_name, launch_body, launch_inputs
from app.iga.sailpoint_iiq.reader import ACCEPT, SCIM_JSON, IiqReader
from app.iga.sailpoint_iiq.wire import (
    approval_items,
    approval_state,
    error_text,
    identity_request_id,
    quote,
    resources,
    task_state,
)
from app.settings import TargetSettings

SYSTEM = "sailpoint-iiq"
#: IIQ documents no rate limit; it is one Tomcat application (§8).
REQUESTS_PER_SECOND = 5.0
MAX_CONCURRENCY = 5
TOKEN_RENEW_EARLY = 60.0
#: tracking_id prefix of an item found gone after an interrupted launch (nothing to poll).
RELISTED = "relisted"
GONE = "no longer held when the interrupted launch was looked for (IIQ keeps no key to find it by)"
log = structlog.get_logger(__name__)


def _auth(target: TargetSettings, options: SailPointIiqOptions) -> Auth:
    """Basic, or OAuth2 client credentials (the client authenticates with Basic, §2)."""
    mode = options.auth
    if mode == "auto":
        mode = "oauth2" if target.client_id else "basic"
    if mode == "oauth2":
        if not target.client_id or not target.client_secret:
            raise ValueError(f"target {target.name!r}: sailpoint-iiq oauth2 needs client_id and client_secret")
        token_url = target.token_url
        if token_url is None:
            root, found, _ = target.base_url.rpartition("/scim/v2")
            if not found:
                raise ValueError(f"target {target.name!r}: set token_url (base_url does not end in /scim/v2)")
            token_url = f"{root}/oauth2/token"
        secret = target.client_secret.get_secret_value()
        return OAuth2Token(
            token_url,
            {"grant_type": "client_credentials"},
            early=TOKEN_RENEW_EARLY,
            basic_client=(target.client_id, secret),
        )
    if not target.username or not target.password:
        raise ValueError(f"target {target.name!r}: sailpoint-iiq basic auth needs username and password")
    return BasicAuth(target.username, target.password.get_secret_value())


class SailPointIiqClient:
    """`IgaClient` for SailPoint IdentityIQ 8.x over SCIM 2.0."""

    system = SYSTEM

    def __init__(self, target: TargetSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        try:
            self.options = SailPointIiqOptions.model_validate(target.options)
        except ValidationError as exc:
            raise ValueError(f"target {target.name!r}: invalid sailpoint-iiq options: {exc}") from None
        auth = _auth(target, self.options)
        h = target.http
        policy = HttpPolicy.of(h, requests_per_second=REQUESTS_PER_SECOND, max_concurrency=MAX_CONCURRENCY)
        self.http = IgaHttp(
            target.name, target.base_url, auth, policy, error_text=error_text, transport=transport, verify=h.verify_tls
        )
        self.reader = IiqReader(self.http, self.options)
        self.launcher = self.options.launcher or target.username
        self._form = self.options.body_form
        self._form_confirmed = not self.options.body_form_fallback
        self._launch_filter = self.options.find_running_launches and bool(self.launcher)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def find_user(self, ids: UserIdentifiers) -> IgaUser:
        return await self.reader.find_user(ids)

    async def list_access(self, user: IgaUser) -> list[AccessItem]:
        return await self.reader.list_access(user)

    # ---- removals

    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]:
        """Roles first (IIQ then deprovisions what only they granted), then entitlements, in
        launches of `batch_max`; accounts in launches of their own (never Modify and Disable together)."""
        order = {"assigned_role": 0, "detected_role": 1, "entitlement": 2, "permission": 2}
        access = sorted(
            (r for r in requests if r.item.extra.get("iiq_kind") != "account"),
            key=lambda r: order.get(str(r.item.extra.get("iiq_kind")), 3),
        )
        accounts = [r for r in requests if r.item.extra.get("iiq_kind") == "account"]
        size = self.options.batch_max
        return [group[i : i + size] for group in (access, accounts) for i in range(0, len(group), size)]

    def plan_xml(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> str:
        return build_plan(user, batch, key, self.options)

    def launch_body(
        self, user: IgaUser, batch: Sequence[RemovalRequest], key: str, form: str | None = None
    ) -> dict[str, Any]:
        """The POST /LaunchedWorkflows body for one batch, in the configured (or given) form."""
        inputs = launch_inputs(user, self.plan_xml(user, batch, key), key, self.options, self.launcher)
        return launch_body(self.options.workflow_name, inputs, form or self._form)

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """One launch of LCM Provisioning. Its TaskResult id is what we poll; the pipeline commits
        it the moment this returns."""
        if not batch:
            return []
        answer = await self._launch(user, batch, key)
        task_id = answer.get("id")
        if not task_id:
            raise IgaUncertainError("IIQ answered the launch without a TaskResult id; look it up before any resend")
        request_id = identity_request_id(answer) or str(task_id)
        state = task_state(answer)
        approvals = approval_items(answer)
        refs = []
        for req in batch:
            mine = self._item_state(state, approvals, req.item)
            refs.append(
                RequestRef(
                    item_id=req.item.id,
                    request_id=request_id,
                    tracking_id=f"{task_id}:{req.item.id}",
                    status=mine.status,
                    raw_status=mine.raw_status,
                    message=mine.message,
                )
            )
        return refs

    async def _launch(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> dict[str, Any]:
        headers = {**ACCEPT, "Content-Type": SCIM_JSON}
        try:
            resp = await self.http.request(
                "POST", "/LaunchedWorkflows", json=self.launch_body(user, batch, key), headers=headers, idempotent=False
            )
        except IgaPermanentError as exc:
            if exc.status_code != 400 or self._form_confirmed:
                raise
            # The first launches: a site may read only the other body form (§5). Nothing was launched.
            other: Literal["nested", "top-level"] = "top-level" if self._form == "nested" else "nested"
            log.warning("iiq.launch_body_form_refused", target=self.http.target, form=self._form, trying=other)
            body = self.launch_body(user, batch, key, other)
            resp = await self.http.request("POST", "/LaunchedWorkflows", json=body, headers=headers, idempotent=False)
            self._form = other
        self._form_confirmed = True
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise IgaUncertainError("IIQ accepted the launch but its answer is not a LaunchedWorkflow")
        return answer

    def _item_state(self, state: RequestState, approvals: list[dict[str, str]], item: AccessItem) -> RequestState:
        """A launch's state for one item: a completed launch whose approval of the item was
        rejected removed nothing of it."""
        if state.status is not IgaStatus.COMPLETED or not approvals:
            return state
        decided = approval_state(approvals, item, self.options.account_op)
        if decided is None and all(a.get("state") == "Rejected" for a in approvals):
            decided = IgaStatus.REJECTED
        if decided is IgaStatus.REJECTED:
            return RequestState(IgaStatus.REJECTED, "Rejected", state.message or "the approver rejected the removal")
        return state

    # ---- recovery

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """What became of an interrupted launch, judged by its effect (module docstring)."""
        if not batch:
            return []
        held = {item.id for item in await self.reader.list_access(user)}
        running = await self._running_launches(user) if any(r.item.id in held for r in batch) else []
        refs = []
        for req in batch:
            item = req.item
            if item.id not in held:
                refs.append(
                    RequestRef(
                        item_id=item.id,
                        request_id="unknown",
                        tracking_id=f"{RELISTED}:{key}:{item.id}",
                        status=IgaStatus.COMPLETED,
                        raw_status="NotHeld",
                        message=GONE,
                    )
                )
                continue
            for launch, approvals in running:
                if approval_state(approvals, item, self.options.account_op) is not None:
                    state = self._item_state(task_state(launch), approvals, item)
                    refs.append(
                        RequestRef(
                            item_id=item.id,
                            request_id=identity_request_id(launch) or str(launch["id"]),
                            tracking_id=f"{launch['id']}:{item.id}",
                            status=state.status,
                            raw_status=state.raw_status,
                            message=state.message,
                        )
                    )
                    break
        return refs

    async def _running_launches(self, user: IgaUser) -> list[tuple[dict[str, Any], list[dict[str, str]]]]:
        """Our launches for the identity that have not finished, newest first, each with the
        ApprovalItems that say what it removes. Candidates are checked here, not trusted to the filter."""
        if not self._launch_filter:
            return []
        name = identity_name(user)
        flt = f"targetName eq {quote(name)} and launcher eq {quote(str(self.launcher))}"
        params = {"filter": flt, "sortBy": "launched", "sortOrder": "descending"}
        try:
            page = await self.reader.get_json("/LaunchedWorkflows", {**params, "count": str(self.options.page_size)})
        except IgaPermanentError as exc:
            if exc.status_code != 400:
                raise
            log.warning("iiq.launch_filter_refused", target=self.http.target, error=str(exc))
            self._launch_filter = False
            return []
        since = datetime.now(UTC) - timedelta(hours=self.options.running_launch_window_hours)
        found = []
        for launch in resources(page):
            if launch.get("targetName") != name or launch.get("launcher") != self.launcher or not launch.get("id"):
                continue
            if task_state(launch).status is not IgaStatus.PENDING or _launched(launch) < since:
                continue
            approvals = approval_items(launch)
            if not approvals:
                path = self.options.launched_workflow_path.replace("{id}", str(launch["id"]))
                approvals = approval_items(await self.reader.get_json(path))
            found.append((launch, approvals))
        return found

    # ---- tracking

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        """One GET /TaskResults/{id} per launch, and its approval set once it succeeded."""
        by_task: dict[str, list[RequestRef]] = {}
        states: dict[str, RequestState] = {}
        for ref in refs:
            task_id, _, _ = ref.tracking_id.partition(":")
            if task_id == RELISTED:
                states[ref.tracking_id] = RequestState(IgaStatus.COMPLETED, "NotHeld", ref.message)
            else:
                by_task.setdefault(task_id, []).append(ref)
        decided: dict[str, tuple[RequestState, list[dict[str, str]]]] = {}
        for task_id in by_task:
            decided[task_id] = await self._task(task_id)
        # Approvals name items by application, attribute and value, which refs do not carry; the
        # access list does while an item is held (a rejected one always is).
        items: dict[str, AccessItem] = {}
        if any(approvals for _, approvals in decided.values()):
            items = {i.id: i for i in await self.reader.list_access(user)}
        for task_id, mine in by_task.items():
            state, approvals = decided[task_id]
            for ref in mine:
                item = items.get(ref.item_id)
                states[ref.tracking_id] = self._item_state(state, approvals, item) if item else state
        return states

    async def _task(self, task_id: str) -> tuple[RequestState, list[dict[str, str]]]:
        try:
            doc = await self.reader.get_json(f"/TaskResults/{task_id}")
        except IgaPermanentError as exc:
            if exc.status_code != 404:
                raise
            # Pruned by Perform Maintenance once expired (§6): only the access list can tell.
            why = f"TaskResult {task_id} no longer exists; the access list decides"
            return RequestState(IgaStatus.COMPLETED, "Unknown", why), []
        state = task_state(doc if isinstance(doc, dict) else {})
        if state.status is not IgaStatus.COMPLETED or not self.options.check_approvals:
            return state, []
        path = self.options.launched_workflow_path.replace("{id}", task_id)
        return state, approval_items(await self.reader.get_json(path))

    async def cancel_request(self, user: IgaUser, ref: RequestRef, reason: str) -> bool:
        """IIQ's SCIM API cannot terminate a workflow case or an identity request: never withdrawn."""
        return False


def _launched(launch: dict[str, Any]) -> datetime:
    text = launch.get("launched") or (launch.get("meta") or {}).get("created")
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.now(UTC)  # undated: keep it as a candidate
    return when if when.tzinfo else when.replace(tzinfo=UTC)
