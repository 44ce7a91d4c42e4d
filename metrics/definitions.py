"""Every Prometheus metric of the pipeline, defined once.

Conventions: `ghibli_` prefix, base units, `_total` counters, `_seconds` histograms with buckets from
50 ms to 10 min (jobs run for minutes). Labels are low-cardinality only: outcome, error class, code,
phase, token alias; never job ids. Queue-wide gauges (lag, pending, oldest age, ...) are not here:
metrics.queue_collector reads them from Redis once, so replicas do not multiply them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "DURATION_BUCKETS",
    "JOBS_CANCELLED",
    "JOBS_DEAD_LETTERED",
    "JOBS_DEDUPLICATED",
    "JOBS_FINISHED",
    "JOBS_IN_PROGRESS",
    "JOBS_RECLAIMED",
    "JOBS_REJECTED",
    "JOBS_RETRIED",
    "JOBS_STARTED",
    "JOBS_SUBMITTED",
    "JOB_END_TO_END",
    "JOB_QUEUE_WAIT",
    "JOB_RUN",
    "LEASES_LOST",
    "QUOTA_COOLDOWNS",
    "SPACE_CALL",
    "SPACE_ERRORS",
]

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600)

# --- ingest ---------------------------------------------------------------------------------
JOBS_SUBMITTED = Counter("ghibli_jobs_submitted_total", "Jobs accepted (202) by ingest.")
JOBS_DEDUPLICATED = Counter(
    "ghibli_jobs_deduplicated_total",
    "Submissions answered without a new Space call: result cache hits and idempotent replays.",
    ["kind"],  # cache | idempotency
)
JOBS_REJECTED = Counter(
    "ghibli_jobs_rejected_total", "Submissions refused, by reason (the problem code).", ["reason"]
)
JOBS_CANCELLED = Counter("ghibli_jobs_cancelled_total", "Jobs cancelled by their user.")

# --- consumers ------------------------------------------------------------------------------
JOBS_STARTED = Counter("ghibli_jobs_started_total", "Claims that started a Space call.")
JOBS_FINISHED = Counter(
    "ghibli_jobs_finished_total",
    "Jobs that reached a terminal state in a consumer, by outcome.",
    ["outcome"],  # succeeded | failed | dead_lettered
)
JOBS_RETRIED = Counter(
    "ghibli_jobs_retried_total",
    "Jobs scheduled for a retry after a failure, by error class.",
    ["error_class"],
)
JOBS_RECLAIMED = Counter(
    "ghibli_jobs_reclaimed_total",
    "Entries taken over from another consumer (XAUTOCLAIM), by reason.",
    ["reason"],  # lease_expired | deleted_entry
)
JOBS_DEAD_LETTERED = Counter(
    "ghibli_jobs_dead_lettered_total", "Jobs moved to the dead-letter stream, by reason.", ["reason"]
)
LEASES_LOST = Counter(
    "ghibli_leases_lost_total", "Fenced writes refused because another consumer owns the job now."
)
JOBS_IN_PROGRESS = Gauge(
    "ghibli_jobs_in_progress", "Space calls running in this process.", multiprocess_mode="livesum"
)
JOB_QUEUE_WAIT = Histogram(
    "ghibli_job_queue_wait_seconds", "From submission to the first claim.", buckets=DURATION_BUCKETS
)
JOB_RUN = Histogram(
    "ghibli_job_run_seconds",
    "From claim to the end of the run, by outcome.",
    ["outcome"],
    buckets=DURATION_BUCKETS,
)
JOB_END_TO_END = Histogram(
    "ghibli_job_end_to_end_seconds",
    "From submission to a terminal state, by outcome.",
    ["outcome"],
    buckets=DURATION_BUCKETS,
)
SPACE_CALL = Histogram(
    "ghibli_space_call_seconds", "One Space call, by outcome.", ["outcome"], buckets=DURATION_BUCKETS
)
SPACE_ERRORS = Counter(
    "ghibli_space_errors_total", "Failed Space calls, by error class and code.", ["error_class", "code"]
)
QUOTA_COOLDOWNS = Counter(
    "ghibli_quota_cooldowns_total", "ZeroGPU quota errors that cooled a token, by token alias.", ["token"]
)
