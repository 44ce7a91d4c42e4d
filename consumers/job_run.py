"""One job from claim to its outcome: read the photo, call the Space, store what came of it.

Every write is fenced by the claim's attempt. A run can be stopped from outside (`Running.halt`):
the job was cancelled or erased, another consumer took it over, or the process is shutting
down. The reason decides what happens to whatever the call returns: a taken-over job is never
written to (its new owner's work must not be overwritten), a cancelled one only has its entry
acknowledged, and one stopped by a shutdown is handed back for immediate reclaim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from consumers.errors import ErrorKind, QuotaWait, SpaceError
from consumers.progress import ProgressWriter
from consumers.retry import plan_failure
from consumers.space_client import SpaceUpdate
from jobs.backoff import Backoff
from jobs.blobs import RedisBlobStore
from jobs.durable import NotDurable
from jobs.logs import get_logger
from jobs.model import JobRecord, Status
from jobs.redis_conn import REDIS_DOWN
from jobs.script_defs import JobVerdict
from jobs.store import Claim, FollowersWaiting, JobStore, now_ms
from metrics.definitions import (
    ENDS_NOT_DURABLE,
    JOB_END_TO_END,
    JOB_QUEUE_WAIT,
    JOBS_DEAD_LETTERED,
    JOBS_FINISHED,
    JOBS_RETRIED,
    JOBS_STARTED,
    LEASES_LOST,
)

if TYPE_CHECKING:
    from consumers.space_call import CallResult, SpaceCaller
    from jobs.blobs import BlobStore
    from jobs.settings import Settings

__all__ = ["JobRunner", "Running"]

log = get_logger("consumers.job_run")
T = TypeVar("T")

# Why a run was stopped from outside.
CANCELLED, MISSING, TAKEN_OVER, SHUTDOWN = "cancelled", "missing", "taken_over", "shutdown"


@dataclass(eq=False)
class Running:
    """A job this process is running: its claim, and the flag its Space call polls to stop."""

    claim: Claim
    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = ""

    def halt(self, reason: str) -> None:
        """Stop the call; the first reason wins (a later 'shutdown' must not hide a take-over)."""
        if not self.reason:
            self.reason = reason
            log.info("stopping job", job_id=self.claim.job_id, attempt=self.claim.attempt, reason=reason)
        self.stop.set()


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        blobs: BlobStore,
        caller: SpaceCaller,
        *,
        consumer: str,
        give_up: anyio.Event,
        to_release: list[str],
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.caller = caller
        self.consumer = consumer
        self.give_up = give_up  # set when the process stops waiting for Redis to come back
        self.to_release = to_release  # entries the consumer hands back when it exits

    async def persist(self, write: Callable[[], Awaitable[T]]) -> T:
        """Run a Redis call, waiting out an outage: a finished call's result must not be lost."""
        backoff = Backoff()
        while True:
            try:
                return await write()
            except REDIS_DOWN as exc:
                if self.give_up.is_set():
                    raise
                delay = backoff.next_delay()
                log.warning("redis unavailable, will retry", error=str(exc), retry_in_s=round(delay, 2))
                await anyio.sleep(delay)

    async def end(
        self, write: Callable[..., Awaitable[JobVerdict]], claim: Claim, *args: Any, **kwargs: Any
    ) -> JobVerdict:
        """A job's end (finish or dead letter), waiting out outages; its verdict.

        With durable acknowledgements on, the end counts as done once the replicas confirmed it. If
        they did not in time, it still happened on the primary: logged and counted (a fail-over now
        could make the job run once more, which the fence keeps harmless), never retried blindly."""
        try:
            return await self.persist(partial(write, claim, *args, **kwargs))
        except NotDurable as exc:
            ENDS_NOT_DURABLE.inc()
            log.warning("job end not confirmed by the replicas", confirmed=exc.confirmed, wanted=exc.wanted)
            return JobVerdict.of(exc.reply)

    async def run(self, running: Running) -> str:
        """Run the job; returns the outcome (for logs and the run-time histogram)."""
        claim = running.claim
        # The claim script read the job (and, with blobs in Redis, its photo) in the same step.
        record = claim.record or await self.persist(partial(self.store.get, claim.job_id))
        if record is None:
            await self.persist(partial(self.store.ack, claim.entry_id))
            return MISSING
        if record.status is Status.CANCELLED:  # cancelled right after the claim
            running.halt(CANCELLED)
            return await self._settle_stopped(running)
        photo = claim.photo
        if photo is None:
            photo = await self.persist(partial(self.blobs.get, record.input_key))
        if photo is None:
            return await self._fail(
                running, record, "input_expired", "The uploaded photo expired before the job's turn."
            )
        if claim.attempt == 1 and record.created_at:
            JOB_QUEUE_WAIT.observe(max(now_ms() - record.created_at, 0) / 1000)
        JOBS_STARTED.inc()
        log.info("job started", failures=claim.failures)
        writer = ProgressWriter(self.store, claim, partial(self._write_refused, running))
        async with anyio.create_task_group() as reports:
            reports.start_soon(writer.run)
            outcome = await self._call(running, record, photo, writer)
            reports.cancel_scope.cancel()  # a pending progress write is moot now
        if isinstance(outcome, SpaceError | QuotaWait):
            return await self._after_failure(running, record, outcome)
        return await self._after_success(running, record, outcome)

    async def _call(
        self, running: Running, record: JobRecord, photo: bytes, writer: ProgressWriter
    ) -> CallResult | SpaceError | QuotaWait:
        """The Space call's result, or the classified reason it has none."""

        def on_update(update: SpaceUpdate) -> None:  # on the event loop
            if not running.stop.is_set():
                writer.offer(update)

        try:
            return await self.caller.call(record.params, photo, on_update=on_update, stop=running.stop)
        except (SpaceError, QuotaWait) as error:
            return error
        except Exception as exc:  # a bug in the call path must not kill the consumer
            log.exception("space call crashed")
            return SpaceError(ErrorKind.TRANSIENT, "internal_error", f"{type(exc).__name__}: {exc}")

    async def _after_success(self, running: Running, record: JobRecord, result: CallResult) -> str:
        claim = running.claim
        if running.reason == TAKEN_OVER:
            log.info("result discarded", reason=running.reason)
            return "discarded"
        if running.reason in (CANCELLED, MISSING):
            return await self._settle_stopped(running)
        result_key = f"out/{claim.job_id}/{claim.run_name}"
        # With blobs in Redis, finish() stores the result in the same step (one round trip less,
        # and a fenced run stores nothing); elsewhere it is stored first.
        in_redis = isinstance(self.blobs, RedisBlobStore)
        if not in_redis:
            await self.persist(
                partial(self.blobs.put, result_key, result.data, self.settings.blob_ttl_seconds)
            )
        # Jobs merged into this one each get their own copy first (finish() names them); a copy made
        # for a follower that is cancelled before finish() lands is left to the blob TTL.
        copies: dict[str, str] = {}
        while True:
            try:
                verdict = await self.end(
                    self.store.finish,
                    claim,
                    Status.SUCCEEDED,
                    copies=copies,
                    result=(result_key, result.data) if in_redis else None,
                    result_key=result_key,
                    result_type=result.media_type,
                    token_alias=result.token_alias,
                    progress=1,
                    phase="done",
                )
                break
            except FollowersWaiting as waiting:
                for job_id in waiting.followers:
                    copies[job_id] = f"out/{job_id}/{claim.run_name}"
                    await self.persist(
                        partial(self.blobs.put, copies[job_id], result.data, self.settings.blob_ttl_seconds)
                    )
        if verdict is JobVerdict.WITHDRAWN:  # its owner erased it; the followers have their copies
            await self.persist(partial(self.blobs.delete, result_key))
            log.info("job succeeded for the jobs merged into it", followers=len(copies))
            self._finished("succeeded", record)
            return "succeeded"
        if verdict is not JobVerdict.OK and not await self._ours(claim, result_key):
            await self.persist(partial(self.blobs.delete, result_key))
            if verdict is JobVerdict.FENCED:
                LEASES_LOST.inc()
            log.info("result discarded", verdict=verdict)
            return "discarded"
        log.info("job succeeded", bytes=len(result.data), token=result.token_alias)
        self._finished("succeeded", record)
        return "succeeded"

    async def _ours(self, claim: Claim, result_key: str) -> bool:
        """Did an earlier try of our finish() land (its reply lost in an outage)?"""
        fields = await self.persist(
            partial(self.store.redis.hmget, self.store.keys.job(claim.job_id), ["fence", "result_key"])
        )
        return fields == [claim.fence.encode(), result_key.encode()]

    async def _after_failure(self, running: Running, record: JobRecord, error: SpaceError | QuotaWait) -> str:
        claim = running.claim
        if running.reason == TAKEN_OVER:
            return "discarded"
        if running.reason in (CANCELLED, MISSING):
            return await self._settle_stopped(running)
        if running.reason == SHUTDOWN:
            self.to_release.append(claim.entry_id)
            return "released"
        kind = "quota" if isinstance(error, QuotaWait) else error.kind.value
        code = "quota_wait" if isinstance(error, QuotaWait) else error.code
        log.warning("space call failed", code=code, kind=kind)
        plan = plan_failure(error, claim.failures, self.settings, paused_until=self.caller.paused_until())
        if plan.action == "fail":
            return await self._fail(running, record, plan.error_code, plan.error_message)
        if plan.action == "dead_letter":
            verdict = await self.end(
                self.store.dead_letter,
                claim,
                reason="max_attempts",
                error_code=plan.error_code,
                error_message=plan.error_message,
                count_failure=True,
                consumer=self.consumer,
            )
            if verdict is JobVerdict.OK:
                JOBS_DEAD_LETTERED.labels(reason="max_attempts").inc()
                self._finished("dead_lettered", record)
                log.warning("job dead-lettered", code=plan.error_code)
                return "dead_lettered"
            return self._refused(verdict)
        verdict = await self.persist(
            partial(
                self.store.retry,
                claim,
                due_ms=plan.due_ms,
                status=plan.status,
                phase=plan.phase,
                count_failure=plan.count_failure,
                error_code=plan.error_code,
                error_message=plan.error_message,
            )
        )
        if verdict is not JobVerdict.OK:
            return self._refused(verdict)
        JOBS_RETRIED.labels(error_class=kind).inc()
        resume_in_s = round(plan.due_ms / 1000 - time.time(), 1)
        log.info("job parked", status=plan.status.value, resume_in_s=resume_in_s)
        return plan.status.value

    async def _fail(self, running: Running, record: JobRecord, code: str, message: str) -> str:
        verdict = await self.end(
            self.store.finish,
            running.claim,
            Status.FAILED,
            error_code=code,
            error_message=message,
            phase="failed",
        )
        if verdict is not JobVerdict.OK:
            return self._refused(verdict)
        log.info("job failed", code=code)
        self._finished("failed", record)
        return "failed"

    async def _settle_stopped(self, running: Running) -> str:
        """The job was cancelled or erased while running: only its entry is acknowledged.

        finish() never overwrites a terminal state and acks the entry of an erased job.
        """
        verdict = await self.end(self.store.finish, running.claim, Status.CANCELLED)
        log.info("job stopped", reason=running.reason, verdict=verdict)
        return CANCELLED

    def _refused(self, verdict: JobVerdict) -> str:
        if verdict is JobVerdict.FENCED:
            LEASES_LOST.inc()
        log.info("write refused", verdict=verdict)
        return "discarded"

    @staticmethod
    def _finished(outcome: str, record: JobRecord) -> None:
        JOBS_FINISHED.labels(outcome=outcome).inc()
        if record.created_at:
            JOB_END_TO_END.labels(outcome=outcome).observe(max(now_ms() - record.created_at, 0) / 1000)

    @staticmethod
    def _write_refused(running: Running, verdict: JobVerdict) -> None:
        """A progress write was refused: the job is no longer this run's to work on."""
        if verdict is JobVerdict.FENCED:
            running.halt(TAKEN_OVER)
        elif verdict is JobVerdict.MISSING:
            running.halt(MISSING)
        elif verdict is JobVerdict.CANCELLED:
            running.halt(CANCELLED)
