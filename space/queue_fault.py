"""The `queue_full` fault: refuse a call at Gradio's queue door with HTTP 503, as a full queue does.

A full Gradio queue answers `POST /gradio_api/queue/join` with 503 before the function ever runs,
and gradio_client raises `QueueError("Queue is full! Please try again.")`. A gr.Error raised in the
function would reach the client as an AppError instead, so this fault lives in an ASGI middleware
that reads the join request's data (to know the seed) and answers 503 itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from space.call_log import CallLog, CallRecord, file_sha256, token_alias
from space.faults import FaultPlan, refusal

__all__ = ["QueueFullFault"]

ASGIApp = Any  # Starlette's ASGI callables; typed loosely to keep Starlette out of the signature


@dataclass(frozen=True, slots=True)
class _Join:
    """What a join body {"data": [prompt, img, height, width, seed, ...], "session_hash"} says."""

    seed: int | None = None
    width: int | None = None
    height: int | None = None
    upload: str | None = None
    session: str | None = None


def _read_join(body: bytes) -> _Join:
    try:
        payload = json.loads(body)
        data = payload["data"]
        image = data[1] if isinstance(data[1], dict) else {}
        return _Join(int(data[4]), int(data[3]), int(data[2]), image.get("path"), payload.get("session_hash"))
    except (ValueError, KeyError, IndexError, TypeError):
        return _Join()


class QueueFullFault:
    """ASGI middleware: joins the fault plan picks get 503 {"detail": "Queue is full. ..."}."""

    def __init__(self, app: ASGIApp, *, plan: FaultPlan, log: CallLog, engine: str) -> None:
        self.app = app
        self.plan = plan
        self.log = log
        self.engine = engine

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/queue/join"):
            await self.app(scope, receive, send)
            return
        messages: list[dict[str, Any]] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        join = _read_join(body)
        if join.seed is not None and self.plan.should_fail(join.seed):
            await self._refuse(scope, send, join)
            return

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict[str, Any], send: Any, join: _Join) -> None:
        now = time.time()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        alias = token_alias(headers)
        answer = refusal("queue_full", anonymous=alias == "anonymous", retry_after_s=self.plan.retry_after_s)
        self.log.write(
            CallRecord(
                call=self.log.next_call(),
                start=now,
                end=time.time(),
                outcome="queue_full",
                seed=join.seed,
                width=join.width,
                height=join.height,
                input_sha256=file_sha256(join.upload),
                token=alias,
                session=join.session,
                engine=self.engine,
                error=answer.message,
            )
        )
        payload = json.dumps({"detail": answer.message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
