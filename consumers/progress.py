"""Progress of a running job, written to its status without slowing the Space call down.

The Space call only hands over the newest update (on the event loop, where its Job is watched); a
task writes it, at most every MIN_INTERVAL_S, so a chatty Space costs a handful of Redis writes
per second at most, and the call never waits for Redis. Progress never goes backwards within a
run: a Space may report several series (e.g. denoising, then painting).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from consumers.space_client import SpaceUpdate
from jobs.logs import get_logger
from jobs.model import Status
from jobs.redis_conn import REDIS_DOWN
from jobs.script_defs import JobVerdict
from jobs.store import Claim, JobStore

__all__ = ["ProgressWriter"]

log = get_logger("consumers.progress")

MIN_INTERVAL_S = 0.25


class ProgressWriter:
    def __init__(self, store: JobStore, claim: Claim, on_verdict: Callable[[JobVerdict], None]) -> None:
        self._store = store
        self._claim = claim
        self._on_verdict = on_verdict  # told when a write is refused (cancelled, taken over, gone)
        self._latest: SpaceUpdate | None = None
        self._wake = anyio.Event()
        self.progress = 0.0

    def offer(self, update: SpaceUpdate) -> None:
        """Called on the event loop for every update; returns without touching Redis."""
        self._latest = update
        self._wake.set()

    async def run(self) -> None:
        """Write the newest update whenever there is one; cancelled when the call ends.

        The first write waits MIN_INTERVAL_S too: a call that ends sooner writes no progress at all
        (its finish says everything), which saves fast calls a Redis round trip or two; on a real
        Space call, tens of seconds long, the first progress shows a quarter second later."""
        await anyio.sleep(MIN_INTERVAL_S)
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            update, self._latest = self._latest, None
            if update is not None:
                await self._write(update)
            await anyio.sleep(MIN_INTERVAL_S)

    async def _write(self, update: SpaceUpdate) -> None:
        fields: dict[str, object] = {"phase": update.phase}
        if update.progress is not None:
            self.progress = max(self.progress, round(min(max(update.progress, 0.0), 1.0), 4))
            fields["progress"] = self.progress
        fields["queue_rank"] = -1 if update.queue_rank is None else update.queue_rank
        fields["queue_size"] = -1 if update.queue_size is None else update.queue_size
        fields["eta_seconds"] = -1 if update.eta_seconds is None else round(update.eta_seconds, 1)
        with anyio.move_on_after(5):
            try:
                verdict = await self._store.update(self._claim, Status.RUNNING, **fields)
            except REDIS_DOWN as exc:
                log.debug("progress not written", error=str(exc))
                return
            if verdict is not JobVerdict.OK:
                self._on_verdict(verdict)
