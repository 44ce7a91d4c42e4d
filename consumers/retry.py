"""What a failed call leads to, and the due-mover that brings parked jobs back.

| failure                       | job becomes                                   | counts a failure |
|-------------------------------|-----------------------------------------------|------------------|
| transient                     | `retrying` until now + backoff (full jitter)  | yes              |
| transient, max_attempts hit   | `failed`, dead-letter entry                   | yes              |
| permanent                     | `failed` with the error                       | -                |
| quota (SpaceError, QuotaWait) | `waiting_for_quota` until the quota resumes   | no               |
| broken Space                  | `retrying` after a short pause (circuit open) | no               |

Parked jobs wait in the delayed ZSET; `DueMover.move` (one script, safe in every consumer) puts
the ones that are due back on the stream as new entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from consumers.errors import ErrorKind, QuotaWait, SpaceError
from jobs.backoff import backoff_delay
from jobs.model import Status
from jobs.script_defs import MOVE_DUE, MoveDueArgs, MoveDueKeys
from jobs.store import EVENTS_MAXLEN, Clock, now_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys
    from jobs.settings import Settings

__all__ = ["DueMover", "Plan", "plan_failure"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with a job after a failed call."""

    action: str  # "retry" | "dead_letter" | "fail"
    error_code: str
    error_message: str
    status: Status = Status.FAILED
    due_ms: int = 0
    phase: str = ""
    count_failure: bool = False


def plan_failure(
    error: SpaceError | QuotaWait,
    failures_before: int,
    settings: Settings,
    *,
    paused_until: float | None = None,
    now: float | None = None,
) -> Plan:
    """Map a classified failure of one call to the job's next state (see the module's table)."""
    now = time.time() if now is None else now
    if isinstance(error, QuotaWait):
        return Plan(
            "retry",
            "quota_wait",
            "Every token is cooling down after a quota error; the job resumes by itself.",
            Status.WAITING_FOR_QUOTA,
            max(error.resume_at_ms, int(now * 1000)),
            "waiting_for_quota",
        )
    if error.kind is ErrorKind.QUOTA:
        wait_s = error.retry_after_s if error.retry_after_s is not None else settings.retry_cap_seconds
        due = int((now + max(wait_s, 0.0)) * 1000)
        return Plan("retry", error.code, error.message, Status.WAITING_FOR_QUOTA, due, "waiting_for_quota")
    if error.kind is ErrorKind.BROKEN:
        resume = max(now + settings.retry_base_seconds, paused_until or 0.0)
        due = int(resume * 1000)
        return Plan("retry", error.code, error.message, Status.RETRYING, due, "space_unavailable")
    if error.kind is ErrorKind.PERMANENT:
        return Plan("fail", error.code, error.message)
    failures = failures_before + 1
    if failures >= settings.max_attempts:
        message = f"Gave up after {failures} failed calls; the last one: {error.message}"
        return Plan("dead_letter", error.code, message, count_failure=True)
    delay = backoff_delay(failures, settings.retry_base_seconds, settings.retry_cap_seconds)
    return Plan(
        "retry",
        error.code,
        error.message,
        Status.RETRYING,
        int((now + delay) * 1000),
        "backing_off",
        count_failure=True,
    )


class DueMover:
    """Puts jobs whose retry time has come back on the stream."""

    def __init__(self, redis: Redis, keys: Keys, *, clock: Clock = now_ms) -> None:
        self.keys = keys
        self._clock = clock
        self._script = MOVE_DUE.load(redis)

    async def move(self, limit: int = 100) -> int:
        moved = await self._script(
            MoveDueKeys(delayed=self.keys.delayed, stream=self.keys.stream, events=self.keys.events),
            MoveDueArgs(
                now_ms=self._clock(),
                limit=limit,
                events_maxlen=EVENTS_MAXLEN,
                job_key_prefix=self.keys.job(""),
            ),
        )
        return int(moved)
