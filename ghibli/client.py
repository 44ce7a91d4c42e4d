"""A small Python client of the ingest API; the CLI uses it and so can your scripts.

from ghibli.client import GhibliClient
with GhibliClient("http://127.0.0.1:8000") as client:
    job = client.submit("photo.jpg", width=768, height=512)
    job = client.wait(job["id"])
    Path("out.webp").write_bytes(client.result(job["id"]))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

__all__ = ["ApiError", "GhibliClient", "JobFailed"]

TERMINAL = {"succeeded", "failed", "cancelled"}


class ApiError(Exception):
    """The API answered with a problem (RFC 9457); `code` is its stable machine code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.message = message


class JobFailed(Exception):
    def __init__(self, job: dict[str, Any]) -> None:
        error = job.get("error") or {}
        super().__init__(f"job {job['id']} {job['status']}: {error.get('message', 'no reason given')}")
        self.job = job


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    raise ApiError(
        response.status_code,
        str(body.get("code", f"http_{response.status_code}")),
        str(body.get("detail") or body.get("title") or response.reason_phrase),
    )


class GhibliClient:
    def __init__(self, server: str = "http://127.0.0.1:8000", *, timeout: float = 60.0) -> None:
        self._http = httpx.Client(base_url=server.rstrip("/"), timeout=timeout)

    def __enter__(self) -> GhibliClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(self, photo: str | Path, **params: object) -> dict[str, Any]:
        """Upload a photo; params are prompt, width, height, seed, use_zero_init, zero_steps."""
        path = Path(photo)
        form = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None
        }
        with path.open("rb") as fh:
            response = self._http.post("/v1/jobs", data=form, files={"image": (path.name, fh)})
        _raise_for_problem(response)
        job: dict[str, Any] = response.json()
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        response = self._http.get(f"/v1/jobs/{job_id}")
        _raise_for_problem(response)
        job: dict[str, Any] = response.json()
        return job

    def wait(
        self,
        job_id: str,
        *,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Until the job ends; raises JobFailed unless it succeeded. No time-out by default:
        a job may wait for GPU quota for hours and still finish."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last_version = -1
        while True:
            job = self.status(job_id)
            if on_update is not None and job.get("version", 0) != last_version:
                last_version = job.get("version", 0)
                on_update(job)
            if job["status"] in TERMINAL:
                if job["status"] != "succeeded":
                    raise JobFailed(job)
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def result(self, job_id: str, *, fmt: str | None = None) -> bytes:
        params = {"format": fmt} if fmt else None
        response = self._http.get(f"/v1/jobs/{job_id}/result", params=params)
        _raise_for_problem(response)
        return response.content

    def cancel(self, job_id: str) -> None:
        _raise_for_problem(self._http.delete(f"/v1/jobs/{job_id}"))
