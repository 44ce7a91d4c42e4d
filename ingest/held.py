"""Admission of held requests: a long-poll holds one of its client's stream slots.

A held request (ingest/long_poll.py) costs what an open SSE stream costs: a connection, a watch on
the events hub, a little memory, for up to GHIBLI_LONG_POLL_SECONDS. So it takes a slot of the same
per-client and per-process caps (ingest/streams.py: GHIBLI_MAX_STREAMS_PER_CLIENT, GHIBLI_MAX_STREAMS).
A client over a cap is not refused: its request is answered at once with the current state, like an
ordinary poll (old clients count every answer as one of their polls, and a 429 would cost them one
just the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ingest.problems import Problem
from jobs.logs import get_logger

if TYPE_CHECKING:
    from litestar.types import Scope

    from ingest.services import Services

__all__ = ["held_request"]

log = get_logger("ingest.held")


@contextmanager
def held_request(services: Services, scope: Scope) -> Iterator[bool]:
    """May this request be held open? The one admission point of every long-poll."""
    client = services.client_address.bucket(scope)
    try:
        slot = services.streams.acquire(client)
    except Problem as over:
        log.info("held request answered at once", status=over.status_code, limit=over.detail)
        yield False
        return
    try:
        yield True
    finally:
        slot.release()
