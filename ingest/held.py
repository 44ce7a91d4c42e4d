"""Admission of held requests: how many long-polls one client may keep open at once.

A held request (ingest/long_poll.py) costs what an open SSE stream costs: a connection, a watch on
the events hub, a little memory, for up to GHIBLI_LONG_POLL_SECONDS. So it is bounded per client
like one. Every held request is admitted through `held_request()` and nothing else, so the per-client
cap on open streams can take over here in one place. A client over the cap is not refused: its
request is answered at once with the current state, like an ordinary poll (old clients count
every answer as one of their polls, and a 429 would cost them one just the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from jobs.logs import get_logger

if TYPE_CHECKING:
    from litestar.types import Scope

    from ingest.services import Services

__all__ = ["HELD_PER_CLIENT", "HeldRequests", "held_request"]

log = get_logger("ingest.held")

# Per client and per ingest process; a placeholder until the per-client stream cap covers held requests.
HELD_PER_CLIENT = 8


class HeldRequests:
    """Open held requests per client address, in this process."""

    def __init__(self, per_client: int = HELD_PER_CLIENT) -> None:
        self.per_client = per_client
        self._open: dict[str, int] = {}

    def open_for(self, client: str) -> int:
        return self._open.get(client, 0)

    @contextmanager
    def slot(self, client: str) -> Iterator[bool]:
        """True: hold this request (and count it until the block ends); False: answer at once."""
        held = self._open.get(client, 0)
        if held >= self.per_client:
            log.info("held request answered at once", client_open=held, limit=self.per_client)
            yield False
            return
        self._open[client] = held + 1
        try:
            yield True
        finally:
            left = self._open[client] - 1
            if left:
                self._open[client] = left
            else:
                del self._open[client]


@contextmanager
def held_request(services: Services, scope: Scope) -> Iterator[bool]:
    """May this request be held open? The one admission point of every long-poll."""
    with services.held.slot(services.client_address(scope)) as admitted:
        yield admitted
