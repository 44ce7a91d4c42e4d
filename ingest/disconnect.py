"""Work that stops when its client goes away: an abandoned upload must not keep a decoder busy.

uvicorn does not cancel a handler when its client disconnects; it only answers the app's next
`receive()` with `http.disconnect`. Once the request body has been read, that next message can
only be the disconnect, so a watcher waits for it beside the work and cancels the work when it
comes (the decode pool then kills the worker that was decoding for it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ingest.problems import Problem

__all__ = ["ClientGone", "unless_disconnected"]

T = TypeVar("T")
Receive = Callable[[], Awaitable[object]]


class ClientGone(Problem):
    """Raised instead of a result nobody will read (logged as such in the request log)."""

    def __init__(self) -> None:
        super().__init__(400, "client_disconnected", "Client went away", "The client closed the connection.")


async def unless_disconnected(receive: Receive | None, work: Callable[[], Awaitable[T]]) -> T:
    """`await work()`, cancelled if the client disconnects first (raises ClientGone then).

    Call it only after the request body has been read in full: the watcher consumes messages.
    """
    if receive is None:
        return await work()
    outcome: list[T] = []
    failed: list[Exception] = []

    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while True:
                message = await receive()
                if isinstance(message, dict) and message.get("type") == "http.disconnect":
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        try:
            outcome.append(await work())
        except Exception as exc:  # noqa: BLE001 - re-raised below, not wrapped in an ExceptionGroup
            failed.append(exc)
        tg.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if not outcome:
        raise ClientGone
    return outcome[0]
