"""Named crash points for the kill-matrix tests: `LEAVER_CRASH_AT=<point>` makes the process
kill itself (SIGKILL, no cleanup) the first time it reaches that point. Off unless set."""

from __future__ import annotations

import os
import signal

POINTS = (
    "after_claim",
    "after_resolve",
    "after_plan",
    "after_intent",  # write-ahead row committed, request not yet sent
    "after_send",  # IGA answered, request IDs not yet committed
    "after_submit_commit",
    "after_track",
    "before_verify_commit",
)


def crash_point(name: str) -> None:
    if os.environ.get("LEAVER_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
