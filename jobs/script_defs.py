"""Every Lua script of jobs/lua/, declared once (jobs/scripts.py): here those that write jobs
(their hashes and stream entries), in jobs/script_defs_infra.py the others; SCRIPTS lists them all.

Field order is wire order, and the Lua body reads each by its name (`K.job`, `A.fence`). What a
script does is said at the top of its .lua file; what a value means, when its name is not enough,
is said here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from jobs.script_defs_infra import (
    ADMIT_UNFINISHED,
    CHARGE_STORED,
    DEAD_CONSUMERS,
    HEARTBEAT,
    RATELIMIT,
    REAP_CONSUMER,
    RECLAIM,
    RELEASE,
    RENEW,
    TAKEOVER,
    TOKEN_ACQUIRE,
    TOKEN_RELEASE,
    WEBHOOK_CLAIM,
    WEBHOOK_RESULT,
)
from jobs.scripts import Script, Verdict

__all__ = [
    "ACK",
    "CANCEL",
    "CLAIM",
    "DEAD_LETTER",
    "FINISH",
    "FORGET",
    "LOST_ENTRY",
    "MOVE_DUE",
    "REPLAY",
    "RETRY",
    "SCRIPTS",
    "SUBMIT",
    "UPDATE",
    "ClaimVerdict",
    "JobVerdict",
    "LostEntryVerdict",
    "ReplayVerdict",
    "SubmitVerdict",
]


class ClaimVerdict(Verdict):
    """claim.lua: run it ('ok'), or why not ('skip': acknowledged; 'lost': not ours; 'dead')."""

    OK = "ok"
    SKIP = "skip"
    LOST = "lost"
    DEAD = "dead"


class JobVerdict(Verdict):
    """What a write of a job came to: done, refused, or the terminal status the job already had."""

    OK = "ok"
    FENCED = "fenced"  # the caller no longer holds the job's claim
    MISSING = "missing"
    WITHDRAWN = "withdrawn"  # finish: done, for the followers of a job its owner erased
    COPIES = "copies"  # finish: followers still need their own copy of the result; nothing written
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class LostEntryVerdict(Verdict):
    FAILED = "failed"
    UNKNOWN = "unknown"  # the entry is not in the entry -> job index (never claimed)
    MISSING = "missing"
    SUPERSEDED = "superseded"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"


class ReplayVerdict(Verdict):
    """'ok', 'missing' (the job expired) or the job's status when it was not 'failed'."""

    OK = "ok"
    MISSING = "missing"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING_FOR_QUOTA = "waiting_for_quota"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"


class SubmitVerdict(Verdict):
    CREATED = "created"
    REPLAY = "replay"
    EXISTS = "exists"


class AckKeys(NamedTuple):
    stream: str
    entries: str


class AckArgs(NamedTuple):
    group: str
    entry_id: str


ACK = Script("ack", AckKeys, AckArgs)


class ClaimKeys(NamedTuple):
    job: str
    events: str
    stream: str
    entries: str
    photo: str  # the blob key of the job's input photo ("in/<job id>"), read with the claim


class ClaimArgs(NamedTuple):
    job_id: str
    entry_id: str
    consumer: str
    now_ms: int
    events_maxlen: int
    group: str
    max_deliveries: int
    nonce: str  # drawn by the claimer: the fence is "attempt:nonce"
    photo_name: str  # the photo's blob name if blobs live in Redis, else "" (read elsewhere)


CLAIM = Script("claim", ClaimKeys, ClaimArgs, ClaimVerdict)


class CancelKeys(NamedTuple):
    job: str
    events: str
    delayed: str


class CancelArgs(NamedTuple):
    job_id: str
    events_maxlen: int
    now_ms: int


CANCEL = Script("cancel", CancelKeys, CancelArgs, JobVerdict)


class DeadLetterKeys(NamedTuple):
    job: str
    events: str
    stream: str
    entries: str
    dead: str


class DeadLetterArgs(NamedTuple):
    job_id: str
    fence: str
    events_maxlen: int
    group: str
    entry_id: str
    now_ms: int
    reason: str
    error_code: str
    error_message: str
    count_failure: int  # 1 adds one to the job's failures
    dead_maxlen: int
    consumer: str


