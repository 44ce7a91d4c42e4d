"""Live job changes for SSE viewers: one Redis reader per process, fanned out in memory.

Every state change appends {job, v, s} to the events stream (jobs/lua/prelude.lua: emit). A
process runs one `EventsHub.run` task that tails that stream with XREAD BLOCK and, for the jobs
someone here watches, reads each changed job hash once (one pipelined round trip per batch) and
hands the record to every viewer of that job. So 1000 viewers cost one blocking connection and one
HGETALL per change, not 1000 connections (a pool of 64 would run dry long before).

A viewer's mailbox keeps only the newest record: a slow viewer skips intermediate states instead
of growing a queue, and the versions tell it what it has already sent.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
from redis.exceptions import RedisError

from jobs.logs import get_logger
from jobs.model import JobRecord
from jobs.redis_conn import BLOCK_MS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from jobs.keys import Keys

__all__ = ["EventsHub", "Watch"]

log = get_logger("ingest.events")


class Watch:
    """One viewer's mailbox for one job."""

    def __init__(self, job_id: str, seq: int) -> None:
        self.job_id = job_id
        self.seq = seq  # when it was registered, in the hub's sequence of registrations and reads
        self.latest: JobRecord | None = None
        self.gone = False  # the job hash disappeared (deleted or expired)
        self._changed = asyncio.Event()

    def offer(self, record: JobRecord | None) -> None:
        if record is None:
            self.gone = True
        elif self.latest is None or record.version > self.latest.version:
            self.latest = record
        else:
            return
        self._changed.set()

    async def changed(self, timeout_s: float) -> bool:
        """Wait until something new arrived (True) or timeout_s passed (False)."""
        with anyio.move_on_after(timeout_s):
            await self._changed.wait()
        if self._changed.is_set():
            self._changed.clear()
            return True
        return False


def _shown(record: JobRecord) -> JobRecord | None:
    """A withdrawn job (erased by its owner, still running for jobs merged into it) is gone to viewers."""
    return None if record.withdrawn else record


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREAD's reply as (entry id, fields), for RESP2 lists and RESP3 dicts alike."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    for _stream, entries in streams:
        for batch in entries if entries and isinstance(entries[0], list) else [entries]:
            out.extend((entry_id, fields) for entry_id, fields in batch)
    return out


class _Read:
    """A job-hash read in flight, shared by every viewer registered before it started."""

    def __init__(self, seq: int, task: asyncio.Task[JobRecord | None]) -> None:
        self.seq = seq
        self.task = task


class EventsHub:
    def __init__(self, redis: Redis, keys: Keys, *, block_ms: int = BLOCK_MS, batch: int = 1000) -> None:
        self._redis = redis
        self._keys = keys
        self._block_ms = block_ms
        self._batch = batch
        # Weak: a viewer whose response never started (client gone first) is dropped with it.
        self._watches: dict[str, weakref.WeakSet[Watch]] = {}
        self._reads: dict[str, _Read] = {}
        self._seq = 0
        self.running = False

    @property
    def viewers(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def subscribe(self, job_id: str) -> Watch:
        """Register a viewer of job_id. Register *before* reading the snapshot: a change that
        lands between the two is then seen by both paths and the version check drops the
        duplicate, so none is lost."""
        watch = Watch(job_id, self._next_seq())
        self._watches.setdefault(job_id, weakref.WeakSet()).add(watch)
        return watch

    def unsubscribe(self, watch: Watch) -> None:
        viewers = self._watches.get(watch.job_id)
        if viewers is not None:
            viewers.discard(watch)
            if not viewers:
                del self._watches[watch.job_id]

    @contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """subscribe() for the duration of a block."""
        watch = self.subscribe(job_id)
        try:
            yield watch
        finally:
            self.unsubscribe(watch)

    async def read(self, job_id: str) -> JobRecord | None:
        raw = await self._redis.hgetall(self._keys.job(job_id))
        return _shown(JobRecord.from_hash(job_id, raw)) if raw else None  # type: ignore[arg-type] # bytes

    async def snapshot(self, watch: Watch) -> JobRecord | None:
        """The watched job as it is now, read at most once for all viewers that ask together.

        A viewer joins a read already in flight only if that read started after the viewer was
        registered, so what it gets is never older than its registration. The read runs in its
        own task: a viewer that disconnects mid-read cancels only its wait, never the Redis
        command (a cancelled command could leave its pool connection unreleased).
        """
        flight = self._reads.get(watch.job_id)
        if flight is None or flight.seq < watch.seq or flight.task.done():
            flight = _Read(self._next_seq(), asyncio.create_task(self.read(watch.job_id)))
            self._reads[watch.job_id] = flight
            flight.task.add_done_callback(functools.partial(self._read_done, watch.job_id, flight))
        return await asyncio.shield(flight.task)

    def _read_done(self, job_id: str, flight: _Read, _task: object) -> None:
        if self._reads.get(job_id) is flight:
            del self._reads[job_id]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: a failed read is reported to its waiters, not logged twice

    async def run(self) -> None:
        """Tail the events stream until cancelled; Redis outages are waited out, not fatal."""
        last_id: bytes | str | None = None
        self.running = True
        try:
            while True:
                try:
                    if last_id is None:
                        last_id = await self._tail_id()
                    reply = await self._redis.xread(
                        {self._keys.events: last_id}, count=self._batch, block=self._block_ms
                    )
                    entries = _entries(reply)
                    if entries:
                        last_id = entries[-1][0]
                        await self._dispatch(entries)
                except (RedisError, OSError) as exc:
                    # Viewers re-read their job on every keep-alive, so a gap here delays, never loses.
                    log.warning("events reader: redis unavailable", error=type(exc).__name__)
                    await anyio.sleep(1.0)
        finally:
            self.running = False

    async def _tail_id(self) -> bytes | str:
        newest = await self._redis.xrevrange(self._keys.events, count=1)
        entry_id = newest[0][0] if newest else None
        return entry_id if entry_id is not None else "0-0"

    async def _dispatch(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        changed: list[str] = []
        for _entry_id, fields in entries:
            job_id = fields.get(b"job", b"").decode()
            if job_id in self._watches and job_id not in changed:
                changed.append(job_id)
        if not changed:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in changed:
                pipe.hgetall(self._keys.job(job_id))
            hashes = await pipe.execute()
        for job_id, raw in zip(changed, hashes, strict=True):
            try:
                record = _shown(JobRecord.from_hash(job_id, raw)) if raw else None
            except (ValueError, TypeError) as exc:  # a malformed hash must not stop the reader
                log.error("events reader: bad job hash", job_id=job_id, error=str(exc))
                continue
            viewers = self._watches.get(job_id)
            for watch in tuple(viewers or ()):
                watch.offer(record)
            if viewers is not None and not viewers:
                del self._watches[job_id]
