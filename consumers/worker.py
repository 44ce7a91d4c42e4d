"""The consumer: claim entries of the jobs stream, run them, keep their leases, take over the dead.

Read top to bottom: `run` starts the loops and drains on SIGTERM; `_claim_loop` takes new entries
(and, every heartbeat, entries of consumers that died; every lease/3, entries idle for a lease)
while a slot is free and the Space is not paused; `_heartbeat_loop` keeps this consumer alive in
Redis's eyes; `_lease_loop` renews what runs; `_watch_loop` notices cancelled jobs;
`_housekeeping_loop` moves due retries back to the stream and reaps consumers that are gone.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from redis.exceptions import ResponseError

from consumers.job_run import CANCELLED, MISSING, SHUTDOWN, TAKEN_OVER, JobRunner, Running
from consumers.lease import Leases
from consumers.recovery import MIN_VERSION, Reaper, Recovery, redis_version
from consumers.retry import DueMover
from jobs.backoff import Backoff
from jobs.blobs import BlobStore, FileBlobStore, RedisBlobStore
from jobs.logs import get_logger
from jobs.redis_conn import BLOCK_MS, REDIS_DOWN, is_unblocked_by_failover
from jobs.script_defs import ClaimVerdict, JobVerdict, LostEntryVerdict
from jobs.stop_signals import watch_stop_signals
from jobs.store import ClaimRefused
from metrics.definitions import (
    JOB_RUN,
    JOBS_DEAD_LETTERED,
    JOBS_FINISHED,
    JOBS_IN_PROGRESS,
    JOBS_RECLAIMED,
    LEASES_LOST,
)

if TYPE_CHECKING:
    from consumers.space_call import SpaceCaller
    from jobs.settings import Settings
    from jobs.store import JobStore

__all__ = ["Consumer", "ConsumerNameTaken"]

log = get_logger("consumers.worker")

WATCH_INTERVAL_S = 1.0  # how soon a cancelled job's call is stopped when the Space sends nothing
HOUSEKEEPING_INTERVAL_S = 1.0  # due-mover period; retries are due at most this late
SWEEP_INTERVAL_S = 600.0  # expired files of a directory blob store (Redis expires its own keys)
STOP_WAIT_S = 5.0  # after the grace period, how long stopped calls get to notice before release


class ConsumerNameTaken(RuntimeError):
    """Another live process uses this consumer name (GHIBLI_CONSUMER_NAME must be unique)."""


def _entries(reply: object) -> list[tuple[str, dict[bytes, bytes]]]:
    """XREADGROUP's reply as (entry id, fields), for RESP2 lists and RESP3 dicts alike."""
    if not reply:
        return []
    streams: Any = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, dict[bytes, bytes]]] = []
    for _stream, entries in streams:
        for entry_id, fields in entries:
            out.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields or {}))
    return out


