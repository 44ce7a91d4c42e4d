"""A small pool of decode workers (sandbox/worker.py) that every decode of untrusted bytes goes through.

Each worker decodes one image at a time under its own memory and CPU limits; the pool adds a
wall-clock deadline. A worker that goes over any of them, crashes, or whose request is abandoned
(the client went away: the caller's task is cancelled) is killed at once and replaced in the
background, and the request gets an ImageRefused (422 image_too_complex), never a stall: the other
workers keep serving.

Turns are handed out fairly: when a worker frees up, the waiting request whose client has the
fewest decodes running goes next (oldest first among equals), so a client that sends a flood of
costly files waits behind its own requests while everybody else's upload takes the next worker.
A client may have at most `per_client_waiting` requests waiting and the pool at most
`max_waiting` (then `503 decoder_busy` with Retry-After).

The pool size follows memory as well as cores (auto_workers): each worker may use up to its
memory limit, and a pool that could use more than half the memory available is made smaller.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from metrics.definitions import DECODE_SECONDS, DECODE_WORKERS_REPLACED
from sandbox import wire
from sandbox.errors import ImageRefused, too_complex
from sandbox.photo import NormalizedPhoto
from sandbox.picture import CheckedPicture
from sandbox.probe import MAX_JPEG_SCANS

if TYPE_CHECKING:
    from jobs.settings import Settings

__all__ = ["DecodePool", "PoolLimits", "auto_workers"]

_ROOT = Path(__file__).resolve().parent.parent
BUSY_RETRY_AFTER_S = 5
SPAWN_RETRY_S = 1.0
# A fresh process now and then: whatever a codec leaks over many images goes with the old one.
RECYCLE_AFTER_TASKS = 1_000
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
# A worker's whole environment besides _KEEP_ENV: no tokens, no Redis URL, nothing of ours.
# glibc reserves 64 MB of address space per malloc arena otherwise, which RLIMIT_AS counts.
_WORKER_ENV = {"PYTHONPATH": str(_ROOT), "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2"}


@dataclass(frozen=True, slots=True)
class PoolLimits:
    workers: int = 0  # 0: auto_workers(memory_mb)
    memory_mb: int = 1024
    cpu_seconds: float = 5.0
    timeout_seconds: float = 10.0
    max_waiting: int = 64
    per_client_waiting: int = 16
    queue_timeout_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, *, role: Literal["ingest", "consumer"]) -> PoolLimits:
        """Auto size: ingest shares the cores among its uvicorn processes; a consumer checks pictures
        of at most 1 MP, which one worker does in milliseconds."""
        workers = settings.decode_workers
        if not workers:
            if role == "consumer":
                workers = 1
            else:
                workers = max(1, auto_workers(settings.decode_memory_mb) // settings.ingest_workers)
        return cls(
            workers=workers,
            memory_mb=settings.decode_memory_mb,
            cpu_seconds=settings.decode_cpu_seconds,
            timeout_seconds=settings.decode_timeout_seconds,
        )


def _available_memory() -> int:
    """Bytes this process may still use: the smaller of MemAvailable and its cgroup's room."""
    available = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = int(limit) - used
            available = min(available, room) if available else room
    except (OSError, ValueError):
        pass
    return available


