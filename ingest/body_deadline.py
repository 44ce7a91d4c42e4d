"""Slow uploads are cut off: a request body must arrive within GHIBLI_BODY_TIMEOUT_SECONDS, with no
pause longer than GHIBLI_HEADER_TIMEOUT_SECONDS, or the request ends with `408 request_timeout`.

The clock runs only while the body is being read; once it is complete (or the client has gone),
`receive` is passed through untouched, so SSE streams and the disconnect watcher
(ingest/disconnect.py) wait on it as long as they like.
"""

from __future__ import annotations

import anyio
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from ingest.problems import Problem
from ingest.services import services_from_state

__all__ = ["BodyDeadlineMiddleware"]


def _timeout(detail: str) -> Problem:
    return Problem(408, "request_timeout", "Request Timeout", detail, headers={"Connection": "close"})


class BodyDeadlineMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        settings = services_from_state(scope["litestar_app"].state).settings
        total_s, pause_s = settings.body_timeout_seconds, settings.header_timeout_seconds
        deadline = anyio.current_time() + total_s
        complete = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal complete
            if complete:
                return await receive()
            left = deadline - anyio.current_time()
            if left <= 0:
                raise _timeout(f"The request body took longer than {total_s:g} s.")
            with anyio.move_on_after(min(left, pause_s)):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    complete = True
                return message
            if left <= pause_s:
                raise _timeout(f"The request body took longer than {total_s:g} s.")
            raise _timeout(f"The request body paused for more than {pause_s:g} s.")

        await next_app(scope, receive_in_time, send)
