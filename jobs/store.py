"""The job store: the only code that writes job hashes and the jobs stream.

Ingest creates and cancels jobs; consumers claim, update and finish them. Every state change goes
through a script that also bumps the job's version and appends to the events stream.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec
from redis.exceptions import ResponseError

from jobs.model import JobParams, JobRecord, Status, params_to_hash
from jobs.scripts import Scripts

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["Claim", "JobStore", "now_ms"]

EVENTS_MAXLEN = 100_000


def now_ms() -> int:
    return int(time.time() * 1000)


def _flatten(fields: Mapping[str, object]) -> list[str]:
    out: list[str] = []
    for name, value in fields.items():
        out.append(name)
        if isinstance(value, bool):
            out.append("1" if value else "0")
        elif isinstance(value, bytes):
            out.append(value.decode())
        else:
            out.append(str(value))
    return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Claim(msgspec.Struct, frozen=True):
    """A consumer's hold on a job: the attempt is the fencing token of all its writes."""

    job_id: str
    entry_id: str
    attempt: int


class JobStore:
    def __init__(self, redis: Redis, keys: Keys, *, job_ttl_s: int = 86_400, blob_ttl_s: int = 3_600) -> None:
        self.redis = redis
        self.keys = keys
        self.job_ttl_s = job_ttl_s
        self.blob_ttl_s = blob_ttl_s
        self._scripts = Scripts(redis)

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (idempotent)."""
        try:
            await self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def create(
        self,
        job_id: str,
        params: JobParams,
        *,
        input_key: str,
        input_digest: str,
        extra: Mapping[str, object] | None = None,
    ) -> str | None:
        """Store the job hash and append its stream entry together; None if the id exists."""
        fields = {
            **params_to_hash(params),
            "input_key": input_key,
            "input_digest": input_digest,
            "created_at": now_ms(),
            **(extra or {}),
        }
        entry = await self._scripts.create(
            keys=[self.keys.job(job_id), self.keys.stream, self.keys.events],
            args=[job_id, self.job_ttl_s, EVENTS_MAXLEN, *_flatten(fields)],
        )
        return None if entry is None else _text(entry)

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        return JobRecord.from_hash(job_id, raw)  # type: ignore[arg-type] # bytes replies

    async def claim(self, job_id: str, entry_id: str, consumer: str) -> Claim | str:
        """Take a delivered entry: a Claim to run it, or the reason not to (entry acked)."""
        verdict, value = await self._scripts.claim(
            keys=[self.keys.job(job_id), self.keys.events],
            args=[job_id, entry_id, consumer, now_ms(), EVENTS_MAXLEN],
        )
        if _text(verdict) == "ok":
            return Claim(job_id, entry_id, int(value))
        await self.ack(entry_id)
        return _text(value)

    async def update(self, claim: Claim, status: Status = Status.RUNNING, **fields: object) -> str:
        """A fenced write; returns 'ok', 'fenced', 'missing' or the job's terminal status."""
        verdict = await self._scripts.update(
            keys=[self.keys.job(claim.job_id), self.keys.events],
            args=[claim.job_id, claim.attempt, EVENTS_MAXLEN, status.value, *_flatten(fields)],
        )
        return _text(verdict)

    async def finish(self, claim: Claim, status: Status, **fields: object) -> str:
        """Terminal status + XACK + XDEL in one step, fenced like update()."""
        verdict = await self._scripts.finish(
            keys=[self.keys.job(claim.job_id), self.keys.events, self.keys.stream],
            args=[
                claim.job_id,
                claim.attempt,
                EVENTS_MAXLEN,
                status.value,
                self.keys.group,
                claim.entry_id,
                now_ms(),
                self.blob_ttl_s,
                *_flatten(fields),
            ],
        )
        return _text(verdict)

    async def ack(self, entry_id: str) -> None:
        await self._scripts.ack(keys=[self.keys.stream], args=[self.keys.group, entry_id])

    async def cancel(self, job_id: str) -> str:
        """Cancel unless terminal; returns 'ok', 'missing' or the terminal status it already had."""
        verdict = await self._scripts.cancel(
            keys=[self.keys.job(job_id), self.keys.events, self.keys.delayed],
            args=[job_id, EVENTS_MAXLEN, now_ms()],
        )
        return _text(verdict)

    async def erase(self, job_id: str) -> None:
        await self.redis.delete(self.keys.job(job_id))