DEAD_LETTER = Script("dead_letter", DeadLetterKeys, DeadLetterArgs, JobVerdict)


class FinishKeys(NamedTuple):
    job: str
    events: str
    stream: str
    entries: str
    result: str  # the result's blob key when the script stores it (else a blob key never written)


class FinishArgs(NamedTuple):
    job_id: str
    fence: str
    events_maxlen: int
    status: str
    group: str
    entry_id: str
    now_ms: int
    result_ttl_s: int
    result_data: bytes  # the result, stored under K.result with the success; b"" if stored elsewhere
    copies: str  # "follower=blob,...": each follower's own copy of the result
    fields: Sequence[str] = ()  # field, value, ...


FINISH = Script("finish", FinishKeys, FinishArgs, JobVerdict)


class ForgetKeys(NamedTuple):
    job: str


class ForgetArgs(NamedTuple):
    job_id: str


FORGET = Script("forget", ForgetKeys, ForgetArgs)


class LostEntryKeys(NamedTuple):
    stream: str
    entries: str
    events: str
    dead: str


class LostEntryArgs(NamedTuple):
    group: str
    entry_id: str
    events_maxlen: int
    now_ms: int
    job_key_prefix: str
    dead_maxlen: int
    consumer: str


LOST_ENTRY = Script("lost_entry", LostEntryKeys, LostEntryArgs, LostEntryVerdict)


class MoveDueKeys(NamedTuple):
    delayed: str
    stream: str
    events: str


class MoveDueArgs(NamedTuple):
    now_ms: int
    limit: int
    events_maxlen: int
    job_key_prefix: str


MOVE_DUE = Script("move_due", MoveDueKeys, MoveDueArgs)


class ReplayKeys(NamedTuple):
    dead: str
    job: str
    stream: str
    events: str


class ReplayArgs(NamedTuple):
    dead_entry_id: str
    job_id: str
    events_maxlen: int
    job_ttl_s: int


REPLAY = Script("replay", ReplayKeys, ReplayArgs, ReplayVerdict)


class RetryKeys(NamedTuple):
    job: str
    events: str
    stream: str
    entries: str
    delayed: str


class RetryArgs(NamedTuple):
    job_id: str
    fence: str
    events_maxlen: int
    group: str
    entry_id: str
    due_ms: int
    status: str  # retrying | waiting_for_quota
    phase: str
    count_failure: int  # 1 adds one to the job's failures
    error_code: str
    error_message: str


RETRY = Script("retry", RetryKeys, RetryArgs, JobVerdict)


class SubmitKeys(NamedTuple):
    job: str
    stream: str
    events: str
    idem: str
    inflight: str  # the in-flight key of this photo + parameters


class SubmitArgs(NamedTuple):
    job_id: str
    job_ttl_s: int
    events_maxlen: int
    idem_ttl_s: int  # 0: no Idempotency-Key
    fingerprint: str
    mode: str  # queue | cached
    accepted_body: bytes  # the 202 body, replayed verbatim
    merge: int  # 1 | 0
    followers_prefix: str
    fields: Sequence[str] = ()  # field, value, ...


SUBMIT = Script("submit", SubmitKeys, SubmitArgs, SubmitVerdict)


class UpdateKeys(NamedTuple):
    job: str
    events: str


class UpdateArgs(NamedTuple):
    job_id: str
    fence: str
    events_maxlen: int
    status: str
    fields: Sequence[str] = ()  # field, value, ...


UPDATE = Script("update", UpdateKeys, UpdateArgs, JobVerdict)

SCRIPTS: tuple[Script[Any, Any], ...] = (
    ACK,
    ADMIT_UNFINISHED,
    CANCEL,
    CHARGE_STORED,
    CLAIM,
    DEAD_CONSUMERS,
    DEAD_LETTER,
    FINISH,
    FORGET,
    HEARTBEAT,
    LOST_ENTRY,
    MOVE_DUE,
    RATELIMIT,
    REAP_CONSUMER,
    RECLAIM,
    RELEASE,
    RENEW,
    REPLAY,
    RETRY,
    SUBMIT,
    TAKEOVER,
    TOKEN_ACQUIRE,
    TOKEN_RELEASE,
    UPDATE,
    WEBHOOK_CLAIM,
    WEBHOOK_RESULT,
)
