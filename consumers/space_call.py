"""The consumer's one door to the Space: run a job's call with a suitable token.

The worker only sees `SpaceCaller.call` (result bytes or a classified SpaceError), `QuotaWait`
(every token is cooling down: wait, do not fail) and `paused_until` (the circuit breaker).
Token choice, one gradio Client per (space, token) and cooling live behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread

from consumers.space_client import SpaceSession, SpaceUpdate
from jobs.model import JobParams

__all__ = ["CallResult", "SpaceCaller"]


@dataclass(frozen=True, slots=True)
class CallResult:
    data: bytes
    media_type: str
    token_alias: str  # "anonymous" when no token is configured


class SpaceCaller:
    """Anonymous calls through one session (the token pool replaces this with rotation)."""

    def __init__(self, space: str, *, call_timeout_s: float, max_concurrent: int) -> None:
        self._session = SpaceSession(space, token=None)
        self._timeout_s = call_timeout_s
        self._threads = anyio.CapacityLimiter(max_concurrent)

    def paused_until(self) -> float | None:
        """Unix time until which no new job should be claimed (circuit open), or None."""
        return None

    async def call(
        self,
        params: JobParams,
        image_path: Path,
        *,
        on_update: Callable[[SpaceUpdate], None],
        stop: threading.Event,
    ) -> CallResult:
        """Run one generation in a worker thread. Raises SpaceError or QuotaWait.

        `on_update` is called in the worker thread; `stop` (set by the caller) abandons the call.
        """
        data, media_type = await anyio.to_thread.run_sync(
            partial(
                self._session.generate,
                image_path,
                params,
                timeout_s=self._timeout_s,
                on_update=on_update,
                should_stop=stop.is_set,
            ),
            limiter=self._threads,
            abandon_on_cancel=True,
        )
        return CallResult(data, media_type, "anonymous")

    async def aclose(self) -> None:
        self._session.reset()
