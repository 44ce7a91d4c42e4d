"""Who submits: an API key (`Authorization: Bearer <key>`) or, where allowed, an anonymous client.

With no keys configured every submission is anonymous, as before. With keys, a submission needs a
valid key unless GHIBLI_PUBLIC_SUBMISSIONS is on; then a request *without* Authorization is
anonymous (limited per client address by the rate-limit middleware), while a wrong key is still a
401: a typo must not silently turn a key's caller into an anonymous one.

A key's caller is limited per key, not per address (one app backend submits for all its users):
its own token bucket (`rate`), and at most `max_unfinished` unfinished jobs (jobs/key_quota.py,
checked in ingest/intake.py). The key id goes on the job, into the request log line and into
metric labels; the key itself goes nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Scope
from redis.exceptions import RedisError

from ingest.problems import Problem
from ingest.services import Services, services_from_state
from jobs.apikeys import ANONYMOUS, ApiKey, KeyRing
from jobs.logs import get_logger
from metrics.definitions import JOBS_REJECTED

__all__ = [
    "ANONYMOUS_CALLER",
    "Caller",
    "identify",
    "presents_valid_key",
    "provide_caller",
    "submitter_guard",
]

log = get_logger("ingest.auth")

_REALM = 'Bearer realm="ghibli"'
_STATE_KEY = "caller"


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey | None = None
    address: str = ""  # the client's address bucket (ingest/client_ip.py), "" when unknown

    @property
    def client(self) -> str:
        """Who per-client limits count: the API key, else the address bucket."""
        return f"key:{self.key.id}" if self.key else f"addr:{self.address}"

    @property
    def key_id(self) -> str:
        """The key's id, '' for anonymous callers (the Idempotency-Key scope, the job's key_id)."""
        return self.key.id if self.key else ""

    @property
    def label(self) -> str:
        """What logs and metric labels show."""
        return self.key.id if self.key else ANONYMOUS


ANONYMOUS_CALLER = Caller()


def _unauthorized(code: str, title: str, detail: str) -> Problem:
    return Problem(401, code, title, detail, headers={"WWW-Authenticate": _REALM})


def identify(ring: KeyRing, authorization: str | None, *, public: bool) -> Caller:
    """The caller of a submission; raises a 401 Problem (api_key_required / invalid_api_key)."""
    if not ring.configured:
        return ANONYMOUS_CALLER
    if not authorization:
        if public:
            return ANONYMOUS_CALLER
        raise _unauthorized(
            "api_key_required", "API key required", "Send the header Authorization: Bearer <API key>."
        )
    scheme, _sep, presented = authorization.partition(" ")
    key = ring.authenticate(presented.strip()) if scheme.lower() == "bearer" and presented.strip() else None
    if key is None:
        raise _unauthorized(
            "invalid_api_key",
            "Invalid API key",
            "The API key is not valid. Send the header Authorization: Bearer <API key>.",
        )
    return Caller(key)


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            return str(value.decode("latin-1"))
    return None


def presents_valid_key(services: Services, scope: Scope) -> bool:
    """The request carries a configured API key (the middleware then leaves limits to the key's own)."""
    authorization = _authorization(scope)
    if not services.api_keys.configured or not authorization:
        return False
    scheme, _sep, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and services.api_keys.authenticate(presented.strip()) is not None


async def submitter_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Before the upload is read: who is it (401), and is the key over its rate (429)?"""
    services = services_from_state(connection.app.state)
    try:
        caller = identify(
            services.api_keys,
            connection.headers.get("authorization"),
            public=services.settings.public_submissions,
        )
    except Problem as problem:
        JOBS_REJECTED.labels(reason=problem.code).inc()
        raise
    caller = replace(caller, address=services.client_address.bucket(connection.scope))
    connection.scope["state"][_STATE_KEY] = caller
    connection.scope["state"]["key_id"] = caller.label  # the request log line (ingest/request_log.py)
    if caller.key is not None and caller.key.rate_per_minute > 0:
        await _check_key_rate(services, caller.key)


async def _check_key_rate(services: Services, key: ApiKey) -> None:
    try:
        decision = await services.limiter.hit("key-submits", key.id, key.rate_per_minute)
    except RedisError as exc:
        log.warning("rate limiter unavailable", error=type(exc).__name__)
        return
    if decision.allowed:
        return
    JOBS_REJECTED.labels(reason="rate_limited").inc()
    raise Problem(
        429,
        "rate_limited",
        "Too many requests",
        f"At most {key.rate_per_minute} submissions per minute for this API key; "
        f"retry in {decision.retry_after_header} s.",
        headers={"Retry-After": decision.retry_after_header, "RateLimit-Limit": str(key.rate_per_minute)},
    )


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """The caller submitter_guard identified (routes without that guard: anonymous)."""
    caller = request.scope["state"].get(_STATE_KEY)
    return caller if isinstance(caller, Caller) else ANONYMOUS_CALLER
