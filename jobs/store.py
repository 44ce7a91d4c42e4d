"""The job store: the only code that writes job hashes and the jobs stream.

Ingest creates and cancels jobs; consumers claim, update and finish them. Every state change goes
through a script that also bumps the job's version and appends to the events stream. A job's end
(finish, dead letter) waits for the replicas when durable acknowledgements are on (jobs/durable.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import ResponseError

from jobs.durable import Durability, NotDurable
from jobs.model import JobRecord, Status
from jobs.redis_conn import as_text
from jobs.script_defs import (
    ACK,
    CANCEL,
    CLAIM,
    DEAD_LETTER,
    FINISH,
    LOST_ENTRY,
    RETRY,
    UPDATE,
    AckArgs,
    AckKeys,
    CancelArgs,
    CancelKeys,
    ClaimArgs,
    ClaimKeys,
    ClaimVerdict,
    DeadLetterArgs,
    DeadLetterKeys,
    FinishArgs,
    FinishKeys,
    JobVerdict,
    LostEntryArgs,
    LostEntryKeys,
    LostEntryVerdict,
    RetryArgs,
    RetryKeys,
    UpdateArgs,
    UpdateKeys,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from jobs.keys import Keys
    from jobs.settings import Settings

__all__ = ["Claim", "ClaimRefused", "Clock", "FollowersWaiting", "JobStore", "now_ms"]

EVENTS_MAXLEN = 100_000
# The dead-letter stream is an operator's to-do list: long, but not unbounded.
DEAD_MAXLEN = 100_000


def now_ms() -> int:
    return int(time.time() * 1000)


# Wall-clock milliseconds. Parts that compare times their scripts are given (retry due times, token
# leases and cool-downs) take one, so a test can move time on instead of sleeping.
Clock = Callable[[], int]


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


class Claim(msgspec.Struct, frozen=True):
    """A consumer's hold on a job: the fence ("attempt:nonce", jobs/lua/claim.lua) is the token all
    its writes present; the attempt alone could repeat after a fail-over lost a claim."""

    job_id: str
    entry_id: str
    attempt: int
    failures: int = 0  # failed calls before this attempt (retries count them; quota waits do not)
    fence: str = ""
    # Read by the claim script in the same step (one round trip instead of three): the job as the
    # claim left it, and its input photo when blobs live in Redis (None: read it from the blob store).
    record: JobRecord | None = None
    photo: bytes | None = None

    @property
    def run_name(self) -> str:
        """This claim's own name for what it writes (result blob, scratch file): "attempt-nonce",
        so two runs under the same attempt number never share one."""
        return self.fence.replace(":", "-") or str(self.attempt)


class ClaimRefused(msgspec.Struct, frozen=True):
    """Why a delivered entry is not run.

    'skip': the job is missing, finished or superseded (the entry is acknowledged and deleted);
    'lost': the entry belongs to another consumer now (nothing was touched);
    'dead': delivered more than max_deliveries times (the caller dead-letters it with `as_claim`).
    """

    verdict: ClaimVerdict
    reason: str
    attempt: int = 0
    deliveries: int = 0
    fence: str = ""  # the job's fence when refused as 'dead' ('' if never claimed)

    def as_claim(self, job_id: str, entry_id: str) -> Claim:
        """The claim a 'dead' refusal lets the caller present to dead-letter the job."""
        return Claim(job_id, entry_id, self.attempt, fence=self.fence)


class FollowersWaiting(Exception):
    """finish() refused a success: these jobs merged into this one need their own copy of the result."""

    def __init__(self, followers: list[str]) -> None:
        super().__init__(f"{len(followers)} followers need a copy of the result")
        self.followers = followers


class JobStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        job_ttl_s: int = 86_400,
        blob_ttl_s: int = 3_600,
        durability: Durability | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.job_ttl_s = job_ttl_s
        self.blob_ttl_s = blob_ttl_s
        self.durability = durability or Durability(redis, keys.durable)
        self._claim = CLAIM.load(redis)
        self._update = UPDATE.load(redis)
        self._finish = FINISH.load(redis)
        self._ack = ACK.load(redis)
        self._cancel = CANCEL.load(redis)
        self._retry = RETRY.load(redis)
        self._dead_letter = DEAD_LETTER.load(redis)
        self._lost_entry = LOST_ENTRY.load(redis)

    @classmethod
    def from_settings(cls, redis: Redis, keys: Keys, settings: Settings) -> JobStore:
        """The store as every process configures it: TTLs and durable acknowledgements from settings."""
        return cls(
            redis,
            keys,
            job_ttl_s=settings.job_ttl_seconds,
            blob_ttl_s=settings.blob_ttl_seconds,
            durability=Durability.from_settings(redis, keys, settings),
        )

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (idempotent)."""
        try:
            await self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        return JobRecord.from_hash(job_id, raw)  # type: ignore[arg-type] # bytes replies

    async def claim(
        self,
        job_id: str,
        entry_id: str,
        consumer: str,
        *,
        max_deliveries: int = 2**31,
        photo_in_redis: bool = False,
    ) -> Claim | ClaimRefused:
        """Take a delivered entry this consumer owns: a Claim to run it (with the job's record, and
        its photo if `photo_in_redis`: the blob store is this Redis), or why not."""
        photo_name = f"in/{job_id}"  # where ingest puts every photo (ingest/submit.py)
        reply = await self._claim(
            ClaimKeys(
                job=self.keys.job(job_id),
                events=self.keys.events,
                stream=self.keys.stream,
                entries=self.keys.entries,
                photo=self.keys.blob(photo_name),
            ),
            ClaimArgs(
                job_id=job_id,
                entry_id=entry_id,
                consumer=consumer,
                now_ms=now_ms(),
                events_maxlen=EVENTS_MAXLEN,
                group=self.keys.group,
                max_deliveries=max_deliveries,
                nonce=secrets.token_hex(6),
                photo_name=photo_name if photo_in_redis else "",
            ),
        )
        verdict = ClaimVerdict.of(reply)
        if verdict is ClaimVerdict.OK:
            flat = reply[4]
            record = JobRecord.from_hash(job_id, dict(zip(flat[::2], flat[1::2], strict=True)))
            return Claim(
                job_id,
                entry_id,
                int(reply[1]),
                int(reply[2]),
                fence=as_text(reply[3]),
                record=record,
                photo=reply[5] if isinstance(reply[5], bytes) else None,
            )
        if verdict is ClaimVerdict.DEAD:
            return ClaimRefused(verdict, "max_deliveries", int(reply[1]), int(reply[2]), as_text(reply[3]))
        return ClaimRefused(verdict, as_text(reply[1]))

    async def update(self, claim: Claim, status: Status = Status.RUNNING, **fields: object) -> JobVerdict:
        """A fenced write; returns 'ok', 'fenced', 'missing' or the job's terminal status."""
        reply = await self._update(
            UpdateKeys(job=self.keys.job(claim.job_id), events=self.keys.events),
            UpdateArgs(
                job_id=claim.job_id,
                fence=claim.fence,
                events_maxlen=EVENTS_MAXLEN,
                status=status.value,
                fields=_flatten(fields),
            ),
        )
        return JobVerdict.of(reply)

    async def _durably(self, script: AsyncScript, keys: Sequence[str], args: Sequence[object]) -> Any:
        """Run a script that ends a job; with durable acknowledgements on, raise NotDurable (its
        reply as text) when the replicas did not confirm it in time."""
        try:
            return await self.durability.run(script, keys, args)
        except NotDurable as exc:
            if isinstance(exc.reply, list):  # finish() refused for want of copies: nothing written
                return exc.reply
            exc.reply = JobVerdict.of(exc.reply)
            raise

    async def finish(
        self,
        claim: Claim,
        status: Status,
        *,
        copies: Mapping[str, str] | None = None,
        result: tuple[str, bytes] | None = None,
        **fields: object,
    ) -> JobVerdict:
        """Terminal status + XACK + XDEL in one step, fenced like update(); durable if configured.

        Returns 'ok', 'withdrawn' (done, for the followers of a job its owner erased), 'fenced',
        'missing' or the terminal status the job already had. A success of a job with followers
        needs `copies` (follower id -> its own copy of the result); FollowersWaiting names those
        still without one, and nothing was written. `result` (blob name, bytes), with blobs in
        Redis: the result is stored by the same step, only if the job is finished by it.
        """
        keys = FinishKeys(
            job=self.keys.job(claim.job_id),
            events=self.keys.events,
            stream=self.keys.stream,
            entries=self.keys.entries,
            result=self.keys.blob(result[0] if result else ""),
        )
        args = FinishArgs(
            job_id=claim.job_id,
            fence=claim.fence,
            events_maxlen=EVENTS_MAXLEN,
            status=status.value,
            group=self.keys.group,
            entry_id=claim.entry_id,
            now_ms=now_ms(),
            result_ttl_s=self.blob_ttl_s,
            result_data=result[1] if result else b"",
            copies=",".join(f"{job}={blob}" for job, blob in (copies or {}).items()),
            fields=_flatten(fields),
        )
        reply = await self._durably(self._finish.script, *FINISH.wire(keys, args))
        verdict = JobVerdict.of(reply)
        if verdict is JobVerdict.COPIES:
            raise FollowersWaiting([as_text(job) for job in reply[1:]])
        return verdict

    async def ack(self, entry_id: str) -> None:
        await self._ack(
            AckKeys(stream=self.keys.stream, entries=self.keys.entries),
            AckArgs(group=self.keys.group, entry_id=entry_id),
        )

    async def retry(
        self,
        claim: Claim,
        *,
        due_ms: int,
        status: Status,
        phase: str,
        count_failure: bool,
        error_code: str,
        error_message: str,
    ) -> JobVerdict:
        """Ack + delete the entry and park the job in the delayed ZSET until due_ms, fenced.

        Returns 'ok', 'fenced', 'missing' or the terminal status the job already had.
        """
        reply = await self._retry(
            RetryKeys(
                job=self.keys.job(claim.job_id),
                events=self.keys.events,
                stream=self.keys.stream,
                entries=self.keys.entries,
                delayed=self.keys.delayed,
            ),
            RetryArgs(
                job_id=claim.job_id,
                fence=claim.fence,
                events_maxlen=EVENTS_MAXLEN,
                group=self.keys.group,
                entry_id=claim.entry_id,
                due_ms=due_ms,
                status=status.value,
                phase=phase,
                count_failure=1 if count_failure else 0,
                error_code=error_code,
                error_message=error_message,
            ),
        )
        return JobVerdict.of(reply)

    async def dead_letter(
        self,
        claim: Claim,
        *,
        reason: str,
        error_code: str,
        error_message: str,
        count_failure: bool,
        consumer: str,
    ) -> JobVerdict:
        """Dead-letter entry + job 'failed' + ack + delete of the entry, in one fenced step; durable
        if configured.

        For an entry refused as 'dead' at claim time, pass the refusal's `as_claim()`.
        Returns 'ok', 'fenced', 'missing' or the terminal status the job already had.
        """
        keys = DeadLetterKeys(
            job=self.keys.job(claim.job_id),
            events=self.keys.events,
            stream=self.keys.stream,
            entries=self.keys.entries,
            dead=self.keys.dead,
        )
        args = DeadLetterArgs(
            job_id=claim.job_id,
            fence=claim.fence,
            events_maxlen=EVENTS_MAXLEN,
            group=self.keys.group,
            entry_id=claim.entry_id,
            now_ms=now_ms(),
            reason=reason,
            error_code=error_code,
            error_message=error_message,
            count_failure=1 if count_failure else 0,
            dead_maxlen=DEAD_MAXLEN,
            consumer=consumer,
        )
        return JobVerdict.of(await self._durably(self._dead_letter.script, *DEAD_LETTER.wire(keys, args)))

    async def fail_lost_entry(self, entry_id: str, consumer: str) -> LostEntryVerdict:
        """End the job of an entry deleted while pending ('failed' + dead letter); the entry leaves the PEL.

        Returns 'failed', 'unknown' (never claimed, so its job is unknown), 'missing', 'superseded'
        or the terminal status the job already had.
        """
        reply = await self._lost_entry(
            LostEntryKeys(
                stream=self.keys.stream,
                entries=self.keys.entries,
                events=self.keys.events,
                dead=self.keys.dead,
            ),
            LostEntryArgs(
                group=self.keys.group,
                entry_id=entry_id,
                events_maxlen=EVENTS_MAXLEN,
                now_ms=now_ms(),
                job_key_prefix=self.keys.job(""),
                dead_maxlen=DEAD_MAXLEN,
                consumer=consumer,
            ),
        )
        return LostEntryVerdict.of(reply)

    async def cancel(self, job_id: str) -> JobVerdict:
        """Cancel unless terminal; returns 'ok', 'missing' or the terminal status it already had."""
        reply = await self._cancel(
            CancelKeys(job=self.keys.job(job_id), events=self.keys.events, delayed=self.keys.delayed),
            CancelArgs(job_id=job_id, events_maxlen=EVENTS_MAXLEN, now_ms=now_ms()),
        )
        return JobVerdict.of(reply)

    async def erase(self, job_id: str) -> None:
        await self.redis.delete(self.keys.job(job_id))
