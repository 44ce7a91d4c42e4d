"""A clock a test moves by hand: parts that take a `clock` (jobs.store.Clock) see time pass at once,
so a test of a lease, a cool-down or a retry's due time does not sleep."""

from __future__ import annotations

import time


class MsClock:
    """Wall-clock milliseconds, starting now (or at `now`), that move only when told."""

    def __init__(self, now: int | None = None) -> None:
        self.now = int(time.time() * 1000) if now is None else now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)
