"""A small Python client of the ingest API; the `ghibli` CLI uses it and so can your scripts.

    from pathlib import Path
    from ghibli.client import GhibliClient

    with GhibliClient("http://127.0.0.1:8000") as client:
        job = client.submit("photo.jpg", width=768, height=512)
        job = client.wait(job.id, on_update=lambda j: print(j.status, f"{j.progress:.0%}"))
        Path("photo.ghibli.png").write_bytes(client.result(job.id, fmt="png"))

Jobs are `jobs.wire.JobView` values, the same type the server encodes. `wait`/`watch` follow the
job's SSE stream (resuming with Last-Event-ID after a dropped connection) and fall back to polling
`GET /v1/jobs/{id}` where SSE is unavailable, e.g. behind a proxy that buffers event streams, or
when the server refuses another stream (429/503 too_many_streams).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import httpx
import msgspec
from httpx_sse import SSEError, connect_sse

from jobs.model import Status
from jobs.wire import ErrorInfo, JobView

__all__ = [
    "FORMATS",
    "AdminJob",
    "ApiError",
    "Format",
    "GhibliClient",
    "JobCancelled",
    "JobFailed",
    "JobGone",
    "Transport",
    "extension_for",
]

Format = Literal["webp", "png", "jpeg"]
Transport = Literal["auto", "sse", "poll"]
FORMATS: dict[str, str] = {"webp": "image/webp", "png": "image/png", "jpeg": "image/jpeg"}
# The server pings idle streams; silence this long means the stream is dead (or a proxy holds it).
_SSE_READ_TIMEOUT_S = 60.0
# Consecutive SSE connections that delivered nothing before `auto` gives up on SSE and polls.
_SSE_ATTEMPTS_BEFORE_POLLING = 3
_BACKOFF_CAP_S = 10.0


class ApiError(Exception):
    """The API answered with a problem (RFC 9457); `code` is its stable machine code."""

    def __init__(self, status: int, code: str, title: str, detail: str = "") -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        super().__init__(f"{self.detail} ({code}, HTTP {status})")

    @property
    def message(self) -> str:
        return self.detail


class JobFailed(Exception):
    """The job ended without a picture; `job.error` says why."""

    def __init__(self, job: JobView, message: str | None = None) -> None:
        self.job = job
        if message is None:
            reason = job.error.message if job.error else "no reason given"
            code = f" ({job.error.code})" if job.error else ""
            message = f"job {job.id} {job.status.value}: {reason}{code}"
        super().__init__(message)


class JobCancelled(JobFailed):
    """The job was cancelled (by `cancel`, another client or the operator)."""


class JobGone(JobCancelled):
    """The job vanished while being watched: cancelled and erased (DELETE), or expired.
    `job` is the last state seen."""

    def __init__(self, job: JobView) -> None:
        super().__init__(job, f"job {job.id} was cancelled (or deleted) while it was being watched")


class AdminJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job as the admin listing shows it (`GET /v1/admin/jobs`; more fields there)."""

    id: str
    status: Status
    phase: str = ""
    progress: float = 0.0
    created_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorInfo | None = None


class _AdminPage(msgspec.Struct, frozen=True):
    items: list[AdminJob]
    next_cursor: str | None = None


def _passing(exc: Exception) -> bool:
    """Worth another try: the network, a busy server (429) or a server error (5xx)."""
    if isinstance(exc, ApiError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, httpx.TransportError)


class _Seen:
    """What a watcher has yielded so far: the version (for Last-Event-ID) and whether it ended."""

    def __init__(self) -> None:
        self.version = -1
        self.ended = False
        self.last: JobView | None = None

    def is_new(self, job: JobView) -> bool:
        if job.version <= self.version and not job.status.terminal:
            return False
        self.last = job
        self.version = job.version
        self.ended = job.status.terminal
        return True


def _check_deadline(deadline: float | None, job_id: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"job {job_id} did not finish in time")


class _SseUnavailable(Exception):
    """The server (or a proxy) does not speak SSE for this route: poll instead."""


