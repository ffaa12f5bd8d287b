"""Prometheus metrics, defined once so every module counts into the same series."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECEIVED = Counter("leaver_events_received_total", "Webhook events accepted", ["outcome"])
IGA_CALLS = Counter("leaver_iga_calls_total", "HTTP calls made to IGA systems", ["target", "method", "status"])
ITEMS_FINISHED = Counter("leaver_items_finished_total", "Plan items that reached a terminal state", ["state"])
CASES_FINISHED = Counter("leaver_cases_finished_total", "Cases that reached a terminal state", ["state"])
JOBS_CLAIMED = Counter("leaver_jobs_claimed_total", "Jobs claimed by workers")
TIME_TO_REVOKE = Histogram(
    "leaver_time_to_revoke_seconds",
    "From the event's effective time to the last removal confirmed",
    buckets=(10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
)
OPEN_CASES = Gauge("leaver_open_cases", "Cases not yet in a terminal state")
