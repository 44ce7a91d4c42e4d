"""What clients see of a job: the status JSON of the HTTP API, SSE events and webhooks."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from jobs.engine import EngineInfo
from jobs.model import JobParams, JobRecord, Status

__all__ = ["ErrorInfo", "JobLinks", "JobView", "QueueInfo", "ResultInfo", "WebhookInfo", "job_view"]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class QueueInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Where the job stands in the Space's own queue (None where the Space did not say)."""

    rank: int | None = None
    size: int | None = None
    eta_seconds: float | None = None


class ResultInfo(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    content_type: str
    width: int
    height: int


class WebhookInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The job's webhook deliveries (docs/webhooks.md); the URL itself is not shown."""

    events: list[str]
    attempts: int  # HTTP attempts, all events together
    delivered: int  # events delivered (2xx)
    pending: int  # events waiting to be delivered
    last_event: str | None = None
    last_outcome: str | None = None  # delivered, failed, given_up, gone
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None


class JobLinks(msgspec.Struct, frozen=True, kw_only=True):
    self: str
    events: str
    result: str | None = None


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: Status
    progress: float
    phase: str
    attempt: int
    params: JobParams
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue: QueueInfo | None = None
    resume_at: datetime | None = None
    error: ErrorInfo | None = None
    result: ResultInfo | None = None
    cache_hit: bool = False
    version: int = 0
    webhook: WebhookInfo | None = None
    # The painting engine the job was sent to (null for jobs from before engines were recorded).
    engine: EngineInfo | None = None
    links: JobLinks


def _when(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms > 0 else None


_PARKED = frozenset({Status.RETRYING, Status.WAITING_FOR_QUOTA})


def job_view(record: JobRecord, base: str = "/v1/jobs") -> JobView:
    here = f"{base}/{record.id}"
    succeeded = record.status is Status.SUCCEEDED and bool(record.result_key)
    queue = None
    if record.queue_rank >= 0 or record.eta_seconds >= 0:
        queue = QueueInfo(
            rank=record.queue_rank if record.queue_rank >= 0 else None,
            size=record.queue_size if record.queue_size >= 0 else None,
            eta_seconds=record.eta_seconds if record.eta_seconds >= 0 else None,
        )
    return JobView(
        id=record.id,
        status=record.status,
        progress=1.0 if record.status is Status.SUCCEEDED else round(record.progress, 4),
        phase=record.phase,
        attempt=record.attempt,
        params=record.params,
        created_at=_when(record.created_at) or datetime.now(UTC),
        started_at=_when(record.started_at),
        finished_at=_when(record.finished_at),
        queue=queue,
        # When a parked job runs again: after a retry's back-off or when the quota resumes.
        resume_at=_when(record.resume_at) if record.status in _PARKED else None,
        error=ErrorInfo(code=record.error_code, message=record.error_message) if record.error_code else None,
        result=ResultInfo(
            url=f"{here}/result",
            content_type=record.result_type or "image/webp",
            width=record.params.width,
            height=record.params.height,
        )
        if succeeded
        else None,
        cache_hit=record.cache_hit,
        version=record.version,
        webhook=_webhook_info(record),
        engine=EngineInfo(kind=record.engine_kind, name=record.engine_name) if record.engine_kind else None,
        links=JobLinks(self=here, events=f"{here}/events", result=f"{here}/result" if succeeded else None),
    )


def _webhook_info(record: JobRecord) -> WebhookInfo | None:
    if not record.wh_events:
        return None
    return WebhookInfo(
        events=[e for e in record.wh_events.split(",") if e],
        attempts=record.wh_attempts,
        delivered=record.wh_delivered,
        pending=record.wh_pending,
        last_event=record.wh_last_event or None,
        last_outcome=record.wh_last_outcome or None,
        last_status_code=record.wh_last_status or None,
        last_error=record.wh_last_error or None,
        last_attempt_at=_when(record.wh_last_at),
    )