def auto_workers(memory_mb: int) -> int:
    """One worker per core, but never more than half the available memory allows."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    available = _available_memory()
    if available and memory_mb > 0:
        return max(1, min(cores, available // 2 // (memory_mb * 1024 * 1024)))
    return max(1, cores)


class _Worker:
    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdin is not None
        assert process.stdout is not None
        self._stdin = process.stdin
        self._replies = BufferedByteReceiveStream(process.stdout)
        self.tasks = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    async def receive(self) -> wire.Reply:
        size = int.from_bytes(await self._replies.receive_exactly(wire.HEADER), "big")
        return wire.decode_reply(await self._replies.receive_exactly(size))

    async def call(self, payload: bytes) -> wire.Reply:
        await self._stdin.send(wire.frame(payload))
        await self._stdin.send(payload)
        self.tasks += 1
        return await self.receive()

    async def exit_status(self) -> int | None:
        """The status of a worker whose pipe closed (it is exiting; given a moment to finish)."""
        with anyio.move_on_after(2):
            await self.process.wait()
        return self.process.returncode

    async def kill(self) -> None:
        with anyio.CancelScope(shield=True):
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()
            await self.process.aclose()


@dataclass(slots=True)
class _Waiter:
    client: str
    seq: int
    granted: anyio.Event = field(default_factory=anyio.Event)
    slot: int | None = None


class DecodePool:
    """Use as `async with DecodePool(limits) as pool:`; the workers live as long as the block."""

    def __init__(self, limits: PoolLimits | None = None) -> None:
        self.limits = limits or PoolLimits()
        self.size = self.limits.workers or auto_workers(self.limits.memory_mb)
        self._workers: list[_Worker | None] = [None] * self.size
        self._free: list[int] = []
        self._waiters: list[_Waiter] = []
        self._running: Counter[str] = Counter()
        self._last_turn: dict[str, int] = {}
        self._seq = itertools.count()
        self._tg: anyio.abc.TaskGroup | None = None
        self.replaced: Counter[str] = Counter()  # workers killed or lost and started again, by reason

    # --- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> DecodePool:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        for slot in range(self.size):
            self._tg.start_soon(self._refill, slot)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        for worker in self._workers:
            if worker is not None:
                await worker.kill()
        self._workers = [None] * self.size

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and the health view)."""
        return [w.pid for w in self._workers if w is not None and w.process.returncode is None]

    async def _spawn(self) -> _Worker:
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV} | _WORKER_ENV
        process = await anyio.open_process(
            [
                sys.executable,
                "-m",
                "sandbox.worker",
                "--memory-mb",
                str(self.limits.memory_mb),
                "--cpu-seconds",
                str(self.limits.cpu_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(_ROOT),
            start_new_session=True,  # the terminal's Ctrl-C is for the service, not its workers
        )
        worker = _Worker(process)
        try:
            with anyio.fail_after(60):
                ready = await worker.receive()
            if not ready.ok:
                raise RuntimeError("decode worker did not start")
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def _refill(self, slot: int) -> None:
        """Start the slot's worker (again), then let requests use the slot."""
        old = self._workers[slot]
        self._workers[slot] = None
        if old is not None:
            await old.kill()
        while True:
            try:
                worker = await self._spawn()
                break
            except (OSError, RuntimeError, TimeoutError, anyio.EndOfStream, anyio.IncompleteRead):
                await anyio.sleep(SPAWN_RETRY_S)
        self._workers[slot] = worker
        assert self._tg is not None
        self._tg.start_soon(self._watch, slot, worker)
        self._free.append(slot)
        self._dispatch()

    async def _watch(self, slot: int, worker: _Worker) -> None:
        """A worker that dies while idle (killed from outside, out of memory) is replaced at once."""
        await worker.process.wait()
        if self._workers[slot] is worker and slot in self._free:
            self._free.remove(slot)
            self._replaced("died_idle")
            await self._refill(slot)

    # --- turns ----------------------------------------------------------------------------------

    def _grant(self, client: str) -> int:
        self._running[client] += 1
        self._last_turn[client] = next(self._seq)
        return self._free.pop()

    def _dispatch(self) -> None:
        """Next: the client with the fewest decodes running, then the one served longest ago."""
        while self._free and self._waiters:
            waiter = min(
                self._waiters,
                key=lambda w: (self._running[w.client], self._last_turn.get(w.client, -1), w.seq),
            )
            self._waiters.remove(waiter)
            waiter.slot = self._grant(waiter.client)
            waiter.granted.set()

    def _done(self, client: str) -> None:
        self._running[client] -= 1
        if self._running[client] <= 0:
            del self._running[client]
            if not any(w.client == client for w in self._waiters):
                self._last_turn.pop(client, None)

    async def _turn(self, client: str) -> int:
        if self._free and not self._waiters:
            return self._grant(client)
        if len(self._waiters) >= self.limits.max_waiting:
            raise ImageRefused(
                503,
                "decoder_busy",
                f"Too many images are waiting to be decoded; retry in {BUSY_RETRY_AFTER_S} s.",
            )
        if sum(1 for w in self._waiters if w.client == client) >= self.limits.per_client_waiting:
            raise ImageRefused(
                429,
                "too_many_decodes",
                f"This client already has {self.limits.per_client_waiting} images waiting to be decoded.",
            )
        waiter = _Waiter(client, next(self._seq))
        self._waiters.append(waiter)
        try:
            with anyio.fail_after(self.limits.queue_timeout_seconds):
                await waiter.granted.wait()
        except BaseException as exc:
            if waiter.slot is not None:  # granted at the moment it gave up: hand the turn on
                self._done(client)
                self._free.append(waiter.slot)
                self._dispatch()
            else:
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise ImageRefused(
                    503, "decoder_busy", f"No decoder was free in time; retry in {BUSY_RETRY_AFTER_S} s."
                ) from None
            raise
        assert waiter.slot is not None
        return waiter.slot

    # --- one task -------------------------------------------------------------------------------

    def _replaced(self, reason: str) -> None:
        self.replaced[reason] += 1
        DECODE_WORKERS_REPLACED.labels(reason=reason).inc()

    async def _run(self, task: wire.Task, client: str) -> wire.Reply:
        payload = wire.encode(task)
        started = time.perf_counter()
        outcome = "abandoned"
        try:
            reply = await self._on_worker(payload, client)
            outcome = "ok" if reply.ok else "refused"
        except ImageRefused as exc:
            outcome = exc.code
            raise
        finally:
            DECODE_SECONDS.labels(
                task=type(task).__name__.removesuffix("Task").lower(), outcome=outcome
            ).observe(time.perf_counter() - started)
        if not reply.ok:
            raise ImageRefused(reply.status, reply.code, reply.message)
        return reply

    async def _on_worker(self, payload: bytes, client: str) -> wire.Reply:
        while True:
            slot = await self._turn(client)
            worker = self._workers[slot]
            assert worker is not None
            assert self._tg is not None
            if worker.process.returncode is None:
                break
            self._done(client)  # died while idle, before its watcher noticed: another turn
            self._replaced("died_idle")
            self._tg.start_soon(self._refill, slot)
        replace: str | None = "abandoned"
        try:
            with anyio.fail_after(self.limits.timeout_seconds):
                reply = await worker.call(payload)
            if reply.retire:
                replace = "retired"
            elif worker.tasks >= RECYCLE_AFTER_TASKS:
                replace = "recycled"
            else:
                replace = None
            return reply
        except TimeoutError:
            replace = "over_time"
            raise too_complex(f"Decoding it took longer than {self.limits.timeout_seconds:g} s.") from None
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ):
            status = await worker.exit_status()
            if status == -signal.SIGXCPU:
                replace = "over_cpu"
                raise too_complex(
                    f"Decoding it took more than {self.limits.cpu_seconds:g} s of CPU."
                ) from None
            replace = "crashed"
            raise too_complex(
                f"The decoder gave up on this file (exit status {status}): it is malformed or too large."
            ) from None
        finally:
            # Cancelled (the request was abandoned), over time, dead or retiring: the worker is killed
            # and replaced in the background, and its slot waits for the new one.
            self._done(client)
            if replace is not None:
                self._replaced(replace)
                self._tg.start_soon(self._refill, slot)
            else:
                self._free.append(slot)
            self._dispatch()

    # --- what callers use -----------------------------------------------------------------------

    async def normalize(
        self, data: bytes, *, max_pixels: int, max_scans: int = MAX_JPEG_SCANS, client: str = ""
    ) -> NormalizedPhoto:
        reply = await self._run(wire.NormalizeTask(data, max_pixels, max_scans), client)
        return NormalizedPhoto(reply.data, reply.width, reply.height)

    async def check_picture(self, data: bytes, *, width: int, height: int, photo: bytes) -> CheckedPicture:
        reply = await self._run(wire.CheckTask(data, width, height, photo), "")
        return CheckedPicture(reply.media_type, reply.width, reply.height, reply.same_as_input)

    async def convert(self, data: bytes, fmt: str, *, client: str = "") -> bytes:
        reply = await self._run(wire.ConvertTask(data, fmt), client)
        assert reply.data is not None
        return reply.data
