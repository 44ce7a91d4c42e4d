"""Every Prometheus metric of the pipeline, defined once.

Conventions: `ghibli_` prefix, base units, `_total` counters, `_seconds` histograms with buckets from
50 ms to 10 min (jobs run for minutes). Labels are low-cardinality only: outcome, error class, code,
phase, token alias; never job ids. Queue-wide gauges (lag, pending, oldest age, ...) are
read from Redis by metrics.queue_collector, which one process (`ghibli metrics-exporter`) serves so
replicas do not multiply them; their names and help are at the end of this module all the same.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_HEARTBEAT_GAP",
    "DECODE_SECONDS",
    "DECODE_WORKERS_REPLACED",
    "DURATION_BUCKETS",
    "ENDS_NOT_DURABLE",
    "ERROR_CLASSES",
    "FINISH_OUTCOMES",
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
    "JOBS_SUBMITTED_BY_KEY",
    "JOB_END_TO_END",
    "JOB_QUEUE_WAIT",
    "JOB_RUN",
    "LEASES_LOST",
    "QUEUE_GAUGES",
    "QUOTA_COOLDOWNS",
    "RECLAIM_REASONS",
    "SPACE_CALL",
    "SPACE_CIRCUIT_OPEN",
    "SPACE_ERRORS",
    "SUBMISSIONS_NOT_DURABLE",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_ATTEMPT_OUTCOMES",
    "WEBHOOK_ATTEMPT_SECONDS",
    "WEBHOOK_EVENTS",
    "QueueGauge",
]

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600)

# --- ingest ---------------------------------------------------------------------------------
JOBS_SUBMITTED = Counter("ghibli_jobs_submitted_total", "Jobs accepted (202) by ingest.")
JOBS_DEDUPLICATED = Counter(
    "ghibli_jobs_deduplicated_total",
    "Submissions answered without a new Space call: result cache hits, idempotent replays and jobs "
    "merged into an identical one in flight.",
    ["kind"],  # cache | idempotency | in_flight
)
JOBS_REJECTED = Counter(
    "ghibli_jobs_rejected_total", "Submissions refused, by reason (the problem code).", ["reason"]
)
JOBS_CANCELLED = Counter("ghibli_jobs_cancelled_total", "Jobs cancelled by their user.")
SUBMISSIONS_NOT_DURABLE = Counter(
    "ghibli_submissions_not_durable_total",
    "Submissions answered 503 not_durable: the Redis replicas did not confirm them in time "
    "(GHIBLI_DURABLE_REPLICAS).",
)
JOBS_SUBMITTED_BY_KEY = Counter(
    "ghibli_jobs_submitted_by_key_total",
    "Jobs accepted (202), by API key id ('anonymous' without a key; never the key).",
    ["key"],
)

# --- webhooks (`ghibli webhooks`) -----------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter(
    "ghibli_webhook_attempts_total",
    "Webhook delivery attempts, by outcome and API key id.",
    ["outcome", "key"],  # delivered | http_error | network_error | forbidden
)
WEBHOOK_EVENTS = Counter(
    "ghibli_webhook_events_total",
    "Webhook events that left the outbox, by how, and API key id.",
    ["result", "key"],  # delivered | given_up | gone | superseded
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "ghibli_webhook_attempt_seconds",
    "One webhook delivery attempt (resolve, connect, send, answer), by outcome.",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
WEBHOOK_ATTEMPT_OUTCOMES = ("delivered", "http_error", "network_error", "forbidden")

# --- consumers ------------------------------------------------------------------------------
JOBS_STARTED = Counter("ghibli_jobs_started_total", "Claims that started a Space call.")
ENDS_NOT_DURABLE = Counter(
    "ghibli_job_ends_not_durable_total",
    "Job ends (finish, dead letter) the Redis replicas did not confirm in time "
    "(GHIBLI_DURABLE_REPLICAS); a fail-over could make such a job run once more.",
)
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
    "Entries taken over from another consumer, by reason: its heartbeat expired (it died or froze), "
    "the entry's lease expired, or the entry was deleted under the PEL.",
    ["reason"],  # heartbeat_expired | lease_expired | deleted_entry
)
CONSUMER_HEARTBEAT_GAP = Histogram(
    "ghibli_consumer_heartbeat_gap_seconds",
    "Time between two successful heartbeats of a consumer; when it nears GHIBLI_HEARTBEAT_TIMEOUT_SECONDS "
    "a live consumer risks having its jobs taken over.",
    buckets=(0.5, 0.75, 1, 1.1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 30),
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
# Label values known in advance start at 0, so a series exists before its first event and rate()
# sees the first increment (Prometheus's "avoid missing metrics" advice). Error classes are
# consumers.errors.ErrorKind's values.
FINISH_OUTCOMES = ("succeeded", "failed", "dead_lettered")
RECLAIM_REASONS = ("heartbeat_expired", "lease_expired", "deleted_entry")
ERROR_CLASSES = ("quota", "transient", "broken", "permanent")
for _outcome in FINISH_OUTCOMES:
    JOBS_FINISHED.labels(outcome=_outcome)
for _kind in ("cache", "idempotency", "in_flight"):
    JOBS_DEDUPLICATED.labels(kind=_kind)
for _reason in RECLAIM_REASONS:
    JOBS_RECLAIMED.labels(reason=_reason)
for _error_class in ERROR_CLASSES:
    JOBS_RETRIED.labels(error_class=_error_class)

# --- the decode sandbox (sandbox/pool.py) ---------------------------------------------------
DECODE_SECONDS = Histogram(
    "ghibli_decode_seconds",
    "Decodes of untrusted images in the sandbox (wall time, queueing included), by task and outcome.",
    ["task", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30),
)
DECODE_WORKERS_REPLACED = Counter(
    "ghibli_decode_workers_replaced_total",
    "Decode workers killed or lost and started again: over_time, over_cpu, crashed, abandoned "
    "(the request went away), retired (out of memory, or a heap left large), recycled (after many "
    "tasks), died_idle.",
    ["reason"],
)
DECODE_REPLACE_REASONS = ("over_time", "over_cpu", "crashed", "abandoned", "retired", "recycled", "died_idle")
for _reason in DECODE_REPLACE_REASONS:
    DECODE_WORKERS_REPLACED.labels(reason=_reason)

SPACE_CIRCUIT_OPEN = Gauge(
    "ghibli_space_circuit_open",
    "1 while this process's circuit breaker pauses claiming because the Space is paused or broken.",
    multiprocess_mode="livemax",
)


# --- queue-wide gauges, read from Redis at scrape time by metrics.queue_collector --------------
class QueueGauge(NamedTuple):
    name: str
    help: str
    labels: tuple[str, ...] = ()


QUEUE_GAUGES = {
    g.name: g
    for g in (
        QueueGauge("ghibli_queue_up", "1 if the last read of the queue's state from Redis succeeded."),
        QueueGauge("ghibli_queue_collect_seconds", "How long the last read of the queue's state took."),
        QueueGauge(
            "ghibli_stream_length", "Entries in the jobs stream (XLEN): not yet delivered or pending."
        ),
        QueueGauge("ghibli_group_lag", "Entries of the jobs stream not yet delivered to the consumer group."),
        QueueGauge("ghibli_group_pending", "Entries delivered but not acknowledged: jobs running or stuck."),
        QueueGauge("ghibli_group_consumers", "Consumers registered in the group, alive or not."),
        QueueGauge("ghibli_consumers_live", "Consumers seen alive within one lease."),
        QueueGauge(
            "ghibli_backlog_oldest_age_seconds", "Age of the oldest entry not yet delivered; 0 when none."
        ),
        QueueGauge(
            "ghibli_pending_oldest_age_seconds",
            "Age (since it was queued) of the oldest delivered, unacknowledged entry; 0 when none.",
        ),
        QueueGauge(
            "ghibli_pending_max_idle_seconds",
            "Longest time a pending entry has gone without delivery or lease renewal; 0 when none.",
        ),
        QueueGauge("ghibli_pending_max_deliveries", "Highest delivery count among pending entries."),
        QueueGauge(
            "ghibli_pending_expired_leases", "Pending entries idle for longer than the lease (reclaimable)."
        ),
        QueueGauge("ghibli_delayed_jobs", "Jobs in the delayed set, waiting for a retry or for quota."),
        QueueGauge(
            "ghibli_delayed_overdue_seconds",
            "How long ago the most overdue delayed job was due; 0 when none is overdue.",
        ),
        QueueGauge("ghibli_jobs_waiting_for_quota", "Jobs waiting until an HF token's quota cools down."),
        QueueGauge("ghibli_dead_letters", "Entries in the dead-letter stream."),
        QueueGauge("ghibli_tokens", "HF tokens of the pool, by state.", ("state",)),
        QueueGauge(
            "ghibli_token_cooldown_seconds",
            "Seconds until an HF token's quota cooldown ends; 0 when not cooling.",
            ("token",),
        ),
        QueueGauge("ghibli_token_in_flight", "Space calls running on an HF token.", ("token",)),
        QueueGauge(
            "ghibli_space_ready", "1 if the consumers' last check found the Space's endpoint, else 0."
        ),
        QueueGauge(
            "ghibli_space_paused", "1 while the shared circuit breaker pauses calls to a broken Space."
        ),
    )
}
