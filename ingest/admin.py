"""Operator views: the HF token pool and jobs by status, behind the admin secret.

`Authorization: Bearer <ADMIN_SECRET>`, compared in constant time; anything else is a 401 problem.
With no ADMIN_SECRET configured the routes answer 404 `admin_disabled`: there is no default secret
to guess. Secrets never travel in query strings (those end up in proxy logs).

Nothing here shows a token: the pool is stored by alias only (jobs/token_state.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromQuery, QueryParameter

from ingest.problems import Problem, problem_responses
from ingest.services import Services, services_from_state
from jobs.model import JobRecord, Status
from jobs.redis_topology import scan_page
from jobs.token_state import PoolView, read_pool
from jobs.wire import ErrorInfo

__all__ = [
    "AdminController",
    "AdminJob",
    "JobsPage",
    "admin_disabled",
    "bearer_matches",
    "require_admin",
    "secret_matches",
]

_REALM = 'Bearer realm="ghibli-admin"'
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_SCAN_BATCH = 200


def _digest(value: str) -> bytes:
    # Equal-length inputs for compare_digest, so not even the secret's length leaks through timing.
    return hashlib.sha256(value.encode()).digest()


def secret_matches(secret: str, given: str) -> bool:
    """`given` is the admin secret (constant time; an empty secret never matches)."""
    return bool(secret) and hmac.compare_digest(_digest(given), _digest(secret))


def bearer_matches(secret: str, authorization: str) -> bool:
    """The Authorization header is `Bearer <secret>`."""
    scheme, _sep, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and secret_matches(secret, given.strip())


def admin_disabled() -> Problem:
    return Problem(404, "admin_disabled", "Admin routes are disabled", "Set ADMIN_SECRET to enable them.")


async def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    secret = services_from_state(connection.app.state).settings.admin_secret
    if not secret:
        raise admin_disabled()
    if not bearer_matches(secret, connection.headers.get("authorization", "")):
        raise Problem(
            401,
            "unauthorized",
            "Admin secret required",
            "Send the header Authorization: Bearer <ADMIN_SECRET>.",
            headers={"WWW-Authenticate": _REALM},
        )


class AdminJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job as operators see it: where it is, who ran it, what went wrong."""

    id: str
    status: Status
    phase: str
    progress: float
    attempt: int
    failures: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    resume_at: datetime | None
    consumer: str | None
    token_alias: str | None
    key_id: str | None  # the API key that submitted it (its id, never the key)
    error: ErrorInfo | None
    url: str


class JobsPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a scan over every job; follow `next_cursor` until it is null.

    Pages come from a Redis SCAN, so they are in no particular order and may hold a few more than
    `limit` items; a job that exists for the whole scan is listed exactly once.
    """

    status: Status | None
    items: list[AdminJob]
    next_cursor: str | None


def _when(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms > 0 else None


def _admin_job(record: JobRecord) -> AdminJob:
    return AdminJob(
        id=record.id,
        status=record.status,
        phase=record.phase,
        progress=round(record.progress, 4),
        attempt=record.attempt,
        failures=record.failures,
        created_at=_when(record.created_at),
        started_at=_when(record.started_at),
        finished_at=_when(record.finished_at),
        resume_at=_when(record.resume_at) if record.status is Status.WAITING_FOR_QUOTA else None,
        consumer=record.consumer or None,
        token_alias=record.token_alias or None,
        key_id=record.key_id or None,
        error=ErrorInfo(code=record.error_code, message=record.error_message) if record.error_code else None,
        url=f"/v1/jobs/{record.id}",
    )


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def scan_jobs(services: Services, status: Status | None, cursor: int, limit: int) -> JobsPage:
    """Jobs (optionally of one status) from the SCAN position `cursor`, about `limit` of them."""
    redis = services.redis
    prefix = services.keys.job("")
    match = _glob_escape(prefix) + "*"
    items: list[AdminJob] = []
    while True:
        cursor, keys = await scan_page(redis, services.keys.stream, cursor, match, _SCAN_BATCH)
        ids = [(k.decode() if isinstance(k, bytes) else k)[len(prefix) :] for k in keys]
        ids = [job_id for job_id in ids if _JOB_ID.fullmatch(job_id)]
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(services.keys.job(job_id))
            hashes = await pipe.execute()
        for job_id, raw in zip(ids, hashes, strict=True):
            if not raw or b"status" not in raw:
                continue  # expired between SCAN and HGETALL
            record = JobRecord.from_hash(job_id, raw)
            if status is None or record.status is status:
                items.append(_admin_job(record))
        if cursor == 0 or len(items) >= limit:
            break
    return JobsPage(status=status, items=items, next_cursor=str(cursor) if cursor else None)


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]  # noqa: RUF012 - Litestar's declaration style
    guards = [require_admin]  # noqa: RUF012

    @get(
        "/tokens",
        summary="The HF token pool: state, cooldown, in-flight, usage",
        responses=problem_responses(401, 404),
    )
    async def tokens(self, services: NamedDependency[Services]) -> PoolView:
        return await read_pool(services.redis, services.keys)

    @get("/jobs", summary="Jobs, optionally by status, paged", responses=problem_responses(400, 401, 404))
    async def jobs(
        self,
        services: NamedDependency[Services],
        status: FromQuery[Status | None] = None,
        cursor: Annotated[
            str, QueryParameter(pattern=r"^\d{1,20}$", description="next_cursor of the previous page")
        ] = "0",
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="about this many jobs per page")] = 50,
    ) -> JobsPage:
        position = int(cursor)
        if position >= 2**64:  # SCAN cursors are unsigned 64-bit; Redis rejects larger ones
            raise Problem(400, "invalid_cursor", "Bad cursor", "Pass the next_cursor of the previous page.")
        return await scan_jobs(services, status, position, limit)
