"""Slots for held-open responses (SSE streams, long polls): a cap per client and one per process.

A held response costs a connection, a task and a watch for as long as the job runs, which can be
hours while it waits for GPU quota. So each client (address bucket, ingest/client_ip.py) may hold
GHIBLI_MAX_STREAMS_PER_CLIENT of them and the process GHIBLI_MAX_STREAMS; over either the request
is refused before anything is held: `429 too_many_streams` (this client) or `503 too_many_streams`
(the process), with Retry-After. The page and the CLI then poll the job's status instead.

Anything that holds a response open takes its slot here, so they all count against one cap:

    async with stream_slot(request):        # raises the 429/503 Problem when over
        ... hold the response ...

or, for a response that outlives the handler (a Stream's iterator), `services.streams.acquire`
and `slot.release()` when the iterator ends.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Request

from ingest.problems import Problem

__all__ = ["STREAM_RETRY_AFTER_S", "StreamSlot", "StreamSlots", "stream_slot"]

STREAM_RETRY_AFTER_S = 10


class StreamSlot:
    """One held response; `release` is idempotent (and runs when the slot is garbage-collected)."""

    def __init__(self, slots: StreamSlots, client: str) -> None:
        self.client = client
        self._finalizer = weakref.finalize(self, slots._release, client)

    def release(self) -> None:
        self._finalizer()

    def release_with(self, owner: object) -> None:
        """Also release when `owner` (e.g. a stream's iterator) is collected without ending."""
        weakref.finalize(owner, self.release)


class StreamSlots:
    def __init__(self, *, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self.held: Counter[str] = Counter()

    def acquire(self, client: str) -> StreamSlot:
        """A slot for `client`, or the 429/503 Problem that says to come back later (or to poll)."""
        if self.total and sum(self.held.values()) >= self.total:
            raise Problem(
                503,
                "too_many_streams",
                "Too many open streams",
                f"This server holds its maximum of {self.total} open streams; poll the job's status "
                f"instead, or retry in {STREAM_RETRY_AFTER_S} s.",
                headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
            )
        if self.per_client and self.held[client] >= self.per_client:
            raise Problem(
                429,
                "too_many_streams",
                "Too many open streams",
                f"At most {self.per_client} open streams per client; close one, poll the job's status "
                f"instead, or retry in {STREAM_RETRY_AFTER_S} s.",
                headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
            )
        self.held[client] += 1
        return StreamSlot(self, client)

    def _release(self, client: str) -> None:
        self.held[client] -= 1
        if self.held[client] <= 0:
            del self.held[client]

    @asynccontextmanager
    async def hold(self, client: str) -> AsyncIterator[StreamSlot]:
        slot = self.acquire(client)
        try:
            yield slot
        finally:
            slot.release()


def stream_slot(request: Request[Any, Any, Any]) -> AbstractAsyncContextManager[StreamSlot]:
    """`async with stream_slot(request):` holds one of the request's client's stream slots."""
    from ingest.services import services_from_state  # services holds the StreamSlots

    services = services_from_state(request.app.state)
    return services.streams.hold(services.client_address.bucket(request.scope))