def extension_for(content_type: str) -> str:
    """File extension (with the dot) of a result's content type."""
    return {"image/png": ".png", "image/jpeg": ".jpg"}.get(content_type.partition(";")[0].strip(), ".webp")


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    title = str(body.get("title") or response.reason_phrase or "HTTP error")
    return ApiError(
        response.status_code,
        str(body.get("code") or f"http_{response.status_code}"),
        title,
        str(body.get("detail") or title),
    )


def _raise_for_problem(response: httpx.Response) -> None:
    if not response.is_success:
        response.read()
        raise _problem(response)


def _decode_job(data: bytes | str) -> JobView:
    return msgspec.json.decode(data, type=JobView)


def _form(**params: object) -> dict[str, str]:
    """Multipart text fields; None means "server default" and is not sent at all (empty fields
    would be parsed as values)."""
    return {
        name: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in params.items()
        if value is not None
    }


class GhibliClient:
    """A synchronous client; safe to share between threads (httpx.Client is)."""

    def __init__(
        self,
        server: str = "http://127.0.0.1:8000",
        *,
        timeout: float = 60.0,
        transport: Transport = "auto",
        poll_interval_s: float = 1.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.transport = transport
        self.poll_interval_s = poll_interval_s
        self._http = httpx.Client(
            base_url=self.server,
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    def __enter__(self) -> GhibliClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def job_url(self, job_id: str) -> str:
        return f"{self.server}/v1/jobs/{job_id}"

    def page_url(self, job_id: str) -> str:
        """The web page showing this job (the id stays in the fragment, out of server logs)."""
        return f"{self.server}/#job={job_id}"

    # -- jobs -------------------------------------------------------------------------------

    def submit(
        self,
        photo: str | Path | bytes | IO[bytes],
        *,
        prompt: str | None = None,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
        use_zero_init: bool | None = None,
        zero_steps: int | None = None,
        filename: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobView:
        """Upload a photo (path, bytes or binary file); None parameters take the server's default
        (width/height: the photo's aspect ratio; seed: random, reported in `job.params.seed`)."""
        form = _form(
            prompt=prompt,
            width=width,
            height=height,
            seed=seed,
            use_zero_init=use_zero_init,
            zero_steps=zero_steps,
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        if isinstance(photo, str | Path):
            path = Path(photo)
            with path.open("rb") as fh:
                response = self._http.post(
                    "/v1/jobs", data=form, files={"image": (filename or path.name, fh)}, headers=headers
                )
        else:
            response = self._http.post(
                "/v1/jobs", data=form, files={"image": (filename or "photo", photo)}, headers=headers
            )
        _raise_for_problem(response)
        return _decode_job(response.content)

    def status(self, job_id: str) -> JobView:
        response = self._http.get(f"/v1/jobs/{job_id}")
        _raise_for_problem(response)
        return _decode_job(response.content)

    def cancel(self, job_id: str) -> None:
        """Cancel the job if it still runs, and erase it and its pictures."""
        _raise_for_problem(self._http.delete(f"/v1/jobs/{job_id}"))

    def result(self, job_id: str, *, fmt: Format | None = None) -> bytes:
        """The picture, as stored (`fmt=None`) or converted by the server to webp, png or jpeg."""
        response = self._http.get(f"/v1/jobs/{job_id}/result", params={"format": fmt} if fmt else None)
        _raise_for_problem(response)
        return response.content

    def admin_jobs(self, admin_secret: str, *, status: Status | None = None) -> Iterator[AdminJob]:
        """Every job on the server (optionally of one status), through the admin API; in no
        particular order. Needs the server's ADMIN_SECRET."""
        cursor: str | None = "0"
        headers = {"Authorization": f"Bearer {admin_secret}"}
        while cursor is not None:
            params = {"cursor": cursor, "limit": "500", **({"status": status.value} if status else {})}
            response = self._http.get("/v1/admin/jobs", params=params, headers=headers)
            _raise_for_problem(response)
            page = msgspec.json.decode(response.content, type=_AdminPage)
            yield from page.items
            cursor = page.next_cursor

    # -- following a job --------------------------------------------------------------------

    def events(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[JobView]:
        """One SSE connection: the current snapshot, then each change, until the server closes it
        (after a terminal state). Raises ApiError for an unknown job, _SseUnavailable when the route
        does not answer with an event stream."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        timeout = httpx.Timeout(self._http.timeout.connect, read=_SSE_READ_TIMEOUT_S)
        url = f"/v1/jobs/{job_id}/events"
        with connect_sse(self._http, "GET", url, headers=headers, timeout=timeout) as source:
            response = source.response
            if response.status_code in (404, 405, 406, 501):
                response.read()
                problem = _problem(response)
                if problem.code == "job_not_found":
                    raise problem
                raise _SseUnavailable(str(problem))
            if response.status_code in (429, 503):
                # The server holds as many streams as it will (for us or for everyone): poll.
                response.read()
                raise _SseUnavailable(str(_problem(response)))
            _raise_for_problem(response)
            try:
                for event in source.iter_sse():
                    if event.event == "status" and event.data:
                        yield _decode_job(event.data)
            except SSEError as exc:
                raise _SseUnavailable(str(exc)) from None

    def watch(self, job_id: str, *, deadline: float | None = None) -> Iterator[JobView]:
        """Every new state of the job until a terminal one (which it yields last). Never gives up
        on a live job by itself: a job may wait for GPU quota for hours and still finish; pass a
        `time.monotonic()` deadline to bound it (TimeoutError)."""
        seen = _Seen()
        try:
            yield from self._watch(job_id, seen, deadline)
        except ApiError as exc:
            if exc.code == "job_not_found" and seen.last is not None:
                raise JobGone(seen.last) from None
            raise

    def _watch(self, job_id: str, seen: _Seen, deadline: float | None) -> Iterator[JobView]:
        fruitless = 0
        use_sse = self.transport != "poll"
        while use_sse:
            _check_deadline(deadline, job_id)
            delivered = False
            try:
                for job in self._stream_once(job_id, seen, deadline):
                    delivered = True
                    yield job
            except _SseUnavailable:
                if self.transport == "sse":
                    raise
                break
            if seen.ended:
                return
            # The stream ended without a terminal state: one status read settles a job that
            # ended (or vanished) between two connections.
            ended = self._ended(job_id)
            if ended is not None:
                yield ended
                return
            fruitless = 0 if delivered else fruitless + 1
            if fruitless >= _SSE_ATTEMPTS_BEFORE_POLLING and self.transport == "auto":
                break
            time.sleep(min(_BACKOFF_CAP_S, 0.25 * 2**fruitless) if fruitless else 0.1)
        yield from self._poll(job_id, seen, deadline)

    def _stream_once(self, job_id: str, seen: _Seen, deadline: float | None) -> Iterator[JobView]:
        last_id = str(seen.version) if seen.version >= 0 else None
        try:
            for job in self.events(job_id, last_event_id=last_id):
                if seen.is_new(job):
                    yield job
                if seen.ended:
                    return
                _check_deadline(deadline, job_id)
        except (httpx.TransportError, ApiError) as exc:
            if not _passing(exc):
                raise
            # A dropped or silent stream, or a busy server: the caller reconnects and resumes.

    def _ended(self, job_id: str) -> JobView | None:
        try:
            job = self.status(job_id)
        except (httpx.TransportError, ApiError) as exc:
            if not _passing(exc):
                raise
            return None
        return job if job.status.terminal else None

    def _poll(self, job_id: str, seen: _Seen, deadline: float | None) -> Iterator[JobView]:
        while not seen.ended:
            _check_deadline(deadline, job_id)
            try:
                job = self.status(job_id)
            except (httpx.TransportError, ApiError) as exc:
                if not _passing(exc):
                    raise
                time.sleep(min(_BACKOFF_CAP_S, self.poll_interval_s * 2))
                continue
            if seen.is_new(job):
                yield job
            if not seen.ended:
                time.sleep(self.poll_interval_s)

    def wait(
        self,
        job_id: str,
        *,
        on_update: Callable[[JobView], Any] | None = None,
        timeout_s: float | None = None,
    ) -> JobView:
        """Until the job ends; returns it if it succeeded, else raises JobFailed/JobCancelled.
        No time-out by default (see `watch`)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        job: JobView | None = None
        for job in self.watch(job_id, deadline=deadline):
            if on_update is not None:
                on_update(job)
        assert job is not None
        if job.status is Status.CANCELLED:
            raise JobCancelled(job)
        if job.status is not Status.SUCCEEDED:
            raise JobFailed(job)
        return job
