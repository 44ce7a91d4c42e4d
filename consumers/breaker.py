"""A circuit breaker for the Space: stop claiming jobs while it is paused, broken or unreachable.

Without it, every queued job would spend its attempts against a Space that cannot answer and end
dead-lettered. Open, the consumer claims nothing (`open_until`); when the pause ends, the next
call is the probe (half-open): success closes the breaker, another failure opens it again for
twice as long, up to `max_open_s`.

It opens at once on a BROKEN error (paused, invalid runtime state, endpoint missing, auth), and
after `threshold` network failures in a row (a Space that is down refuses connections).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from consumers.errors import ErrorKind, SpaceError

__all__ = ["CircuitBreaker"]

_UNREACHABLE = frozenset({"network", "space_unavailable"})


class CircuitBreaker:
    def __init__(
        self,
        *,
        open_s: float,
        max_open_s: float = 600.0,
        threshold: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.open_s = open_s
        self.max_open_s = max(max_open_s, open_s)
        self.threshold = threshold
        self._clock = clock
        self._until = 0.0
        self._trips = 0  # openings since the last success: each doubles the pause
        self._network_failures = 0
        self.reason = ""

    @property
    def state(self) -> str:
        if self._until > self._clock():
            return "open"
        return "half_open" if self._trips else "closed"

    def open_until(self) -> float | None:
        """Unix time until which nothing should be claimed, or None."""
        return self._until if self._until > self._clock() else None

    def trip(self, reason: str) -> float:
        """Open (or re-open, for longer); returns the unix time it stays open until."""
        pause = min(self.max_open_s, self.open_s * 2**self._trips)
        self._trips += 1
        self._until = max(self._until, self._clock() + pause)
        self.reason = reason
        return self._until

    def adopt(self, until: float, reason: str) -> None:
        """Another consumer opened the shared breaker: pause as long, without doubling ours."""
        if until > self._until:
            self._until = until
            self.reason = reason

    def record(self, error: SpaceError | None) -> bool:
        """Account one call's outcome; True if it opened the breaker."""
        if error is None:
            self._trips = 0
            self._network_failures = 0
            self._until = 0.0
            self.reason = ""
            return False
        if error.kind is ErrorKind.BROKEN:
            self.trip(f"{error.code}: {error.message}")
            return True
        if error.code in _UNREACHABLE:
            self._network_failures += 1
            if self._network_failures >= self.threshold:
                self._network_failures = 0
                self.trip(f"{error.code}: {error.message}")
                return True
        elif error.kind is not ErrorKind.QUOTA:
            # The Space answered: it is up, whatever else went wrong.
            self._network_failures = 0
        return False
