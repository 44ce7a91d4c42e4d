"""What went wrong in a Space call, and what the consumer does about it.

| kind       | examples                                                     | consumer's answer          |
|------------|--------------------------------------------------------------|----------------------------|
| quota      | "ZeroGPU quota exceeded", "exceeded your GPU quota"          | cool the token, run again  |
| transient  | no GPU available, queue full, 429, 5xx, network, time-out    | retry with back-off        |
| broken     | Space paused / build or runtime error / endpoint missing     | circuit breaker, retry     |
| permanent  | validation or signature errors, undecodable or wrong output  | fail the job               |

Never swallowed, never papered over with the input photo.
"""

from __future__ import annotations

import concurrent.futures
import enum
import re

import httpx
from gradio_client import exceptions as gc_exceptions
from gradio_client import utils as gc_utils

__all__ = ["ErrorKind", "QuotaWait", "SpaceError", "classify", "parse_retry_after"]


class ErrorKind(enum.StrEnum):
    QUOTA = "quota"
    TRANSIENT = "transient"
    BROKEN = "broken"
    PERMANENT = "permanent"


class SpaceError(Exception):
    """A classified failure; `code` is stable and shown to users, `message` is plain words."""

    def __init__(
        self, kind: ErrorKind, code: str, message: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class QuotaWait(Exception):
    """Every token is cooling down: the job waits (status waiting_for_quota) until resume_at_ms."""

    def __init__(self, resume_at_ms: int) -> None:
        super().__init__(f"all tokens cooling until {resume_at_ms}")
        self.resume_at_ms = resume_at_ms


_QUOTA_RE = re.compile(
    r"exceeded your (?:(?:free|pro) )?(?:zero)?gpu (?:quota|runs limit)"
    r"|zerogpu quota|reached its gpu limit|too many zerogpu credits",
    re.IGNORECASE,
)
_WAIT_RE = re.compile(
    r"(?:try again|retry) in (?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})(?:\.\d+)?", re.IGNORECASE
)
_WAIT_DAYS_RE = re.compile(r"(?:try again|retry) in (\d+) days?\b", re.IGNORECASE)
_NO_GPU_RE = re.compile(
    r"no gpu was available|gpu task aborted|expired zerogpu proxy token|queue is full",
    re.IGNORECASE,
)
_BROKEN_RE = re.compile(
    r"invalid state|paused|build_error|runtime_error|config_error|no_app_file|sleeping"
    r"|could not fetch config|could not get gradio config|server stopped",
    re.IGNORECASE,
)


def parse_retry_after(text: str) -> float | None:
    """Seconds from "Try again in [N days, ]H:MM:SS" (or "in N days"), None when absent."""
    match = _WAIT_RE.search(text)
    if match:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return float(days * 86_400 + hours * 3_600 + minutes * 60 + seconds)
    match = _WAIT_DAYS_RE.search(text)
    if match:
        return float(int(match.group(1)) * 86_400)
    return None


def _strip_html(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


def classify(exc: BaseException) -> SpaceError:
    """Map an exception raised by a gradio_client call to a SpaceError."""
    if isinstance(exc, SpaceError):
        return exc
    if isinstance(exc, gc_exceptions.AppError):
        title = (exc.title or "").strip()
        text = _strip_html(str(exc.message or exc))
        if title == "ZeroGPU quota exceeded" or _QUOTA_RE.search(text):
            return SpaceError(ErrorKind.QUOTA, "quota_exceeded", text, retry_after_s=parse_retry_after(text))
        if title in ("ZeroGPU queue timeout", "ZeroGPU client error") or _NO_GPU_RE.search(text):
            return SpaceError(ErrorKind.TRANSIENT, "no_gpu", text)
        if title == "ZeroGPU worker error":
            return SpaceError(ErrorKind.TRANSIENT, "space_worker_error", text)
        if title == "ZeroGPU illegal duration":
            return SpaceError(ErrorKind.PERMANENT, "space_rejected", text)
        if re.search(r"\b(greater|less) than (maximum|minimum) value|invalid", text, re.I):
            return SpaceError(ErrorKind.PERMANENT, "space_rejected", text)
        return SpaceError(ErrorKind.TRANSIENT, "space_error", text or "The Space failed.")
    if isinstance(exc, gc_exceptions.ValidationError):
        return SpaceError(ErrorKind.PERMANENT, "space_rejected", str(exc))
    if isinstance(exc, gc_utils.QueueError):
        return SpaceError(ErrorKind.TRANSIENT, "space_queue_full", str(exc))
    if isinstance(exc, gc_utils.TooManyRequestsError):
        return SpaceError(ErrorKind.TRANSIENT, "rate_limited", str(exc))
    if isinstance(exc, gc_exceptions.AuthenticationError):
        return SpaceError(ErrorKind.BROKEN, "space_auth", str(exc))
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return SpaceError(ErrorKind.TRANSIENT, "timeout", f"The Space did not answer in time ({exc}).")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status == 429 or status >= 500:
            return SpaceError(ErrorKind.TRANSIENT, f"http_{status}", str(exc))
        return SpaceError(ErrorKind.PERMANENT, f"http_{status}", str(exc))
    if isinstance(exc, httpx.TransportError | ConnectionError | OSError):
        return SpaceError(ErrorKind.TRANSIENT, "network", f"Network error: {exc}")
    if isinstance(exc, concurrent.futures.CancelledError | KeyError):
        # gradio_client reports a dead SSE reader this way; the call may be repeated.
        return SpaceError(ErrorKind.TRANSIENT, "stream_lost", "The connection to the Space broke.")
    if isinstance(exc, TypeError):
        return SpaceError(ErrorKind.PERMANENT, "space_signature", str(exc))
    if isinstance(exc, ValueError):
        text = str(exc)
        if "Cannot find a function" in text:
            return SpaceError(ErrorKind.BROKEN, "endpoint_missing", text)
        if _BROKEN_RE.search(text):
            return SpaceError(ErrorKind.BROKEN, "space_unavailable", text)
        return SpaceError(ErrorKind.TRANSIENT, "space_error", text)
    return SpaceError(ErrorKind.TRANSIENT, "unexpected", f"{type(exc).__name__}: {exc}")
