"""How a consumer or webhook dispatcher reads stop signals: drain on the first, "now" on a real second.

SIGTERM and SIGINT ask the process to drain: take no new work, let what runs finish within the grace
period. One request often arrives twice: a terminal sends SIGINT to its whole foreground process group,
and a supervisor in that group (a shell script, tini, an old `ghibli up`) forwards its own signal a
moment later. So a stop signal within REPEAT_WINDOW_S of the first one is the same request delivered
twice and is only logged; one after the window means "stop at once". SIGQUIT means "stop at once" at
any time: `ghibli up` sends it on a second Ctrl-C (its children never see the terminal's signals), and
an operator can send it to skip the window.

"Stop at once" still stops cleanly: running calls are stopped and their entries handed back to Redis
for immediate take-over; only the waiting is skipped.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from jobs.logs import get_logger

__all__ = ["DRAIN_SIGNALS", "NOW_SIGNALS", "REPEAT_WINDOW_S", "StopRequests", "watch_stop_signals"]

log = get_logger("jobs.stop_signals")

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
NOW_SIGNALS = (signal.SIGQUIT,)
# Long enough for a forwarded copy on a loaded machine (0.4 s was seen), short against a person who
# reads "stopping" and asks again.
REPEAT_WINDOW_S = 2.0

Verdict = Literal["drain", "repeat", "now", "again"]


@dataclass(slots=True)
class StopRequests:
    """The decision alone (no signals), so it can be tested with a clock of its own."""

    window_s: float = REPEAT_WINDOW_S
    first_at: float | None = None
    now_at: float | None = None

    def classify(self, signum: int, at: float) -> Verdict:
        """drain: the first request; repeat: the same request again; now: stop at once; again: after now."""
        if self.now_at is not None:
            return "again"
        if signum in NOW_SIGNALS or (self.first_at is not None and at - self.first_at >= self.window_s):
            self.now_at = at
            if self.first_at is None:
                self.first_at = at
            return "now"
        if self.first_at is None:
            self.first_at = at
            return "drain"
        return "repeat"


async def watch_stop_signals(
    on_drain: Callable[[], None], on_now: Callable[[], None], *, process: str
) -> None:
    """Call on_drain on the first stop request and on_now on a real second one (or SIGQUIT); runs until
    cancelled. `process` names the process in the log lines ("consumer", "webhooks")."""
    requests = StopRequests()
    with anyio.open_signal_receiver(*DRAIN_SIGNALS, *NOW_SIGNALS) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            at = time.monotonic()
            verdict = requests.classify(signum, at)
            if verdict == "drain":
                log.info(
                    "stopping: no new work",
                    process=process,
                    signal=name,
                    at_once_with=f"SIGQUIT, or SIGTERM/SIGINT again after {requests.window_s:.0f} s",
                )
                on_drain()
            elif verdict == "repeat":
                assert requests.first_at is not None
                log.info(
                    "stop request repeated: the same request, still draining",
                    process=process,
                    signal=name,
                    after_s=round(at - requests.first_at, 3),
                )
            elif verdict == "now":
                log.warning("stopping at once", process=process, signal=name)
                on_now()
            else:
                log.info("already stopping at once", process=process, signal=name)
