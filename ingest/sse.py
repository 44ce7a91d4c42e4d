"""Live job progress as Server-Sent Events.

The contract the web page and the CLI are built on (keep it exactly):
- `event: status`, `id: <job version>`, `data: <the status JSON of GET /v1/jobs/{id}>`;
- first the current snapshot, then every change; the stream ends after a terminal state;
- a `: ping` comment line every GHIBLI_SSE_KEEPALIVE_SECONDS (15 s) so proxies keep it open;
- `Last-Event-ID: v` (sent by EventSource on reconnect): the snapshot is sent only if the job's
  version is above v, otherwise the stream waits for the next change (or ends if the job is over).

Changes come from the process's one events reader (ingest/events.py), never from a Redis read per
viewer; on every keep-alive the viewer also re-reads its job once, so a change the reader missed
while Redis was away is still delivered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEventMessage, Stream

from ingest.events import EventsHub, Watch
from ingest.jobs_api import JOB_ID, job_not_found
from ingest.problems import problem_responses
from ingest.services import Services
from ingest.streams import StreamSlot
from jobs.model import JobRecord
from jobs.wire import job_view

__all__ = ["job_events"]

PING = b": ping\r\n\r\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_status(record: JobRecord) -> bytes:
    data = msgspec.json.encode(job_view(record)).decode()
    return ServerSentEventMessage(data=data, event="status", id=record.version).encode()


def _last_event_id(raw: str | None) -> int:
    try:
        return int(raw.strip()) if raw else 0
    except ValueError:
        return 0  # not one of ours: start from the snapshot


async def status_stream(
    hub: EventsHub,
    watch: Watch,
    record: JobRecord,
    after: int,
    keepalive_s: float,
    slot: StreamSlot | None = None,
) -> AsyncIterator[bytes]:
    """Events for one viewer: `watch` was registered before `record` (the snapshot) was read."""
    try:
        sent = after
        current: JobRecord | None = record
        while current is not None:
            if current.version > sent:
                yield encode_status(current)
                sent = current.version
            if current.status.terminal:
                return
            if await watch.changed(keepalive_s):
                if watch.gone:
                    return
                if watch.latest is not None and watch.latest.version > current.version:
                    current = watch.latest
            else:
                yield PING
                fresh = await hub.snapshot(watch)  # in case the events reader missed something
                if fresh is None or fresh.version > current.version:
                    current = fresh
    finally:
        hub.unsubscribe(watch)
        if slot is not None:
            slot.release()


@get(
    "/v1/jobs/{job_id:str}/events",
    summary="Live status of a job (Server-Sent Events)",
    description="`event: status` with `id:` the job's version and `data:` the status JSON, first the "
    "current snapshot and then every change, ending after a terminal state; `: ping` comments keep the "
    "connection alive. Reconnect with `Last-Event-ID` to receive only newer states.",
    tags=["jobs"],
    media_type="text/event-stream",
    response_description="An event stream",
    responses=problem_responses(400, 404, 429, 503),
)
async def job_events(
    request: Request[Any, Any, Any],
    job_id: FromPath[str],
    services: NamedDependency[Services],
    last_event_id: Annotated[
        str | None,
        HeaderParameter(name="Last-Event-ID", required=False, description="The last `id:` you received."),
    ] = None,
) -> Stream:
    hub = services.events
    if not JOB_ID.fullmatch(job_id):
        raise job_not_found()
    # Over the client's (429) or the process's (503) cap: refused before anything is held.
    slot = services.streams.acquire(services.client_address.bucket(request.scope))
    watch = hub.subscribe(job_id)
    try:
        record = await hub.snapshot(watch)
    except BaseException:
        hub.unsubscribe(watch)
        slot.release()
        raise
    if record is None:
        hub.unsubscribe(watch)
        slot.release()
        raise job_not_found()
    stream = status_stream(
        hub, watch, record, _last_event_id(last_event_id), services.settings.sse_keepalive_seconds, slot
    )
    slot.release_with(stream)  # a stream that is never iterated still gives its slot back
    return Stream(stream, media_type="text/event-stream", headers=_HEADERS)
