"""Long-polling: a status request held open until the job changes, or for at most a bound.

Old clients poll a fixed number of times and give up (the old product's page: 30 checks, ~42 s),
while a real Space call with its queue and quota waits takes minutes. Held requests stretch the
same 30 checks over 30 x GHIBLI_LONG_POLL_SECONDS, and cost no more than an SSE viewer: a held
request registers a watch on the process's events hub (ingest/events.py) and sleeps on it. The
only Redis work is the hub's one snapshot read when the request arrives (shared by requests for
the same job that arrive together); changes come from the hub's one reader, never from a read
per request. The bound stays under common proxy read time-outs (nginx 60 s, a Next.js rewrite
30 s, Heroku 30 s), so the answer arrives before a proxy cuts the request.

A held request ends early when its client disconnects (Litestar does not cancel ordinary
handlers then), so a client that gave up does not keep its slot (ingest/held.py) for the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from litestar import Request

from ingest.events import Watch
from ingest.held import held_request
from ingest.services import Services
from jobs.model import JobRecord

__all__ = ["Ready", "changed_since", "hold_until", "is_terminal"]

Ready = Callable[[JobRecord], bool]


def is_terminal(record: JobRecord) -> bool:
    return record.status.terminal


def changed_since(version: int) -> Ready:
    """Ready when the job is past `version` (or over: a terminal state never changes again)."""
    return lambda record: record.version > version or record.status.terminal


async def hold_until(
    services: Services,
    request: Request[Any, Any, Any],
    job_id: str,
    *,
    timeout_s: float,
    ready: Callable[[JobRecord], Ready],
) -> JobRecord | None:
    """The job once it is ready, or as it is after timeout_s; None if it does not exist.

    `ready` gets the snapshot read on arrival and returns the test the job must pass (so "changed
    since what the client has" can default to the snapshot's version).
    """
    hub = services.events
    with hub.watch(job_id) as watch:  # registered before the snapshot is read: no change is lost
        record = await hub.snapshot(watch)
        if record is None or timeout_s <= 0:
            return record
        test = ready(record)
        if test(record):
            return record
        with held_request(services, request.scope) as admitted:
            if not admitted:
                return record
            return await _wait(watch, record, test, timeout_s, request)


async def _wait(
    watch: Watch, record: JobRecord, ready: Ready, timeout_s: float, request: Request[Any, Any, Any]
) -> JobRecord | None:
    current: JobRecord | None = record
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancel_on_disconnect, request, tg.cancel_scope)
        with anyio.move_on_after(timeout_s):
            while current is not None and not ready(current):
                await watch.changed(timeout_s)
                if watch.gone:
                    current = None
                elif watch.latest is not None and watch.latest.version > current.version:
                    current = watch.latest
        tg.cancel_scope.cancel()
    return current


async def _cancel_on_disconnect(request: Request[Any, Any, Any], scope: anyio.CancelScope) -> None:
    """Read the connection's messages (any request body is discarded) until the client leaves."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
