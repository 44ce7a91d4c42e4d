"""The jobs API: submit a photo, read a job's status, fetch its result, cancel and erase it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation
from litestar.params import FromPath, HeaderParameter, MultipartBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from ingest.auth import Caller, submitter_guard
from ingest.intake import accept_submission, accepted_view
from ingest.limits import SUBMITS, backlog_guard
from ingest.long_poll import changed_since, hold_until
from ingest.params import JobForm
from ingest.problems import Problem, problem_responses
from ingest.results import (
    FORMATS,
    ResultFormat,
    add_image_content,
    etag_for,
    etag_matches,
    filename_for,
    stored_format,
)
from ingest.services import Services
from jobs.model import JobRecord, Status
from jobs.script_defs import JobVerdict
from jobs.wire import JobView, job_view
from metrics.definitions import JOBS_CANCELLED

__all__ = ["JOB_ID", "JobsController", "job_not_found", "job_or_404"]

JOB_ID = re.compile(r"[0-9a-f]{32}")


def job_not_found() -> Problem:
    return Problem(404, "job_not_found", "No such job", "It never existed, expired or was deleted.")


IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Any unique string (1-255 visible ASCII): the same key with the same request within "
        "24 h returns the same job; with a different photo or parameters it is refused (422).",
    ),
]


async def job_or_404(services: Services, job_id: str) -> JobRecord:
    """The job, or 404 (a malformed id is simply not found: ids are capabilities, not hints)."""
    record = await services.store.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if record is None or record.withdrawn:  # withdrawn: erased by its owner (jobs/lua/cancel.lua)
        raise job_not_found()
    return record


@dataclass
class _ImageOperation(Operation):
    """The result's 200 can be any of the picture formats; Litestar documents one media type."""

    def __post_init__(self) -> None:
        add_image_content(self, keep=False)


class JobsController(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]  # noqa: RUF012 - Litestar's declaration style

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Submit a photo",
        description="Upload a photo as multipart/form-data; the job is queued and its status URL returned in "
        "`Location`. The same photo with the same parameters and seed is answered from the result cache "
        "(`cache_hit: true`, already `succeeded`). With API keys configured, send "
        "`Authorization: Bearer <API key>`. `webhook_url` asks for signed callbacks (docs/webhooks.md).",
        guards=[submitter_guard, backlog_guard],
        opt={"rate_limit": SUBMITS},
        response_headers=[
            ResponseHeader(name="Location", description="The job's URL", documentation_only=True),
            ResponseHeader(
                name="Idempotent-Replayed",
                description="`true` when this answer replays an earlier request with the same "
                "Idempotency-Key",
                documentation_only=True,
                required=False,
            ),
        ],
        responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: MultipartBody[JobForm],
        services: NamedDependency[Services],
        caller: NamedDependency[Caller],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[JobView]:
        accepted = await accept_submission(
            services, data, idempotency_key=idempotency_key, caller=caller, receive=request.receive
        )
        view = accepted_view(accepted)
        headers = {"Location": view.links.self}
        if accepted.outcome == "replay":
            headers["Idempotent-Replayed"] = "true"
        return Response(view, status_code=HTTP_202_ACCEPTED, headers=headers)

    @get(
        "/{job_id:str}",
        summary="A job's status",
        description="With `wait=N` the request is held until the job's `version` is above `after` (the "
        "version you already have; default: the version when the request arrived) or the job is over, "
        "for at most N seconds (capped by GHIBLI_LONG_POLL_SECONDS), then answered with the job as it is: "
        "a long-poll for clients that cannot read Server-Sent Events.",
        responses=problem_responses(400, 404, 429),
    )
    async def status(
        self,
        job_id: FromPath[str],
        services: NamedDependency[Services],
        request: Request[Any, Any, Any],
        wait: Annotated[
            float, QueryParameter(ge=0, le=3600, description="Hold up to this many seconds for a change.")
        ] = 0,
        after: Annotated[
            int | None, QueryParameter(ge=0, description="The job `version` you have (with `wait`).")
        ] = None,
    ) -> JobView:
        timeout_s = min(wait, services.settings.long_poll_seconds)
        if timeout_s <= 0 or not JOB_ID.fullmatch(job_id):
            return job_view(await job_or_404(services, job_id))
        record = await hold_until(
            services,
            request,
            job_id,
            timeout_s=timeout_s,
            ready=lambda first: changed_since(first.version if after is None else after),
        )
        if record is None:
            raise job_not_found()
        return job_view(record)

    @get(
        "/{job_id:str}/result",
        summary="The finished picture",
        description="The picture in the format the Space produced, or converted with `?format=`. "
        "Send `If-None-Match` with the `ETag` to revalidate (304).",
        media_type="image/webp",
        response_description="The picture",
        operation_class=_ImageOperation,
        response_headers=[
            ResponseHeader(
                name="ETag", description="Strong validator of this picture", documentation_only=True
            ),
            ResponseHeader(
                name="Content-Disposition",
                description="inline or attachment, with a file name",
                documentation_only=True,
            ),
        ],
        responses={
            304: ResponseSpec(data_container=None, description="Not modified (the ETag matched)."),
            **problem_responses(400, 404, 409, 410, 422, 429, 503),
        },
    )
    async def result(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        services: NamedDependency[Services],
        fmt: Annotated[
            ResultFormat | None,
            QueryParameter(name="format", required=False, description="Convert to png, jpeg or webp."),
        ] = None,
        download: Annotated[
            bool, QueryParameter(name="download", description="Ask the browser to save it (attachment).")
        ] = False,
        if_none_match: Annotated[
            str | None, HeaderParameter(name="If-None-Match", required=False, description="ETag(s) you hold.")
        ] = None,
    ) -> Response[bytes]:
        record = await job_or_404(services, job_id)
        if record.status is not Status.SUCCEEDED:
            if record.status.terminal:
                raise Problem(
                    409,
                    "job_not_succeeded",
                    "No result",
                    f"The job {record.status.value}; it has no result.",
                    job_status=record.status.value,
                )
            raise Problem(
                409,
                "result_not_ready",
                "Not finished yet",
                "The job has not finished yet; watch its events or poll its status.",
                job_status=record.status.value,
            )
        target = fmt or stored_format(record)
        etag = etag_for(record, target)
        disposition = f'{"attachment" if download else "inline"}; filename="{filename_for(record, target)}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=3600", "Content-Disposition": disposition}
        if etag_matches(if_none_match, etag):
            return Response(b"", status_code=304, headers=headers)
        if target == stored_format(record):
            data = await services.blobs.get(record.result_key)
        else:
            client = services.client_address.bucket(request.scope)
            data = await services.conversions.picture(record, target, client=client, receive=request.receive)
        if data is None:
            raise Problem(410, "result_expired", "Result expired", "The result has expired; submit again.")
        return Response(data, media_type=FORMATS[target][0], headers=headers)

    @delete(
        "/{job_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Cancel and erase a job",
        description="Cancels the job if it is still running (viewers see `cancelled`), then erases its "
        "status, photo and result. Afterwards the job is 404.",
        responses=problem_responses(400, 404, 429),
    )
    async def cancel(self, job_id: FromPath[str], services: NamedDependency[Services]) -> None:
        await job_or_404(services, job_id)
        verdict = await services.submissions.forget(job_id)
        if verdict is None:
            raise job_not_found()
        if verdict is JobVerdict.OK:
            JOBS_CANCELLED.inc()
