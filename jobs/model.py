"""The job: its parameters, its states and how it is stored in the job hash."""

from __future__ import annotations

import enum
import secrets
from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = [
    "DEFAULT_PROMPT",
    "TERMINAL",
    "JobParams",
    "JobRecord",
    "Status",
    "new_job_id",
]

DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
SIZE_MIN, SIZE_MAX, SIZE_STEP = 256, 1024, 64
SEED_MAX = 2**32 - 1


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING_FOR_QUOTA = "waiting_for_quota"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

Side = Annotated[int, Meta(ge=SIZE_MIN, le=SIZE_MAX, multiple_of=SIZE_STEP)]


class JobParams(msgspec.Struct, frozen=True, kw_only=True):
    """What the Space is asked to do; the same names and meaning as its endpoint."""

    prompt: Annotated[str, Meta(min_length=1, max_length=500)] = DEFAULT_PROMPT
    width: Side = 768
    height: Side = 768
    seed: Annotated[int, Meta(ge=0, le=SEED_MAX)] = 42
    use_zero_init: bool = False
    zero_steps: Annotated[int, Meta(ge=0, le=50)] = 1


def new_job_id() -> str:
    """128 random bits: ids are capabilities, whoever holds one may read the job."""
    return secrets.token_hex(16)


class JobRecord(msgspec.Struct, kw_only=True):
    """The job hash, decoded. Times are unix milliseconds; 0 means "not yet"."""

    id: str
    status: Status
    params: JobParams
    input_key: str
    input_digest: str = ""
    attempt: int = 0
    failures: int = 0
    version: int = 0
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    progress: float = 0.0
    phase: str = ""
    queue_rank: int = -1
    queue_size: int = -1
    eta_seconds: float = -1.0
    resume_at: int = 0
    token_alias: str = ""
    consumer: str = ""
    entry_id: str = ""
    error_code: str = ""
    error_message: str = ""
    result_key: str = ""
    result_type: str = ""
    cache_hit: bool = False
    # Erased by its owner while jobs merged into it still wanted its Space call (jobs/lua/cancel.lua):
    # the run goes on for them, but the job itself is shown to nobody.
    withdrawn: bool = False
    # Who submitted it (an API key id, never the key) and its webhook deliveries (jobs/webhooks.py).
    key_id: str = ""
    wh_events: str = ""  # ",started,completed," as subscribed; empty: no webhook
    wh_attempts: int = 0
    wh_delivered: int = 0
    wh_pending: int = 0
    wh_last_event: str = ""
    wh_last_outcome: str = ""
    wh_last_status: int = 0
    wh_last_error: str = ""
    wh_last_at: int = 0

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[bytes, bytes]) -> JobRecord:
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        params = msgspec.convert(
            {name: fields[name] for name in _PARAM_FIELDS if name in fields},
            JobParams,
            strict=False,
        )
        rest = {k: v for k, v in fields.items() if k in _RECORD_FIELDS}
        for flag in ("cache_hit", "withdrawn"):
            if flag in rest:
                rest[flag] = "true" if rest[flag] in ("1", "true") else "false"
        return msgspec.convert({"id": job_id, "params": params, **rest}, cls, strict=False)


_PARAM_FIELDS = tuple(f.name for f in msgspec.structs.fields(JobParams))
_RECORD_FIELDS = frozenset(f.name for f in msgspec.structs.fields(JobRecord)) - {"id", "params"}


def params_to_hash(params: JobParams) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _PARAM_FIELDS:
        value = getattr(params, name)
        out[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out
