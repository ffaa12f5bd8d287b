"""Prometheus metrics, defined once so every module counts into the same series.

Counters are per process (each worker process serves its own, `leaver worker --metrics-port`);
the gauges are computed from the database on every scrape, so any API replica reports the same.
"""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECEIVED = Counter("leaver_events_received_total", "Webhook events accepted", ["outcome"])
IGA_CALLS = Counter("leaver_iga_calls_total", "HTTP calls made to IGA systems", ["target", "method", "status"])
ITEMS_FINISHED = Counter("leaver_items_finished_total", "Plan items that reached a terminal state", ["state"])
CASES_FINISHED = Counter("leaver_cases_finished_total", "Cases that reached a terminal state", ["state"])
GUARD_TRIPS = Counter(
    "leaver_guard_trips_total", "Times the blast-radius guard held a target's further leavers", ["target"]
)
JOBS_CLAIMED = Counter("leaver_jobs_claimed_total", "Jobs claimed by workers")
TIME_TO_REVOKE = Histogram(
    "leaver_time_to_revoke_seconds",
    "Per removed item: from the event's arrival to the IGA completing the removal. `wait` says whether "
    "policy scheduled it for later (scheduled), an operator approved it (approved) or neither (none)",
    ["target", "wait"],
    buckets=(10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600, 31 * 24 * 3600),
)

OPEN_CASES = Gauge("leaver_open_cases", "Cases not yet in a terminal state, by state", ["state"])
ATTENTION = Gauge("leaver_needs_attention", "What waits for an operator, by kind", ["kind"])
OLDEST_OPEN_CASE = Gauge("leaver_oldest_open_case_age_seconds", "Age of the oldest case not yet terminal")
QUEUE_DEPTH = Gauge("leaver_queue_due_jobs", "Jobs due now and not yet worked")
OLDEST_DUE_JOB = Gauge("leaver_oldest_due_job_age_seconds", "How long the oldest due job has waited")
HOLDS_ESCALATED = Counter(
    "leaver_holds_escalated_total", "Held items no operator decided on within the escalation time", ["target"]
)
