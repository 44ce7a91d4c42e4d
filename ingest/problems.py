"""Every HTTP error as RFC 9457 problem details with a stable `code` (and never a stack trace)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from jobs.logs import get_logger
from jobs.redis_conn import REDIS_DOWN
from sandbox.errors import ImageRefused
from sandbox.pool import BUSY_RETRY_AFTER_S

__all__ = [
    "Problem",
    "ProblemDocument",
    "image_problem",
    "problem_details_handler",
    "problem_details_plugin",
    "problem_responses",
    "to_problem",
]

log = get_logger("ingest.problems")

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameter",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class Problem(ProblemDetailsException):
    """An API error: HTTP status, stable machine code, short title, plain-words detail."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(
            status_code=status,
            title=title,
            detail=detail or title,
            headers=headers,
            type_=f"urn:ghibli:problem:{code}",
            extra={"code": code, **extra},
        )
        self.code = code


_IMAGE_TITLES = {
    413: "Upload too large",
    415: "Unsupported image type",
    422: "Photo not accepted",
    429: "Too many images waiting",
    503: "Decoders busy",
}


def image_problem(exc: ImageRefused, field: str | None = "image") -> Problem:
    """The problem document of a refused image; busy decoders say when to come back."""
    headers = {"Retry-After": str(BUSY_RETRY_AFTER_S)} if exc.status in (429, 503) else None
    title = _IMAGE_TITLES.get(exc.status, "Image not accepted")
    return Problem(exc.status, exc.code, title, exc.message, headers=headers, field=field)


class ProblemDocument(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details as this API sends them (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    code: str  # stable, machine-readable: switch on this, not on the wording
    field: str | None = None  # the form field or parameter at fault
    job_status: str | None = None
    errors: list[dict[str, Any]] | None = None  # request validation: one entry per bad value
    error: str | None = None  # the compatibility routes: what the old product's clients read


_DESCRIPTIONS = {
    400: "The request is malformed (validation details in `errors`).",
    404: "No such job: it never existed, expired or was deleted.",
    409: "The job has no result (yet).",
    410: "The result has expired.",
    413: "The upload is larger than the configured limit.",
    415: "The upload is not a JPEG, PNG, WebP, GIF or HEIC/HEIF image (detected from its bytes).",
    422: "A parameter or the photo is not acceptable (`code` and `field` say which).",
    429: "Too many requests from this client; retry after `Retry-After` seconds.",
    503: "Overloaded or not ready; retry after `Retry-After` seconds.",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem documents a handler can answer with."""
    return {
        status: ResponseSpec(
            data_container=ProblemDocument,
            description=_DESCRIPTIONS.get(status, "A problem document."),
            media_type="application/problem+json",
            generate_examples=False,
        )
        for status in statuses
    }


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ProblemDetailsException):
        return exc
    code = _CODES_BY_STATUS.get(exc.status_code, f"http_{exc.status_code}")
    extra: dict[str, Any] = {}
    if exc.extra:
        # Litestar's validation errors: a list of {message, key, source}; safe to show.
        extra["errors"] = exc.extra if isinstance(exc.extra, list) else [exc.extra]
    detail = exc.detail if exc.status_code < 500 else "The server failed; it has been logged."
    return Problem(exc.status_code, code, detail, detail, headers=exc.headers, **extra)


def _from_bad_text(exc: UnicodeDecodeError) -> ProblemDetailsException:
    # Litestar decodes non-file multipart parts as text while parsing the form, before any handler
    # runs; undecodable bytes there are the client's mistake (e.g. a photo sent as a plain field).
    return Problem(
        400,
        "malformed_form",
        "Malformed form",
        "A form field is not valid UTF-8 text; send the photo as a file part named 'image'.",
    )


def _from_unexpected(exc: Exception) -> ProblemDetailsException:
    if isinstance(exc, REDIS_DOWN):
        # Redis restarting or failing over: worth a retry in a moment, not a stack trace.
        log.warning("redis unavailable", error=type(exc).__name__)
        return Problem(
            503,
            "store_unavailable",
            "Temporarily unavailable",
            "The job store is not reachable for a moment; retry shortly.",
            headers={"Retry-After": "1"},
        )
    log.error("unhandled error", exc_info=exc)
    return Problem(500, "internal_error", "Internal server error", "The server failed; it has been logged.")


def to_problem(exc: Exception) -> ProblemDetailsException:
    if isinstance(exc, HTTPException):
        return _from_http_exception(exc)
    if isinstance(exc, UnicodeDecodeError):
        return _from_bad_text(exc)
    return _from_unexpected(exc)


def problem_details_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """An exception handler for layers that post-process problem documents (e.g. the compat routes)."""
    return to_problem(exc).to_response(request)


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                HTTPException: _from_http_exception,
                UnicodeDecodeError: _from_bad_text,
                Exception: _from_unexpected,
            },
        )
    )
