"""Webhooks of a job: what a subscription stores, the outbox, and the body of each delivery.

How an event comes about: every state change of a job runs `emit` (jobs/lua/prelude.lua), which
calls `webhook_capture` (jobs/lua/webhook_capture.lua) in the same script. For a job with a
subscription (fields written at submission, below) it turns the change into an event and appends
it to the job's own outbox list together with a snapshot of the job hash at that version, and
marks the job due in one ZSET. Capture is atomic with the change itself, so no event is lost
while no dispatcher runs, and every event carries the exact state it announces.

- `started`: the first time the job runs (status `running`), once per job.
- `progress`: any later non-final change (progress, phase, retrying, waiting for quota). Coalesced:
  a newer progress snapshot replaces an older one still in the outbox, the dispatcher sends at
  most one per GHIBLI_WEBHOOK_PROGRESS_INTERVAL_SECONDS per job, and a progress event that a newer
  event has overtaken is dropped instead of sent.
- `completed`: a terminal status (succeeded, failed, cancelled).

`ghibli webhooks` (webhooks/dispatch.py) delivers each job's outbox in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from jobs.model import JobRecord
from jobs.wire import JobView, job_view

__all__ = [
    "DEFAULT_EVENTS",
    "EVENTS",
    "JobEvent",
    "OutboxItem",
    "WebhookKeys",
    "event_body",
    "parse_events",
    "subscription_fields",
]

EVENTS = ("started", "progress", "completed")
DEFAULT_EVENTS = ("completed",)


def parse_events(raw: str | None) -> tuple[str, ...]:
    """'started, completed' (commas or spaces) -> ('started', 'completed'); empty: the default.

    Raises ValueError naming what is not an event.
    """
    names = [n for n in (raw or "").replace(",", " ").split() if n]
    if not names:
        return DEFAULT_EVENTS
    unknown = [n for n in names if n not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event {unknown[0][:30]!r}; choose from {', '.join(EVENTS)}")
    return tuple(e for e in EVENTS if e in names)


@dataclass(frozen=True, slots=True)
class WebhookKeys:
    """The outbox keys, under the same hash-tag prefix as every other key."""

    prefix: str = "{ghibli}:"

    @property
    def due(self) -> str:
        """ZSET of job ids with events to deliver, scored by when (ms) to look at them next."""
        return f"{self.prefix}wh:due"

    @property
    def queue_prefix(self) -> str:
        return f"{self.prefix}wh:q:"

    @property
    def state_prefix(self) -> str:
        return f"{self.prefix}wh:s:"

    def queue(self, job_id: str) -> str:
        """LIST of a job's undelivered events, oldest first (JSON `OutboxItem`s)."""
        return f"{self.queue_prefix}{job_id}"

    def state(self, job_id: str) -> str:
        """HASH of a job's delivery state: the head event's attempts, the lease, last progress sent."""
        return f"{self.state_prefix}{job_id}"


def subscription_fields(
    keys: WebhookKeys, job_id: str, url: str, events: tuple[str, ...], *, ttl_s: int
) -> dict[str, str]:
    """Job hash fields that make webhook_capture record this job's events.

    The outbox key names travel in the hash so the capture code needs no key schema of its own.
    """
    return {
        "webhook_url": url,
        "wh_events": "," + ",".join(events) + ",",
        "wh_queue": keys.queue(job_id),
        "wh_state": keys.state(job_id),
        "wh_due": keys.due,
        "wh_ttl": str(ttl_s),
    }


class OutboxItem(msgspec.Struct, frozen=True):
    """One captured event: its webhook-id, kind, when it happened (ms) and the job hash then."""

    id: str
    job: str
    type: str
    at: int
    snap: dict[str, str]

    @property
    def key_id(self) -> str:
        return self.snap.get("key_id", "")

    @property
    def url(self) -> str:
        return self.snap.get("webhook_url", "")


class JobEvent(JobView, frozen=True, kw_only=True):
    """A delivery's body: the job status document (as GET /v1/jobs/{id} shows it) with the
    Standard Webhooks top-level `type` (job.started, job.progress, job.completed) and `timestamp`
    (when the event happened; the attempt's time is in the webhook-timestamp header)."""

    type: str
    timestamp: datetime


def event_body(item: OutboxItem) -> bytes:
    """The exact bytes sent (and signed); the same for every attempt of one event."""
    raw = {k.encode(): v.encode() for k, v in item.snap.items()}
    view = job_view(JobRecord.from_hash(item.job, raw))
    event = JobEvent(
        **msgspec.structs.asdict(view),
        type=f"job.{item.type}",
        timestamp=datetime.fromtimestamp(item.at / 1000, tz=UTC),
    )
    return msgspec.json.encode(event)
