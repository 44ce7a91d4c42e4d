"""The routes of the product this replaces, with its response shapes, for frontends written for it.

- `POST /api/transform-ghibli` (multipart `image`, `prompt`, `height`, `width`, `seed`) -> 200
  `{taskId, message, estimatedTime}`. Same checks, limits, cache and queue as POST /v1/jobs; errors
  are problem documents that also carry the old `error` member.
- `GET|POST /api/transform-ghibli/check/{taskId}` -> 200 `{status: "processing", progress (0-100),
  elapsedTime (s)}` while the job runs, after holding the request until the job is over or
  GHIBLI_LONG_POLL_SECONDS (25 s) have passed (ingest/long_poll.py); the picture itself (its real
  Content-Type, never cached) when done; 404 `{status: "not_found"}`; 500 `{status: "failed",
  error}` when it failed or was cancelled. These two error bodies keep the old shape (plain JSON,
  `status` a word, not a number) because old clients branch on it; they also carry our `code`.

- `GET /api/token-status`: the old token report (ingest/token_status.py), aliases only.

Unlike the old product, a failed job is never answered with the uploaded photo, and the old page's
30 checks, held 25 s each, cover 12 minutes of queue, quota waits and Space time instead of 42 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, Router, post, route
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation
from litestar.params import FromPath, MultipartBody
from litestar.plugins.problem_details import ProblemDetailsException

from ingest.auth import Caller, submitter_guard
from ingest.intake import accept_submission
from ingest.jobs_api import JOB_ID
from ingest.limits import SUBMITS, backlog_guard
from ingest.long_poll import hold_until, is_terminal
from ingest.params import JobForm
from ingest.problems import problem_details_handler, problem_responses
from ingest.results import add_image_content
from ingest.services import Services
from ingest.token_status import token_status
from jobs.model import Status

__all__ = ["compat_router"]

_NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache", "Expires": "0"}


class CompatAccepted(msgspec.Struct, frozen=True):
    taskId: str  # the old product's field names
    message: str
    estimatedTime: str


class CompatProgress(msgspec.Struct, frozen=True):
    status: str
    progress: int
    elapsedTime: int


class CompatMissing(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    code: str
    error: str | None = None


class CompatFailed(msgspec.Struct, frozen=True):
    status: str
    error: str
    code: str


@dataclass
class _ProgressOrImageOperation(Operation):
    """200 is the progress JSON while running and the picture when done."""

    def __post_init__(self) -> None:
        add_image_content(self, keep=True)


@post(
    "/api/transform-ghibli",
    status_code=200,
    summary="Submit a photo (compatibility route of the old product)",
    guards=[submitter_guard, backlog_guard],
    opt={"rate_limit": SUBMITS},
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
)
async def transform_ghibli(
    request: Request[Any, Any, Any],
    data: MultipartBody[JobForm],
    services: NamedDependency[Services],
    caller: NamedDependency[Caller],
) -> CompatAccepted:
    accepted = await accept_submission(services, data, caller=caller, receive=request.receive)
    return CompatAccepted(
        taskId=accepted.job_id, message="Image processing started", estimatedTime="30-60 seconds"
    )


@route(
    "/api/transform-ghibli/check/{task_id:str}",
    http_method=["GET", "POST"],
    status_code=200,
    summary="A task's progress, or its picture when done (compatibility route of the old product)",
    media_type="application/json",
    operation_class=_ProgressOrImageOperation,
    responses={
        200: ResponseSpec(
            data_container=CompatProgress,
            description="`{status, progress, elapsedTime}` while running; the picture bytes when done.",
            generate_examples=False,
        ),
        404: ResponseSpec(
            data_container=CompatMissing,
            description='`{status: "not_found"}`, or `{status: "error"}` when the picture expired.',
            generate_examples=False,
        ),
        500: ResponseSpec(
            data_container=CompatFailed,
            description='`{status: "failed", error}`: the job failed or was cancelled.',
            generate_examples=False,
        ),
        **problem_responses(429),
    },
)
async def check_task(
    task_id: FromPath[str], services: NamedDependency[Services], request: Request[Any, Any, Any]
) -> Response[Any]:
    record = None
    if JOB_ID.fullmatch(task_id):
        # Held until the job is over (or GHIBLI_LONG_POLL_SECONDS): progress changes do not end the
        # hold, since an old client spends one of its few polls on every answer.
        record = await hold_until(
            services,
            request,
            task_id,
            timeout_s=services.settings.long_poll_seconds,
            ready=lambda _first: is_terminal,
        )
    if record is None:
        return Response(CompatMissing(status="not_found", code="job_not_found"), status_code=404)
    if record.status is Status.SUCCEEDED:
        data = await services.blobs.get(record.result_key)
        if data is None:
            missing = CompatMissing(status="error", code="result_expired", error="Image data not found")
            return Response(missing, status_code=404)
        return Response(data, media_type=record.result_type or "image/webp", headers=_NO_CACHE)
    if record.status.terminal:
        error = record.error_message or f"The job {record.status.value}."
        failed = CompatFailed(status="failed", error=error, code=record.error_code or record.status.value)
        return Response(failed, status_code=500)
    elapsed = max(0, int(time.time() - record.created_at / 1000))
    progress = CompatProgress(status="processing", progress=round(record.progress * 100), elapsedTime=elapsed)
    return Response(progress, headers=_NO_CACHE)


def _problem_with_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Problem documents that also carry the old `{error}` member old clients display."""
    response = problem_details_handler(request, exc)
    body = response.content
    if isinstance(body, dict):
        body.setdefault("error", body.get("detail") or body.get("title"))
    return response


compat_router = Router(
    "/",
    route_handlers=[transform_ghibli, check_task, token_status],
    tags=["compatibility"],
    exception_handlers={
        ProblemDetailsException: _problem_with_error,
        HTTPException: _problem_with_error,
        Exception: _problem_with_error,
    },
)
