"""One log line per request, written when the response is done: method, route, status, duration.

Never bodies, headers, cookies or query strings (photos, keys and secrets stay out of the logs). A
job id is logged as `job_id` like everywhere else. Litestar's own logging middleware is not used:
it logs a line per response chunk (one per SSE event) and, by default, bodies and headers.
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from jobs.logs import get_logger

__all__ = ["RequestLogMiddleware"]

log = get_logger("ingest.requests")

_QUIET = ("/healthz", "/readyz", "/metrics")


def _quiet(scope: Scope) -> bool:
    return scope["path"].startswith(_QUIET)


class RequestLogMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    should_bypass_for_scope = staticmethod(_quiet)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_wrapper)
        except HTTPException as exc:  # raised by a middleware after this one; turned into a response above
            status = exc.status_code
            raise
        finally:
            fields: dict[str, object] = {
                "method": scope.get("method", ""),
                "route": scope.get("path_template", ""),  # the template: job ids go to job_id only
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            job_id = scope.get("path_params", {}).get("job_id") or scope.get("path_params", {}).get("task_id")
            if job_id:
                fields["job_id"] = str(job_id)[:64]
            key_id = scope.get("state", {}).get("key_id")  # set on submissions by ingest/auth.py
            if key_id:
                fields["key_id"] = key_id
            log.info("request", **fields)
