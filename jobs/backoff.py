"""Back-off: how long to wait after the n-th failure in a row. One formula for every retry in the
pipeline (a job's next attempt, a webhook's next delivery, a worker riding out a Redis outage), so
they all double, cap and spread the same way.

Jitter spreads the retries of many processes that failed at the same moment (a Redis restart, a
Space outage) so they do not come back in step: "full" draws from [0, ceiling) and spreads most;
"half" draws from [ceiling/2, ceiling), so a retry never comes almost at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

__all__ = ["Backoff", "Jitter", "backoff_delay"]

Jitter = Literal["full", "half"]


def backoff_delay(
    failures: int,
    base_s: float,
    cap_s: float,
    *,
    jitter: Jitter = "full",
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the `failures`-th failure (1, 2, ...): base * 2^(failures - 1), at most
    cap, jittered."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(failures - 1, 0), 30))
    if jitter == "full":
        return float(rand() * ceiling)
    return float(ceiling * (0.5 + rand() / 2))


class Backoff:
    """A loop's back-off while a dependency is away (Redis restarting or failing over), reset by the
    first success.

    The default stays short (0.1-0.2 s at first, at most a couple of seconds) because a consumer's
    first task after an outage is to renew its leases: every second of downtime already counts as
    idle time of the entries it owns."""

    def __init__(self, base_s: float = 0.2, cap_s: float = 2.0) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._failures = 0

    @property
    def failing(self) -> bool:
        return self._failures > 0

    def next_delay(self) -> float:
        self._failures += 1
        return backoff_delay(self._failures, self._base_s, self._cap_s, jitter="half")

    def reset(self) -> None:
        self._failures = 0
