"""`GET /api/token-status`: the old product's token report, in its shape, from our token pool.

The old route took `?secret=ADMIN_SECRET`, compared it with `!==`, fell back to a default secret
and showed each token's first 10 characters. Here: the secret comes from `Authorization: Bearer
<ADMIN_SECRET>`, compared in constant time; without ADMIN_SECRET the route does not exist (404
`admin_disabled`); `?secret=` is accepted only when the operator turns GHIBLI_ADMIN_SECRET_IN_QUERY
on (URLs end up in proxy, browser and CDN logs), and is otherwise refused with its own code so the
caller learns why. Tokens are shown by alias (a hash prefix), never by any of their characters.

Shape (the old one): `{timestamp, summary: {totalTokens, availableTokens, usedTokens,
totalUsageMinutes, averageUsageMinutes}, tokens: [{token, usageMinutes, available, quotaExceeded}]}`
with the usage minutes as strings with one decimal in the summary, as before. Our meaning:
usage is GPU time requested today (UTC), `available` a token that can take a call now,
`quotaExceeded` one cooling down after a ZeroGPU quota error, `usedTokens` those used today.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import HeaderParameter, QueryParameter

from ingest.admin import admin_disabled, bearer_matches, secret_matches
from ingest.problems import Problem, problem_responses
from ingest.services import Services, services_from_state
from jobs.token_state import PoolView, read_pool

__all__ = ["TokenStatus", "token_status"]

_REALM = 'Bearer realm="ghibli-admin"'
_OLD_ERROR = "Unauthorized access"  # what the old route answered; old dashboards display it


class TokenUsage(msgspec.Struct, frozen=True):
    token: str  # the alias, never the token
    usageMinutes: float  # the old product's field names
    available: bool
    quotaExceeded: bool


class TokenSummary(msgspec.Struct, frozen=True):
    totalTokens: int
    availableTokens: int
    usedTokens: int
    totalUsageMinutes: str
    averageUsageMinutes: str


class TokenStatus(msgspec.Struct, frozen=True):
    timestamp: str
    summary: TokenSummary
    tokens: list[TokenUsage]


def old_shape(pool: PoolView) -> TokenStatus:
    tokens = [
        TokenUsage(
            token=t.alias,
            usageMinutes=round(t.gpu_seconds_today / 60, 1),
            available=t.state == "ready",
            quotaExceeded=t.state == "cooling",
        )
        for t in pool.tokens
    ]
    total = sum(t.gpu_seconds_today for t in pool.tokens) / 60
    return TokenStatus(
        timestamp=pool.at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{pool.at.microsecond // 1000:03d}Z",
        summary=TokenSummary(
            totalTokens=len(tokens),
            availableTokens=sum(1 for t in tokens if t.available),
            usedTokens=sum(1 for t in pool.tokens if t.gpu_seconds_today > 0),
            totalUsageMinutes=f"{total:.1f}",
            averageUsageMinutes=f"{total / len(tokens) if tokens else 0.0:.1f}",
        ),
        tokens=tokens,
    )


def _unauthorized(code: str, detail: str) -> Problem:
    return Problem(
        401, code, "Admin secret required", detail, headers={"WWW-Authenticate": _REALM}, error=_OLD_ERROR
    )


async def require_token_status_secret(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    settings = services_from_state(connection.app.state).settings
    secret = settings.admin_secret
    if not secret:
        raise admin_disabled()
    if bearer_matches(secret, connection.headers.get("authorization", "")):
        return
    given = connection.query_params.get("secret")
    if given is None:
        raise _unauthorized("unauthorized", "Send the header Authorization: Bearer <ADMIN_SECRET>.")
    if not settings.admin_secret_in_query:
        raise _unauthorized(
            "secret_in_query_refused",
            "The secret is not accepted in the URL (URLs end up in logs); send the header "
            "Authorization: Bearer <ADMIN_SECRET>, or have the operator set GHIBLI_ADMIN_SECRET_IN_QUERY.",
        )
    if not secret_matches(secret, given):
        raise _unauthorized("unauthorized", "The secret is wrong.")


@get(
    "/api/token-status",
    summary="The HF token pool in the old product's shape (aliases, never tokens)",
    description="`Authorization: Bearer <ADMIN_SECRET>`; `?secret=` only with GHIBLI_ADMIN_SECRET_IN_QUERY. "
    "The full view is `GET /v1/admin/tokens`.",
    guards=[require_token_status_secret],
    responses=problem_responses(401, 404, 429),
)
async def token_status(
    services: NamedDependency[Services],
    secret: Annotated[
        str | None,
        QueryParameter(
            name="secret",
            required=False,
            description="ADMIN_SECRET, only with GHIBLI_ADMIN_SECRET_IN_QUERY on (risky: URLs are logged).",
        ),
    ] = None,
    authorization: Annotated[
        str | None,
        HeaderParameter(name="Authorization", required=False, description="Bearer <ADMIN_SECRET>"),
    ] = None,
) -> Response[TokenStatus]:
    del secret, authorization  # checked by the guard; declared for the API documentation
    status = old_shape(await read_pool(services.redis, services.keys))
    return Response(status, headers={"Cache-Control": "no-store"})
