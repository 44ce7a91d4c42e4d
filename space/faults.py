"""Fault injection for the offline Space: the real Space's failures, on demand.

Which calls fail (any rule that matches makes the call fail):
- `first`: the first N calls fail, then the rest succeed (retry and poison tests);
- `seeds`: calls whose seed is in this set always fail, however often they are retried;
- `rate`: any other call fails with this probability.

How they fail (`kind`) uses the texts and titles the ZeroGPU runtime (`spaces` 0.51.3, and 0.34.1
for the HTML variant) really sends, so consumers classify them exactly as they would in production:
- quota:        "ZeroGPU quota exceeded", plain text with "Try again in H:MM:SS";
- quota_html:   the older HTML text, with no retry time at all;
- no_gpu:       "ZeroGPU queue timeout", "No GPU was available after 60s ...";
- worker_error: "ZeroGPU worker error", "GPU task aborted";
- queue_full:   the queue refuses the call with HTTP 503 at join time (gradio_client QueueError).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

__all__ = ["FAULT_KINDS", "FaultPlan", "Refusal", "parse_seeds", "refusal"]

FAULT_KINDS = ("quota", "quota_html", "no_gpu", "worker_error", "queue_full")

_QUOTA_TITLE = "ZeroGPU quota exceeded"
_REQUESTED_S = 60
_LEFT_S = 12
_ANON_HINT = "Authenticate with a Hugging Face token for more quota - https://huggingface.co/settings/tokens"
_FREE_HINT = (
    "Subscribe to Hugging Face PRO to get 40 min of ZeroGPU quota a day - "
    "https://huggingface.co/subscribe/pro?from=ZeroGPU"
)
_LINK_STYLE = "text-decoration: underline"


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the Space answers instead of a picture: a gr.Error's message and title."""

    kind: str
    message: str
    title: str


def _wait_text(seconds: float) -> str:
    """str(timedelta), as the ZeroGPU runtime formats it: '0:00:05', '1 day, 2:03:04'."""
    return str(timedelta(seconds=seconds))


def refusal(kind: str, *, anonymous: bool, retry_after_s: float) -> Refusal:
    """The exact error the real Space raises for this kind of fault (see the module doc)."""
    if kind == "quota":
        who = "ZeroGPU" if anonymous else "free ZeroGPU"
        hint = _ANON_HINT if anonymous else _FREE_HINT
        message = (
            f"You have exceeded your {who} quota ({_REQUESTED_S}s requested vs. {_LEFT_S}s left). "
            f"Try again in {_wait_text(retry_after_s)}. {hint}"
        )
        return Refusal(kind, message, _QUOTA_TITLE)
    if kind == "quota_html":
        if anonymous:
            tail = (
                f'<a style="{_LINK_STYLE}" href="https://huggingface.co/join">Create a free account</a> '
                "to get more daily usage quota."
            )
            who = "GPU"
        else:
            tail = (
                f'<a style="{_LINK_STYLE}" href="https://huggingface.co/subscribe/pro">Subscribe to Pro</a> '
                "to get 5x more daily usage quota."
            )
            who = "free GPU"
        message = (
            f"You have exceeded your {who} quota ({_REQUESTED_S}s requested vs. {_LEFT_S}s left). {tail}"
        )
        return Refusal(kind, message, _QUOTA_TITLE)
    if kind == "no_gpu":
        return Refusal(kind, "No GPU was available after 60s. Please retry later.", "ZeroGPU queue timeout")
    if kind == "worker_error":
        return Refusal(kind, "GPU task aborted", "ZeroGPU worker error")
    if kind == "queue_full":
        return Refusal(kind, "Queue is full. Max size is 0 and size is 0.", "Queue full")
    raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")


@dataclass
class FaultPlan:
    """Decides, call by call, whether the Space fails. Thread-safe: Gradio runs calls in threads."""

    kind: str = "quota"
    rate: float = 0.0
    first: int = 0
    seeds: frozenset[int] = frozenset()
    retry_after_s: float = 5.0
    _calls: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _random: random.Random = field(default_factory=random.Random, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")

    @property
    def active(self) -> bool:
        return self.rate > 0 or self.first > 0 or bool(self.seeds)

    def should_fail(self, seed: int) -> bool:
        """Count this call and say whether it fails. Call once per call, in arrival order."""
        with self._lock:
            self._calls += 1
            if seed in self.seeds or self._calls <= self.first:
                return True
            return self.rate > 0 and self._random.random() < self.rate


def parse_seeds(values: Iterable[str]) -> frozenset[int]:
    """'1,2' and ['1', '2'] alike; blanks are ignored."""
    seeds: set[int] = set()
    for value in values:
        seeds.update(int(part) for part in value.split(",") if part.strip())
    return frozenset(seeds)
