"""What went wrong in a Space call, and what the consumer does about it.

Never swallowed, never papered over with the input photo. `ERROR_CLASSES` below is the table of
every code `classify` produces (the "Space errors" table of docs/tokens.md is the same); the QUOTA kind never
reaches the worker as an error: SpaceCaller rotates tokens, then raises QuotaWait.
"""

from __future__ import annotations

import concurrent.futures
import enum
import html
import re
from typing import NamedTuple

import httpx
from gradio_client import exceptions as gc_exceptions
from gradio_client import utils as gc_utils

__all__ = [
    "ERROR_CLASSES",
    "ErrorClass",
    "ErrorKind",
    "QuotaWait",
    "SpaceError",
    "classify",
    "parse_quota_numbers",
    "parse_retry_after",
]


class ErrorKind(enum.StrEnum):
    QUOTA = "quota"
    TRANSIENT = "transient"
    BROKEN = "broken"
    PERMANENT = "permanent"


class SpaceError(Exception):
    """A classified failure; `code` is stable and shown to users, `message` is plain words.

    For quota errors, `retry_after_s` is the parsed "Try again in" (None when the text has none)
    and `requested_s` the GPU seconds the Space requests per call, when it said so.
    """

    def __init__(
        self,
        kind: ErrorKind,
        code: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        requested_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.requested_s = requested_s


class QuotaWait(Exception):
    """Every token is cooling down: the job waits (status waiting_for_quota) until resume_at_ms."""

    def __init__(self, resume_at_ms: int) -> None:
        super().__init__(f"all tokens cooling until {resume_at_ms}")
        self.resume_at_ms = resume_at_ms


QUOTA_TITLE = "ZeroGPU quota exceeded"
CREDITS_COOLDOWN_S = 60.0


class ErrorClass(NamedTuple):
    kind: ErrorKind
    codes: str
    matched_by: str
    answer: str


_RETRY = "retry with back-off (an attempt is counted)"
_PAUSE = "circuit breaker: claiming pauses, the job is re-queued without counting an attempt"
ERROR_CLASSES = (
    ErrorClass(
        ErrorKind.QUOTA,
        "quota_exceeded",
        'title "ZeroGPU quota exceeded"; "You have exceeded your [free/Pro] [Zero]GPU quota (60s requested '
        'vs. 12s left). Try again in 0:12:34", the HTML text of spaces 0.34 (no retry time), "retry in '
        '0:09:48", "try again in 2 days", "ZeroGPU runs limit", "Space app has reached its GPU limit"',
        "the token cools until the parsed time (GHIBLI_QUOTA_COOLDOWN_SECONDS when absent) and the call "
        "runs again at once on another token, no attempt counted; every token cooling: waiting_for_quota",
    ),
    ErrorClass(
        ErrorKind.QUOTA,
        "quota_credits_pending",
        'title "ZeroGPU pending credits exceeded": "too many ZeroGPU credits allocated to running tasks"',
        f"as quota_exceeded, cooling the token for {CREDITS_COOLDOWN_S:.0f} s",
    ),
    ErrorClass(
        ErrorKind.TRANSIENT,
        "no_gpu",
        'titles "ZeroGPU queue timeout", "ZeroGPU client error": "No GPU was available [after 60s]", '
        '"Expired ZeroGPU proxy token"',
        _RETRY,
    ),
    ErrorClass(
        ErrorKind.TRANSIENT,
        "space_worker_error",
        'title "ZeroGPU worker error": "GPU task aborted" or an exception class name',
        _RETRY,
    ),
    ErrorClass(
        ErrorKind.TRANSIENT,
        "space_error",
        "any other error raised by the app (with or without show_error)",
        _RETRY,
    ),
    ErrorClass(
        ErrorKind.TRANSIENT,
        "space_queue_full, rate_limited, http_5xx",
        '"Queue is full! Please try again." (503 on join), 429, 500-599',
        _RETRY,
    ),
    ErrorClass(
        ErrorKind.TRANSIENT,
        "network, timeout, stream_lost, space_restarted, tokens_busy",
        'connection errors, time-outs and the call deadline, a dead event stream, "Server stopped", '
        "no token slot freed within the deadline",
        _RETRY + "; the gradio Client is rebuilt after network, stream and restart errors",
    ),
    ErrorClass(
        ErrorKind.TRANSIENT,
        "result_missing, result_invalid",
        "the result file is missing, truncated or not an image",
        _RETRY,
    ),
    ErrorClass(
        ErrorKind.BROKEN,
        "space_unavailable, space_paused",
        '"The current space is in the invalid state: PAUSED" (BUILD_ERROR, RUNTIME_ERROR, ...), '
        '"Could not find Space", config not fetchable, 404, 5 network failures in a row',
        _PAUSE,
    ),
    ErrorClass(
        ErrorKind.BROKEN,
        "endpoint_missing, space_signature",
        "no /single_condition_generate_image endpoint, or it lacks a required parameter",
        "the consumer is not ready (logged, in the admin view); " + _PAUSE,
    ),
    ErrorClass(
        ErrorKind.BROKEN,
        "space_auth, space_misconfigured",
        '401/403, AuthenticationError; title "ZeroGPU illegal duration"',
        _PAUSE,
    ),
    ErrorClass(
        ErrorKind.PERMANENT,
        "space_rejected, bad_arguments",
        'ValidationError (422), "Value 2000 is greater than maximum value 1024.", "not in the list of '
        'choices", other 4xx; TypeError from submit (unknown or missing arguments)',
        "the job fails with the message",
    ),
    ErrorClass(
        ErrorKind.PERMANENT,
        "result_wrong_size, result_is_input",
        "a picture of another size than requested, or the input photo itself",
        "the job fails; the input is never stored or returned as the result",
    ),
    ErrorClass(
        ErrorKind.PERMANENT,
        "cancelled",
        "the job was cancelled while its call ran",
        "the call is abandoned",
    ),
)

_QUOTA_RE = re.compile(
    r"exceeded your (?:(?:free|pro) )?(?:zero)?gpu (?:quota|runs limit)"
    r"|zerogpu quota|reached its gpu limit",
    re.IGNORECASE,
)
_CREDITS_RE = re.compile(r"too many zerogpu credits", re.IGNORECASE)
_NUMBERS_RE = re.compile(
    r"\((\d+(?:\.\d+)?)s (requested|left) vs\.? (\d+(?:\.\d+)?)s (left|requested)\)", re.IGNORECASE
)
_WAIT_RE = re.compile(
    r"(?:try again|retry) in (?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})(?:\.\d+)?", re.IGNORECASE
)
_WAIT_DAYS_RE = re.compile(r"(?:try again|retry) in (\d+) days?\b", re.IGNORECASE)
_NO_GPU_RE = re.compile(r"no gpu was available|expired zerogpu proxy token", re.IGNORECASE)
_REJECTED_RE = re.compile(
    r"\b(?:greater|less) than (?:maximum|minimum) value|not in the list of choices", re.IGNORECASE
)
_UNAVAILABLE_RE = re.compile(
    r"invalid state|could not find space|could not fetch config|could not get gradio config",
    re.IGNORECASE,
)
_UPSTREAM_PREFIX = "The upstream Gradio app has raised an exception: "


def parse_retry_after(text: str) -> float | None:
    """Seconds from "Try again in [N days, ]H:MM:SS" (or "retry in", "in N days"); None when absent."""
    match = _WAIT_RE.search(text)
    if match:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return float(days * 86_400 + hours * 3_600 + minutes * 60 + seconds)
    match = _WAIT_DAYS_RE.search(text)
    if match:
        return float(int(match.group(1)) * 86_400)
    return None


def parse_quota_numbers(text: str) -> tuple[float, float] | None:
    """(requested, left) GPU seconds from "(60s requested vs. 12s left)" in either order."""
    match = _NUMBERS_RE.search(text)
    if match is None:
        return None
    first, first_kind, second, _ = match.groups()
    if first_kind.lower() == "requested":
        return float(first), float(second)
    return float(second), float(first)


def plain_text(message: str) -> str:
    """The server's message without HTML tags, entities or an old client's prefix."""
    text = html.unescape(re.sub(r"<[^>]+>", "", message)).removeprefix(_UPSTREAM_PREFIX)
    return re.sub(r"\s+", " ", text).strip()


def _quota(code: str, text: str, retry_after_s: float | None) -> SpaceError:
    numbers = parse_quota_numbers(text)
    return SpaceError(
        ErrorKind.QUOTA,
        code,
        text,
        retry_after_s=retry_after_s,
        requested_s=numbers[0] if numbers else None,
    )


def _classify_app_error(exc: gc_exceptions.AppError) -> SpaceError:
    title = (exc.title or "").strip()
    text = plain_text(str(exc.message or exc)) or "The Space failed."
    if title == "ZeroGPU pending credits exceeded" or _CREDITS_RE.search(text):
        return _quota("quota_credits_pending", text, CREDITS_COOLDOWN_S)
    if title == QUOTA_TITLE or _QUOTA_RE.search(text):
        return _quota("quota_exceeded", text, parse_retry_after(text))
    if title in ("ZeroGPU queue timeout", "ZeroGPU client error") or _NO_GPU_RE.search(text):
        return SpaceError(ErrorKind.TRANSIENT, "no_gpu", text)
    if title == "ZeroGPU worker error":
        return SpaceError(ErrorKind.TRANSIENT, "space_worker_error", text)
    if title == "ZeroGPU illegal duration":
        return SpaceError(ErrorKind.BROKEN, "space_misconfigured", text)
    if _REJECTED_RE.search(text):
        return SpaceError(ErrorKind.PERMANENT, "space_rejected", text)
    if "queue is full" in text.lower():
        return SpaceError(ErrorKind.TRANSIENT, "space_queue_full", text)
    return SpaceError(ErrorKind.TRANSIENT, "space_error", text)


def _classify_status(status: int, text: str) -> SpaceError:
    if status == 429:
        return SpaceError(ErrorKind.TRANSIENT, "rate_limited", text)
    if status >= 500:
        return SpaceError(ErrorKind.TRANSIENT, f"http_{status}", text)
    if status in (401, 403):
        return SpaceError(ErrorKind.BROKEN, "space_auth", text)
    if status == 404:
        return SpaceError(ErrorKind.BROKEN, "space_unavailable", text)
    return SpaceError(ErrorKind.PERMANENT, "space_rejected", text)


def _is_transport_error(exc: BaseException) -> bool:
    # huggingface_hub (Space lookups) raises its own httpx fork's errors; match them by name.
    return any(c.__name__ in ("TransportError", "TimeoutException") for c in type(exc).__mro__)


def classify(exc: BaseException) -> SpaceError:
    """Map an exception raised by a gradio_client call to a SpaceError."""
    if isinstance(exc, SpaceError):
        return exc
    if isinstance(exc, gc_exceptions.AppError):
        return _classify_app_error(exc)
    if isinstance(exc, gc_exceptions.ValidationError):
        return SpaceError(ErrorKind.PERMANENT, "space_rejected", plain_text(str(exc)))
    if isinstance(exc, gc_utils.QueueError):
        return SpaceError(ErrorKind.TRANSIENT, "space_queue_full", str(exc))
    if isinstance(exc, gc_utils.TooManyRequestsError):
        return SpaceError(ErrorKind.TRANSIENT, "rate_limited", str(exc))
    if isinstance(exc, gc_exceptions.AuthenticationError):
        return SpaceError(ErrorKind.BROKEN, "space_auth", str(exc))
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return SpaceError(ErrorKind.TRANSIENT, "timeout", f"The Space did not answer in time. {exc}".strip())
    if isinstance(exc, httpx.HTTPStatusError):
        return _classify_status(exc.response.status_code, str(exc))
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and isinstance(exc, OSError):  # huggingface_hub's HfHubHTTPError
        return _classify_status(status, str(exc))
    if isinstance(exc, httpx.TransportError | ConnectionError) or _is_transport_error(exc):
        return SpaceError(ErrorKind.TRANSIENT, "network", f"Network error: {exc}")
    if isinstance(exc, concurrent.futures.CancelledError | KeyError):
        # gradio_client reports a dead event stream this way; the call may be repeated.
        return SpaceError(ErrorKind.TRANSIENT, "stream_lost", "The connection to the Space broke.")
    if isinstance(exc, TypeError):
        return SpaceError(ErrorKind.PERMANENT, "bad_arguments", str(exc))
    if isinstance(exc, ValueError):
        text = str(exc)
        if "Cannot find a function" in text:
            return SpaceError(ErrorKind.BROKEN, "endpoint_missing", text)
        if "Server stopped" in text:
            return SpaceError(ErrorKind.TRANSIENT, "space_restarted", "The Space restarted during the call.")
        if _UNAVAILABLE_RE.search(text):
            return SpaceError(ErrorKind.BROKEN, "space_unavailable", text)
        return SpaceError(ErrorKind.TRANSIENT, "space_error", text)
    if isinstance(exc, OSError):
        return SpaceError(ErrorKind.TRANSIENT, "network", f"Network error: {exc}")
    return SpaceError(ErrorKind.TRANSIENT, "unexpected", f"{type(exc).__name__}: {exc}")
