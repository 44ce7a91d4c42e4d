"""Rate limits per client and backpressure on submissions.

Rate limit: a token bucket per client in Redis (ingest/ratelimit.py), shared by every ingest process.
Two buckets, because their costs differ by orders of magnitude: submissions (handlers marked with
opt={"rate_limit": "submits"}) and every other API request. Health, metrics, the schema and static
files are never limited. Over the limit: 429 + Retry-After.

Backpressure: before a submission's body is even read (a guard runs before the multipart parser),
the backlog of queued work is compared with GHIBLI_MAX_BACKLOG; above it: 503 + Retry-After, so a
flood of uploads is refused cheaply instead of queuing jobs nobody will see finish.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from redis.exceptions import RedisError

from ingest.auth import presents_valid_key
from ingest.problems import Problem
from ingest.services import Services, services_from_state
from jobs.logs import get_logger
from metrics.definitions import JOBS_REJECTED

__all__ = ["EXEMPT_PREFIXES", "RateLimitMiddleware", "backlog_guard"]

log = get_logger("ingest.limits")

EXEMPT_PREFIXES = ("/healthz", "/readyz", "/metrics", "/schema", "/static")
BACKLOG_RETRY_AFTER_S = 30
SUBMITS = "submits"


def _exempt(scope: Scope) -> bool:
    return scope["path"].startswith(EXEMPT_PREFIXES)


class RateLimitMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    exclude_opt_key = "no_rate_limit"
    should_bypass_for_scope = staticmethod(_exempt)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        services = services_from_state(scope["litestar_app"].state)
        settings = services.settings
        bucket = scope["route_handler"].opt.get("rate_limit", "requests")
        limit = settings.rate_limit_submits if bucket == SUBMITS else settings.rate_limit_requests
        if bucket == SUBMITS and presents_valid_key(services, scope):
            limit = 0  # an API key's submissions are limited per key, by its own rate (ingest/auth.py)
        if limit > 0:
            await self._check(services, scope, bucket, limit)
        await next_app(scope, receive, send)

    @staticmethod
    async def _check(services: Services, scope: Scope, bucket: str, limit: int) -> None:
        try:
            decision = await services.limiter.hit(bucket, services.client_address.bucket(scope), limit)
        except RedisError as exc:
            # Without Redis the request fails on its own a moment later; the limiter adds nothing.
            log.warning("rate limiter unavailable", error=type(exc).__name__)
            return
        if decision.allowed:
            return
        if bucket == SUBMITS:
            JOBS_REJECTED.labels(reason="rate_limited").inc()
        raise Problem(
            429,
            "rate_limited",
            "Too many requests",
            f"At most {limit} {'submissions' if bucket == SUBMITS else 'requests'} per minute per client; "
            f"retry in {decision.retry_after_header} s.",
            headers={"Retry-After": decision.retry_after_header, "RateLimit-Limit": str(limit)},
        )


async def backlog_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    services = services_from_state(connection.app.state)
    limit = services.settings.max_backlog
    if limit <= 0:
        return
    backlog = await services.submissions.backlog()
    if backlog >= limit:
        JOBS_REJECTED.labels(reason="overloaded").inc()
        raise Problem(
            503,
            "overloaded",
            "Too much work queued",
            f"{backlog} jobs are waiting (limit {limit}); retry in {BACKLOG_RETRY_AFTER_S} s.",
            headers={"Retry-After": str(BACKLOG_RETRY_AFTER_S)},
        )
