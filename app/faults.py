"""Named crash and pause points for the kill-matrix and exactly-once tests. Off unless set:

- `LEAVER_CRASH_AT=<point>`: the process kills itself (SIGKILL, no cleanup) the first time it
  reaches that point;
- `LEAVER_PAUSE_AT=<point>`: the process stops itself (SIGSTOP, as a VM pause or a long GC would)
  the first time it reaches that point, until a test sends SIGCONT.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "after_claim",  # job claimed (leased), nothing done yet
    "before_resolve_commit",  # user and access read from the IGA, not yet committed
    "after_resolve",  # resolve committed (boundary resolve -> plan)
    "before_plan_commit",  # plan computed, not yet committed
    "after_plan",  # plan committed (boundary plan -> submit)
    "after_intent",  # write-ahead row committed, request not yet sent
    "before_send",  # lease checked right before the IGA write, request not yet sent
    "after_send",  # IGA answered, request IDs not yet committed
    "after_submit_commit",  # one batch's request IDs committed, the case still `submitting`
    "after_submit",  # every batch submitted, `tracking` committed (boundary submit -> track)
    "after_track",  # IGA statuses read, not yet committed
    "after_track_commit",  # a tracking poll committed (boundary track -> verify, or the next poll)
    "before_verify_commit",  # access listed again, not yet committed
)


_paused: set[str] = set()


def crash_point(name: str) -> None:
    if os.environ.get("LEAVER_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("LEAVER_PAUSE_AT") == name and name not in _paused:
        _paused.add(name)
        os.kill(os.getpid(), signal.SIGSTOP)
