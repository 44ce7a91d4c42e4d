"""Liveness and readiness probes (never rate limited, never logged per request)."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency
from redis.exceptions import RedisError

from ingest.problems import Problem, problem_responses
from ingest.services import Services
from jobs.engine import EngineInfo

__all__ = ["HealthStatus", "ReadyStatus", "healthz", "readyz"]


class HealthStatus(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class ReadyStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Ready, and which engine paints this server's jobs (the page shows a notice for the demo)."""

    status: str
    engine: EngineInfo


@get("/healthz", summary="The process is up", tags=["health"], opt={"no_rate_limit": True})
async def healthz() -> HealthStatus:
    return HealthStatus(status="ok")


@get(
    "/readyz",
    summary="Redis reachable, jobs stream and consumer group in place",
    tags=["health"],
    opt={"no_rate_limit": True},
    responses=problem_responses(503),
)
async def readyz(services: NamedDependency[Services]) -> ReadyStatus:
    try:
        await services.redis.ping()
        groups = await services.redis.xinfo_groups(services.keys.stream)
    except (RedisError, OSError) as exc:
        raise Problem(
            503,
            "not_ready",
            "Not ready",
            f"Redis is not reachable ({type(exc).__name__}).",
            headers={"Retry-After": "5"},
        ) from None
    names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
    if services.keys.group not in names:
        raise Problem(
            503,
            "not_ready",
            "Not ready",
            "The consumer group does not exist yet.",
            headers={"Retry-After": "5"},
        )
    return ReadyStatus(status="ready", engine=services.engine.current)
