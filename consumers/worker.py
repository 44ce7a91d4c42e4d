"""The consumer: claim entries of the jobs stream, call the Space, store results, acknowledge.

Read top to bottom: `run` starts the loops; `_read_loop` claims new entries while a slot is free;
`_run_job` takes one entry from claim to XACK. Every write about a job is fenced by the attempt
its claim returned, so a consumer that lost a job can no longer touch it.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from anyio.abc import TaskGroup

from consumers.errors import ErrorKind, SpaceError
from consumers.space_call import SpaceCaller
from consumers.space_client import SpaceUpdate
from jobs.blobs import BlobStore
from jobs.logs import get_logger
from jobs.model import Status
from jobs.redis_conn import BLOCK_MS
from jobs.store import Claim, JobStore

if TYPE_CHECKING:
    from jobs.settings import Settings

__all__ = ["Consumer"]

log = get_logger("consumers.worker")


def _entries(reply: object) -> list[tuple[str, dict[bytes, bytes]]]:
    """XREADGROUP's reply as (entry id, fields), for RESP2 lists and RESP3 dicts alike."""
    if not reply:
        return []
    streams: Any = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, dict[bytes, bytes]]] = []
    for _stream, entries in streams:
        for entry_id, fields in entries:
            out.append((entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields))
    return out


class Consumer:
    def __init__(self, settings: Settings, store: JobStore, blobs: BlobStore, caller: SpaceCaller) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.caller = caller
        self.name = settings.resolved_consumer_name
        self._in_flight: dict[str, Claim] = {}
        self._slot_freed = anyio.Event()
        self._stopping = anyio.Event()
        self._workdir = Path(tempfile.mkdtemp(prefix="ghibli-consumer-"))

    async def run(self) -> None:
        """Work until SIGTERM/SIGINT, then let running calls finish within the grace period."""
        await self.store.ensure_group()
        log.info("consumer started", consumer=self.name, concurrency=self.settings.concurrency)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg)
            await self._read_loop(tg)
            with anyio.move_on_after(self.settings.shutdown_grace_seconds) as grace:
                while self._in_flight:
                    await self._wait_slot()
            if grace.cancelled_caught:
                log.warning("grace period over", abandoned=len(self._in_flight))
            tg.cancel_scope.cancel()
        log.info("consumer stopped", consumer=self.name)

    def stop(self) -> None:
        self._stopping.set()

    async def _watch_signals(self, tg: TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("stopping", signal=signal.Signals(signum).name)
                self.stop()
                return

    async def _wait_slot(self) -> None:
        self._slot_freed = anyio.Event()
        with anyio.move_on_after(1):
            await self._slot_freed.wait()

    async def _read_loop(self, tg: TaskGroup) -> None:
        redis = self.store.redis
        keys = self.store.keys
        while not self._stopping.is_set():
            free = self.settings.concurrency - len(self._in_flight)
            if free <= 0:
                await self._wait_slot()
                continue
            reply = await redis.xreadgroup(
                keys.group, self.name, {keys.stream: ">"}, count=free, block=BLOCK_MS
            )
            for entry_id, fields in _entries(reply):
                job_id = fields.get(b"job", b"").decode()
                claim = await self.store.claim(job_id, entry_id, self.name)
                if isinstance(claim, str):
                    log.info("entry skipped", job_id=job_id, reason=claim)
                    continue
                self._in_flight[entry_id] = claim
                tg.start_soon(self._run_job, claim)

    async def _run_job(self, claim: Claim) -> None:
        with structlog.contextvars.bound_contextvars(
            job_id=claim.job_id, attempt=claim.attempt, consumer=self.name
        ):
            try:
                await self._call_space(claim)
            finally:
                self._in_flight.pop(claim.entry_id, None)
                self._slot_freed.set()

    async def _call_space(self, claim: Claim) -> None:
        record = await self.store.get(claim.job_id)
        if record is None:
            await self.store.ack(claim.entry_id)
            return
        photo = await self.blobs.get(record.input_key)
        if photo is None:
            await self._fail(claim, "input_expired", "The uploaded photo expired before its turn.")
            return
        log.info("job started")
        stop_flag = threading.Event()  # read by the call's thread, set from here
        image_path = self._workdir / f"{claim.job_id}-{claim.attempt}.img"
        await anyio.Path(image_path).write_bytes(photo)
        try:
            result = await self.caller.call(
                record.params,
                image_path,
                on_update=partial(self._report_from_thread, claim, stop_flag),
                stop=stop_flag,
            )
        except SpaceError as error:
            log.warning("space call failed", code=error.code, kind=error.kind.value)
            if error.code == "cancelled":
                await self.store.ack(claim.entry_id)
                return
            # Retries, token cooling and the circuit breaker arrive with the consumer hardening;
            # until then every failure is final and visible, never a fake result.
            await self._fail(claim, error.code, error.message, kind=error.kind)
            return
        finally:
            await anyio.Path(image_path).unlink(missing_ok=True)
        result_key = f"out/{claim.job_id}/{claim.attempt}"
        await self.blobs.put(result_key, result.data, self.settings.blob_ttl_seconds)
        verdict = await self.store.finish(
            claim,
            Status.SUCCEEDED,
            result_key=result_key,
            result_type=result.media_type,
            token_alias=result.token_alias,
            progress=1,
            phase="done",
        )
        if verdict != "ok":
            await self.blobs.delete(result_key)
            log.info("result discarded", verdict=verdict)
        else:
            log.info("job succeeded", bytes=len(result.data))

    def _report_from_thread(self, claim: Claim, stop_flag: threading.Event, update: SpaceUpdate) -> None:
        anyio.from_thread.run(self._report, claim, stop_flag, update)

    async def _report(self, claim: Claim, stop_flag: threading.Event, update: SpaceUpdate) -> None:
        fields: dict[str, object] = {"phase": update.phase}
        if update.progress is not None:
            fields["progress"] = round(min(max(update.progress, 0.0), 1.0), 4)
        fields["queue_rank"] = -1 if update.queue_rank is None else update.queue_rank
        fields["queue_size"] = -1 if update.queue_size is None else update.queue_size
        fields["eta_seconds"] = -1 if update.eta_seconds is None else round(update.eta_seconds, 1)
        verdict = await self.store.update(claim, Status.RUNNING, **fields)
        if verdict != "ok":
            # Cancelled, erased, or taken over by another consumer: stop spending the Space.
            log.info("job no longer ours", verdict=verdict)
            stop_flag.set()

    async def _fail(
        self, claim: Claim, code: str, message: str, *, kind: ErrorKind = ErrorKind.PERMANENT
    ) -> None:
        await self.store.finish(claim, Status.FAILED, error_code=code, error_message=message, phase="failed")
        log.info("job failed", code=code, kind=kind.value)
