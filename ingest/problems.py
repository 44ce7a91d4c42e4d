"""Every HTTP error as RFC 9457 problem details with a stable `code` (and never a stack trace)."""

from __future__ import annotations

from typing import Any

from litestar.exceptions import HTTPException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from jobs.logs import get_logger

__all__ = ["Problem", "problem_details_plugin"]

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


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ProblemDetailsException):
        return exc
    code = _CODES_BY_STATUS.get(exc.status_code, f"http_{exc.status_code}")
    extra: dict[str, Any] = {}
    if exc.extra:
        # Litestar's validation errors: a list of {message, key, source}; safe to show.
        extra["errors"] = exc.extra
    detail = exc.detail if exc.status_code < 500 else "The server failed; it has been logged."
    return Problem(exc.status_code, code, detail, detail, headers=exc.headers, **extra)


def _from_unexpected(exc: Exception) -> ProblemDetailsException:
    log.error("unhandled error", exc_info=exc)
    return Problem(500, "internal_error", "Internal server error", "The server failed; it has been logged.")


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                HTTPException: _from_http_exception,
                Exception: _from_unexpected,
            },
        )
    )
