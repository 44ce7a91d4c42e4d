"""The dead-letter stream: jobs given up on, with their last error, and putting them back.

Consumers write it (jobs/lua/dead_letter.lua, lost_entry.lua); operators read and replay it with
`ghibli dlq` (and the admin API can use the same functions). A replay resets the job's failures
and queues it under a new entry; the job's input photo must still exist (GHIBLI_BLOB_TTL_SECONDS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from jobs.redis_conn import as_text
from jobs.script_defs import REPLAY, ReplayArgs, ReplayKeys, ReplayVerdict
from jobs.store import EVENTS_MAXLEN

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["DeadLetter", "DeadLetters", "ReplayResult"]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the dead-letter entry's id
    job: str
    reason: str  # max_attempts | max_deliveries | entry_deleted
    error_code: str
    error_message: str
    failures: int = 0
    attempt: int = 0
    at: int = 0  # unix ms
    consumer: str = ""


class ReplayResult(msgspec.Struct, frozen=True):
    id: str
    job: str
    verdict: ReplayVerdict  # ok | missing (job expired) | the job's status when it was not failed


class DeadLetters:
    def __init__(self, redis: Redis, keys: Keys, *, job_ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.job_ttl_s = job_ttl_s
        self._replay = REPLAY.load(redis)

    async def count(self) -> int:
        return int(await self.redis.xlen(self.keys.dead))

    async def page(self, limit: int = 100, after: str = "-") -> list[DeadLetter]:
        """Oldest first, up to `limit`, starting after entry id `after` (exclusive) for paging."""
        start = after if after == "-" else f"({after}"
        rows: Any = await self.redis.xrange(self.keys.dead, min=start, max="+", count=limit)
        return [_letter(entry_id, raw) for entry_id, raw in rows]

    async def job_ids(self, batch: int = 1000) -> list[str]:
        """The job of every dead letter (the stream is capped, so this is bounded): what a job id
        prefix typed at `ghibli dlq replay` may complete to."""
        ids: list[str] = []
        after = "-"
        while letters := await self.page(batch, after):
            ids.extend(letter.job for letter in letters)
            after = letters[-1].id
        return ids

    async def find(self, ref: str) -> DeadLetter | None:
        """A dead letter by its entry id ("<ms>-<seq>"), or the newest one of a job id."""
        if "-" not in ref:
            dead_entry = await self.redis.hget(self.keys.job(ref), "dead_entry")
            if not dead_entry:
                return None
            ref = as_text(dead_entry)
        rows: Any = await self.redis.xrange(self.keys.dead, min=ref, max=ref, count=1)
        return _letter(*rows[0]) if rows else None

    async def replay(self, letter: DeadLetter) -> ReplayResult:
        reply = await self._replay(
            ReplayKeys(
                dead=self.keys.dead,
                job=self.keys.job(letter.job),
                stream=self.keys.stream,
                events=self.keys.events,
            ),
            ReplayArgs(
                dead_entry_id=letter.id,
                job_id=letter.job,
                events_maxlen=EVENTS_MAXLEN,
                job_ttl_s=self.job_ttl_s,
            ),
        )
        return ReplayResult(letter.id, letter.job, ReplayVerdict.of(reply))

    async def replay_all(self, batch: int = 500) -> list[ReplayResult]:
        """Replay every dead letter present now; expired jobs stay listed (verdict 'missing')."""
        results: list[ReplayResult] = []
        after = "-"
        while True:
            page = await self.page(limit=batch, after=after)
            if not page:
                return results
            for letter in page:
                results.append(await self.replay(letter))
            after = page[-1].id


def _letter(entry_id: object, raw: dict[Any, Any] | None) -> DeadLetter:
    fields = {as_text(k): as_text(v) for k, v in (raw or {}).items()}
    return msgspec.convert({"id": as_text(entry_id), **fields}, DeadLetter, strict=False)
