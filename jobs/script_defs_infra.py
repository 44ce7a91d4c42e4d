"""The declarations (jobs/scripts.py) of the scripts around the jobs: consumer liveness and
recovery of their entries, Space tokens, rate limits and fair share, and the webhook outbox.

Field order is wire order, and the Lua body reads each by its name (`K.stream`, `A.group`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from jobs.scripts import Script, Verdict

__all__ = [
    "ADMIT_UNFINISHED",
    "CHARGE_STORED",
    "DEAD_CONSUMERS",
    "HEARTBEAT",
    "RATELIMIT",
    "REAP_CONSUMER",
    "RECLAIM",
    "RELEASE",
    "RENEW",
    "TAKEOVER",
    "TOKEN_ACQUIRE",
    "WEBHOOK_CLAIM",
    "WEBHOOK_RESULT",
    "AcquireVerdict",
    "ReapVerdict",
    "TakeoverVerdict",
    "WebhookOutcome",
]


class ReapVerdict(Verdict):
    ALIVE = "alive"
    PENDING = "pending"
    DELETED = "deleted"


class TakeoverVerdict(Verdict):
    ALIVE = "alive"
    OWNS_MORE = "owns_more"
    REMOVED = "removed"


class AcquireVerdict(Verdict):
    OK = "ok"
    BUSY = "busy"
    COOLING = "cooling"
    PAUSED = "paused"


class WebhookOutcome(Verdict):
    """The dispatcher's verdict as recorded, 'replaced' (the head changed meanwhile) or 'fenced'."""

    DELIVERED = "delivered"
    GIVEN_UP = "given_up"
    SUPERSEDED = "superseded"
    GONE = "gone"
    FAILED = "failed"
    DEFERRED = "deferred"
    REPLACED = "replaced"
    FENCED = "fenced"


class AdmitKeys(NamedTuple):
    open: str  # the client's unfinished jobs and reservations


class AdmitArgs(NamedTuple):
    job_key_prefix: str
    limit: int
    reservation: str
    now_ms: int
    reservation_ttl_ms: int
    ttl_s: int


ADMIT_UNFINISHED = Script("admit_unfinished", AdmitKeys, AdmitArgs)


class ChargeKeys(NamedTuple):
    counter: str


class ChargeArgs(NamedTuple):
    size: int  # the upload's stored bytes
    limit: int
    window_ms: int


CHARGE_STORED = Script("charge_stored", ChargeKeys, ChargeArgs)


class DeadConsumersKeys(NamedTuple):
    consumers: str


class DeadConsumersArgs(NamedTuple):
    limit: int


DEAD_CONSUMERS = Script("dead_consumers", DeadConsumersKeys, DeadConsumersArgs)


class HeartbeatKeys(NamedTuple):
    alive: str
    consumers: str


class HeartbeatArgs(NamedTuple):
    consumer: str
    instance: str
    timeout_ms: int


HEARTBEAT = Script("heartbeat", HeartbeatKeys, HeartbeatArgs)


class RateLimitKeys(NamedTuple):
    bucket: str


class RateLimitArgs(NamedTuple):
    interval_ms: int
    capacity: int
    cost: int


RATELIMIT = Script("ratelimit", RateLimitKeys, RateLimitArgs)


class ReapKeys(NamedTuple):
    stream: str
    alive: str
    consumers: str


class ReapArgs(NamedTuple):
    group: str
    consumer: str


REAP_CONSUMER = Script("reap_consumer", ReapKeys, ReapArgs, ReapVerdict)


class StreamKeys(NamedTuple):
    stream: str


class ReclaimArgs(NamedTuple):
    group: str
    consumer: str
    min_idle_ms: int
    cursor: str
    max_entries: int


RECLAIM = Script("reclaim", StreamKeys, ReclaimArgs)


class ReleaseArgs(NamedTuple):
    group: str
    consumer: str
    idle_ms: int
    entry_ids: Sequence[str] = ()


RELEASE = Script("release", StreamKeys, ReleaseArgs)


class RenewArgs(NamedTuple):
    group: str
    consumer: str
    entry_ids: Sequence[str] = ()


RENEW = Script("renew", StreamKeys, RenewArgs)


class TakeoverKeys(NamedTuple):
    stream: str
    alive: str  # the owner's
    consumers: str


class TakeoverArgs(NamedTuple):
    group: str
    consumer: str  # taking over
    owner: str
    max_entries: int


TAKEOVER = Script("takeover", TakeoverKeys, TakeoverArgs, TakeoverVerdict)


class TokenAcquireKeys(NamedTuple):
    space: str
    tokens: Sequence[str] = ()  # per token: its hash, its leases


class TokenAcquireArgs(NamedTuple):
    now_ms: int
    lease_ms: int
    call_id: str
    max_in_flight: int
    # Per token: alias, excluded ('1': skip it, it refused this call for quota a moment ago).
    tokens: Sequence[str] = ()


TOKEN_ACQUIRE = Script("token_acquire", TokenAcquireKeys, TokenAcquireArgs, AcquireVerdict)


class TokenReleaseKeys(NamedTuple):
    token: str  # the token's hash
    leases: str


class TokenReleaseArgs(NamedTuple):
    call_id: str
    now_ms: int
    outcome: str  # success | failure | quota (a failure that also cools the token) | abandoned
    error_code: str
    cooldown_until_ms: int
    requested_s: float  # GPU seconds the Space said it requests per call; 0: unknown
    charge_gpu: str  # '1' | '0'
    default_gpu_s: float
    day: str  # YYYYMMDD, UTC


TOKEN_RELEASE = Script("token_release", TokenReleaseKeys, TokenReleaseArgs)


class WebhookClaimKeys(NamedTuple):
    due: str


class WebhookClaimArgs(NamedTuple):
    now_ms: int
    lease_ms: int
    limit: int
    queue_prefix: str
    state_prefix: str
    token: str


WEBHOOK_CLAIM = Script("webhook_claim", WebhookClaimKeys, WebhookClaimArgs)


class WebhookResultKeys(NamedTuple):
    due: str
    queue: str
    state: str
    job: str


class WebhookResultArgs(NamedTuple):
    job_id: str
    token: str
    item_id: str
    verdict: str  # a WebhookOutcome but 'replaced' and 'fenced'
    now_ms: int
    retry_at_ms: int
    progress_interval_ms: int
    attempted: int  # 1 | 0
    event_type: str
    http_status: int
    error: str


WEBHOOK_RESULT = Script("webhook_result", WebhookResultKeys, WebhookResultArgs, WebhookOutcome)