class Consumer:
    def __init__(self, settings: Settings, store: JobStore, blobs: BlobStore, caller: SpaceCaller) -> None:
        self.settings = settings
        self.store = store
        self.caller = caller
        self.blobs = blobs
        self.redis = store.redis
        self.keys = store.keys
        self.name = settings.resolved_consumer_name
        self.lease_s = settings.lease_seconds
        self.leases = Leases(
            self.redis, self.keys, self.name, self.lease_s, settings.heartbeat_timeout_seconds
        )
        self.recovery = Recovery(
            self.redis,
            self.keys,
            self.name,
            lease_s=self.lease_s,
            heartbeat_s=settings.heartbeat_seconds,
            heartbeat_timeout_s=settings.heartbeat_timeout_seconds,
        )
        self.reaper = Reaper(self.redis, self.keys, self.name)
        self.due = DueMover(self.redis, self.keys)
        self._running: dict[str, Running] = {}
        self._to_release: list[str] = []
        self._slot_freed = anyio.Event()
        self._stopping = anyio.Event()
        self._give_up = anyio.Event()  # "stop at once": stop waiting (for calls, for Redis)
        self._grace = anyio.CancelScope()
        self._outage_at = -math.inf  # monotonic time Redis was last seen unavailable
        self._renewed_at = -math.inf  # monotonic time of the last successful lease renewal
        self._name_lost = False  # another process took this name while this one was frozen
        self.runner = JobRunner(
            settings,
            store,
            blobs,
            caller,
            consumer=self.name,
            give_up=self._give_up,
            to_release=self._to_release,
        )

    # --- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Work until SIGTERM/SIGINT; then finish running calls within the grace period (SIGQUIT, or
        a second request after jobs/stop_signals.py's window: stop them and hand them back)."""
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._watch_signals)
            if await self._start_up():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._heartbeat_loop)
                    tg.start_soon(self._lease_loop)
                    tg.start_soon(self._watch_loop)
                    tg.start_soon(self._housekeeping_loop)
                    await self._claim_loop(tg)
                    await self._drain()
                    tg.cancel_scope.cancel()
                await self._say_goodbye()
            outer.cancel_scope.cancel()
        log.info("consumer stopped", consumer=self.name)
        if self._name_lost:
            raise ConsumerNameTaken(f"consumer name {self.name!r} was taken by another process")

    def stop(self) -> None:
        self._stopping.set()

    def stop_now(self) -> None:
        """Stop waiting: running calls are stopped at once and their entries handed back."""
        self._stopping.set()
        self._give_up.set()
        self._grace.cancel()

    async def _watch_signals(self) -> None:
        # One request delivered twice (terminal group + supervisor) is not a second request.
        await watch_stop_signals(self.stop, self.stop_now, process="consumer")

    async def _start_up(self) -> bool:
        """Check Redis, create the group, take the name, hand back what a predecessor left."""
        backoff = Backoff(cap_s=5.0)
        while not self._stopping.is_set():
            try:
                version = await redis_version(self.redis, self.keys.stream)
                if version < MIN_VERSION:
                    shown = ".".join(map(str, version))
                    raise RuntimeError(f"Redis {shown} is too old: consumers need >= 6.2 (XAUTOCLAIM)")
                await self.store.ensure_group()
                await self.store.durability.check()
                await self._take_name()
                left = await self.leases.owned()
                released = await self.leases.release(left)
            except REDIS_DOWN as exc:
                delay = backoff.next_delay()
                log.warning("redis unavailable at start-up", error=str(exc), retry_in_s=round(delay, 2))
                with anyio.move_on_after(delay):
                    await self._stopping.wait()
                continue
            log.info(
                "consumer started",
                consumer=self.name,
                concurrency=self.settings.concurrency,
                lease_s=self.lease_s,
                redis_version=".".join(map(str, version)),
                # Redis >= 7 drops entries deleted under the PEL itself and reports them.
                redis_reports_deleted_entries=version >= (7,),
                durable_acks=self.store.durability.describe(),
                released_from_predecessor=released,
            )
            return True
        return False

    async def _take_name(self) -> None:
        # A predecessor of the same name that died leaves its liveness key for up to one heartbeat
        # timeout (one lease, for versions without a heartbeat).
        deadline = time.monotonic() + self.lease_s + 1
        while not await self.leases.take_name():
            if time.monotonic() > deadline:
                raise ConsumerNameTaken(f"consumer name {self.name!r} is in use by a live process")
            await anyio.sleep(0.5)

    async def _drain(self) -> None:
        """Let running calls finish within the grace period; stop and hand back the rest."""
        if self._running:
            log.info("draining", running=len(self._running), grace_s=self.settings.shutdown_grace_seconds)
            with self._grace:
                self._grace.deadline = anyio.current_time() + self.settings.shutdown_grace_seconds
                while self._running:
                    await self._wait_slot()
        if self._running:
            log.warning("grace period over", running=len(self._running))
            for running in list(self._running.values()):
                running.halt(SHUTDOWN)
            with anyio.move_on_after(STOP_WAIT_S):
                while self._running:
                    await self._wait_slot()
            self._to_release.extend(self._running)  # calls that did not notice the stop in time
        if self._to_release and not self._name_lost:  # the entries are the other process's now
            with anyio.move_on_after(STOP_WAIT_S):
                try:
                    released = await self.runner.persist(lambda: self.leases.release(self._to_release))
                    log.info("handed back for immediate reclaim", entries=released)
                except REDIS_DOWN as exc:  # taken over once the liveness key has expired instead
                    log.warning("could not hand back entries", entries=len(self._to_release), error=str(exc))

    async def _say_goodbye(self) -> None:
        if self._name_lost:  # the liveness key is the other process's
            return
        with anyio.move_on_after(STOP_WAIT_S):
            try:
                await self.leases.goodbye()
                # Owning nothing, this consumer can leave the group right away.
                await self.reaper.reap_one(self.name)
            except REDIS_DOWN as exc:
                log.warning("could not say goodbye", error=str(exc))

    # --- claiming -----------------------------------------------------------------------------
    def _paused_for(self) -> float:
        until = self.caller.paused_until()
        return max(0.0, until - time.time()) if until else 0.0

    async def _wait_slot(self) -> None:
        self._slot_freed = anyio.Event()
        with anyio.move_on_after(1):
            await self._slot_freed.wait()

    def _note_outage(self, exc: BaseException) -> None:
        if self._outage_at < self._renewed_at:
            log.warning("redis unavailable", error=str(exc))
        self._outage_at = time.monotonic()

    async def _claim_loop(self, tg: anyio.abc.TaskGroup) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            paused = self._paused_for()
            if paused > 0:
                log.info("space paused: not claiming", for_s=round(paused, 1))
                with anyio.move_on_after(min(paused, 5.0)):
                    await self._stopping.wait()
                continue
            free = self.settings.concurrency - len(self._running)
            if free <= 0:
                await self._wait_slot()
                continue
            try:
                await self._reclaim(tg, free)
                free = self.settings.concurrency - len(self._running)
                if free <= 0:
                    continue
                reply = await self.redis.xreadgroup(
                    self.keys.group, self.name, {self.keys.stream: ">"}, count=free, block=self._block_ms
                )
                backoff.reset()
                for entry_id, fields in _entries(reply):
                    await self._start(tg, entry_id, fields)
            except REDIS_DOWN as exc:
                self._note_outage(exc)
                await anyio.sleep(backoff.next_delay())
            except ResponseError as exc:
                if is_unblocked_by_failover(exc):  # the primary was demoted under a blocked read
                    self._note_outage(exc)
                    await anyio.sleep(backoff.next_delay())
                    continue
                # NOGROUP, or UNBLOCKED when the stream is deleted under a blocked read. Redis 6.2
                # puts "Error running script ..." before the NOGROUP of a take-over script.
                if "NOGROUP" not in str(exc) and not str(exc).startswith("UNBLOCKED"):
                    raise
                # A Redis without persistence restarted, or someone deleted the stream: carry on.
                log.error("jobs stream or group missing: creating it again", error=str(exc))
                with contextlib.suppress(*REDIS_DOWN):
                    await self.store.ensure_group()
                await anyio.sleep(backoff.next_delay())

    @property
    def _block_ms(self) -> int:
        """A read blocks no longer than a heartbeat, so idle consumers scan for the dead that often."""
        return min(BLOCK_MS, max(100, int(self.settings.heartbeat_seconds * 1000)))

    async def _reclaim(self, tg: anyio.abc.TaskGroup, free: int) -> None:
        """Take over entries of dead consumers, then entries idle for a lease (consumers/recovery.py)."""
        scans = await self.recovery.scan(free, outage_at=self._outage_at, renewed_at=self._renewed_at)
        for found in scans:
            if found.removed:
                log.info("consumers removed", names=found.removed, reason=found.reason)
            for entry_id in found.deleted:
                verdict = await self.store.fail_lost_entry(entry_id, self.name)
                JOBS_RECLAIMED.labels(reason="deleted_entry").inc()
                if verdict is LostEntryVerdict.FAILED:
                    JOBS_DEAD_LETTERED.labels(reason="entry_deleted").inc()
                    JOBS_FINISHED.labels(outcome="dead_lettered").inc()
                log.warning("entry deleted while pending", entry_id=entry_id, job_fate=verdict)
            for entry_id, fields, deliveries in found.entries:
                JOBS_RECLAIMED.labels(reason=found.reason).inc()
                log.info("entry taken over", entry_id=entry_id, deliveries=deliveries, reason=found.reason)
                await self._start(tg, entry_id, fields)

    async def _start(self, tg: anyio.abc.TaskGroup, entry_id: str, fields: dict[bytes, bytes]) -> None:
        if self._stopping.is_set():
            self._to_release.append(entry_id)  # delivered as we stopped: hand it straight back
            return
        job_id = fields.get(b"job", b"").decode()
        if not job_id:
            verdict = await self.store.fail_lost_entry(entry_id, self.name)
            log.warning("entry without a job", entry_id=entry_id, job_fate=verdict)
            return
        claim = await self.store.claim(
            job_id,
            entry_id,
            self.name,
            max_deliveries=self.settings.max_deliveries,
            photo_in_redis=isinstance(self.blobs, RedisBlobStore),
        )
        if isinstance(claim, ClaimRefused):
            await self._refused(job_id, entry_id, claim)
            return
        earlier = self._running.get(entry_id)
        if earlier is not None:
            # Delivered again while still running here: a fail-over lost our claim. The old run's
            # fence is void now (its writes are refused); this claim is the one that counts.
            earlier.halt(TAKEN_OVER)
        running = Running(claim)
        self._running[entry_id] = running
        tg.start_soon(self._run_job, running)

    async def _refused(self, job_id: str, entry_id: str, refusal: ClaimRefused) -> None:
        if refusal.verdict is not ClaimVerdict.DEAD:
            log.info("entry not run", job_id=job_id, verdict=refusal.verdict, reason=refusal.reason)
            return
        verdict = await self.runner.end(
            self.store.dead_letter,
            refusal.as_claim(job_id, entry_id),
            reason="max_deliveries",
            error_code="delivery_limit",
            error_message=(
                f"Delivered {refusal.deliveries} times without finishing: the consumers running it "
                "died or lost their lease each time."
            ),
            count_failure=False,
            consumer=self.name,
        )
        if verdict is JobVerdict.OK:
            JOBS_DEAD_LETTERED.labels(reason="max_deliveries").inc()
            JOBS_FINISHED.labels(outcome="dead_lettered").inc()
        log.warning("job dead-lettered", job_id=job_id, reason="max_deliveries", verdict=verdict)

    async def _run_job(self, running: Running) -> None:
        claim = running.claim
        started = time.monotonic()
        outcome = "error"
        JOBS_IN_PROGRESS.inc()
        with structlog.contextvars.bound_contextvars(
            job_id=claim.job_id, attempt=claim.attempt, consumer=self.name
        ):
            try:
                outcome = await self.runner.run(running)
            except REDIS_DOWN:
                log.warning("job abandoned: redis unavailable")  # its entry is reclaimed later
            except Exception:
                log.exception("job run crashed")  # its entry stays pending: reclaimed later
            finally:
                if self._running.get(claim.entry_id) is running:
                    del self._running[claim.entry_id]
                self._slot_freed.set()
                JOBS_IN_PROGRESS.dec()
                JOB_RUN.labels(outcome=outcome).observe(time.monotonic() - started)

    # --- heartbeat, leases and noticing cancellations ------------------------------------------
    async def _heartbeat_loop(self) -> None:
        await self.leases.keep_beating(self.settings.heartbeat_seconds, self._note_outage)
        self._lose_name()

    def _lose_name(self) -> None:
        """Another process holds this name now: this one was frozen past its heartbeat timeout and
        its jobs were taken over. Stop at once, handing nothing back (the entries are not its own)."""
        log.error("consumer name taken by another process: stopping", consumer=self.name)
        self._name_lost = True
        for running in self._running.values():
            running.halt(TAKEN_OVER)
        self.stop_now()

    async def _lease_loop(self) -> None:
        backoff = Backoff()
        while True:
            try:
                lost = await self.leases.renew(list(self._running))
            except REDIS_DOWN as exc:
                self._note_outage(exc)
                await anyio.sleep(backoff.next_delay())
                continue
            except ResponseError as exc:  # NOGROUP: the claim loop creates the group again
                log.error("leases not renewed", error=str(exc))
                lost = list(self._running)
            if backoff.failing:
                log.info("redis back: leases renewed", running=len(self._running))
            backoff.reset()
            self._renewed_at = time.monotonic()
            for entry_id in lost:
                running = self._running.get(entry_id)
                if running is not None and not running.reason:
                    LEASES_LOST.inc()
                    running.halt(TAKEN_OVER)
            await anyio.sleep(self.lease_s / 3)

    async def _watch_loop(self) -> None:
        """Stop calls whose job was cancelled, erased or taken over, even if the Space is silent."""
        while True:
            await anyio.sleep(WATCH_INTERVAL_S)
            watched = [r for r in self._running.values() if not r.reason]
            if not watched:
                continue
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for running in watched:
                        pipe.hmget(self.keys.job(running.claim.job_id), ["status", "fence"])
                    rows = await pipe.execute()
            except REDIS_DOWN:
                continue
            for running, (status, fence) in zip(watched, rows, strict=True):
                if status is None:
                    running.halt(MISSING)
                elif status == CANCELLED.encode():
                    running.halt(CANCELLED)
                elif fence != running.claim.fence.encode():
                    running.halt(TAKEN_OVER)

    async def _housekeeping_loop(self) -> None:
        reap_at = 0.0
        # Replicas spread their sweeps out; not crypto.
        sweep_at = time.monotonic() + SWEEP_INTERVAL_S * random.random()  # noqa: S311
        while not self._stopping.is_set():
            if isinstance(self.blobs, FileBlobStore) and time.monotonic() >= sweep_at:
                sweep_at = time.monotonic() + SWEEP_INTERVAL_S
                log.info("expired blob files removed", count=await self.blobs.sweep())
            try:
                await self.due.move()
                if time.monotonic() >= reap_at:
                    reap_at = time.monotonic() + max(self.lease_s, 5.0)
                    reaped = await self.reaper.reap()
                    if reaped:
                        log.info("consumers removed", names=reaped)
            except REDIS_DOWN as exc:
                self._note_outage(exc)
            with anyio.move_on_after(HOUSEKEEPING_INTERVAL_S):
                await self._stopping.wait()
