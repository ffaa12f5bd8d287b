"""A worker frozen (SIGSTOP, as a VM pause or a long GC would) between writing a batch ahead and
sending it wakes up after another worker has taken its job over, recovered the batch and sent it:
it must send nothing. Real `leaver worker` processes on PostgreSQL; the IGA is a simulator served
in the test process, and submissions are counted there."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.settings import TargetSettings
from app.simulator import simulator_spec
from tests.exactly_once.conftest import SYSTEMS
from tests.procs import leaver_env, query, running, store_events
from tests.servers import serve_in_thread
from tests.support import event_body

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
LEASE = 3.0


def stopped(pid: int) -> bool:
    """The process is stopped by a signal (state T in /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def finished(database_url: str) -> bool:
    jobs = query(database_url, "SELECT count(*) FROM jobs")[0][0]
    states = {s for (s,) in query(database_url, "SELECT state FROM cases")}
    return jobs == 0 and states == {"done"}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.05)


def target_for(system: str, url: str) -> TargetSettings:
    target = simulator_spec(system).demo_target(url, system)
    http = target.http.model_copy(update={"read_timeout": 2.0, "requests_per_second": 50.0, "attempts": 3})
    return target.model_copy(update={"listing_lag_seconds": 0, "http": http})


@pytest.mark.parametrize("point", ["after_intent", "before_send"])
@pytest.mark.parametrize("system", SYSTEMS)
def test_a_worker_paused_before_its_send_sends_nothing_after_a_takeover(
    system: str, point: str, database_url: str, tmp_path: Path
) -> None:
    spec = simulator_spec(system)
    with serve_in_thread(spec.create_app()) as url, httpx.Client(base_url=url, timeout=10) as sim:
        sim.post("/_config", json=spec.test_config).raise_for_status()
        targets = [target_for(system, url)]
        store_events(database_url, tmp_path, targets, [event_body("asmith")])
        env = leaver_env(
            database_url,
            tmp_path,
            targets,
            LEAVER_LEASE_SECONDS=str(LEASE),
            LEAVER_RESEND_GRACE_SECONDS=str(LEASE),
        )
        with running(["worker"], env | {"LEAVER_PAUSE_AT": point}, tmp_path / "paused.log") as paused:
            wait_for(lambda: stopped(paused.pid) or paused.poll() is not None, f"the worker to pause at {point}")
            assert paused.poll() is None, (tmp_path / "paused.log").read_text()
            with running(["worker"], env, tmp_path / "taker.log") as taker:
                wait_for(lambda: finished(database_url), "the second worker to finish the case")
                paused.send_signal(signal.SIGCONT)
                log = tmp_path / "paused.log"
                wait_for(lambda: "worker.lease_lost" in log.read_text(), "the woken worker to notice its lost lease")
                assert taker.poll() is None
        submissions = Counter((s["user"], s["item"]) for s in sim.get("/_probe/submissions").json())
    assert submissions and set(submissions.values()) == {1}, submissions
    resent = query(database_url, "SELECT count(*) FROM audit WHERE why LIKE '%sending again%'")[0][0]
    assert resent >= 1  # the takeover found no trace of the frozen worker's batch and sent it, once
