"""The signals that stop `ghibli up`, and who sent them.

`up` is the only process of its stack in the terminal's process group: its children run in sessions
of their own, so Ctrl-C (SIGINT), a closed terminal (SIGHUP) and SIGTERM reach `up` alone, and `up`
stops the stack in order (ghibli/up.py).

Linux says who sent a signal (siginfo): the terminal (si_code SI_KERNEL: Ctrl-C, a hang-up) or a
process (its pid). That tells a person pressing Ctrl-C twice (two signals from the terminal: stop at
once) from one request delivered twice (the terminal's SIGINT to the group and a parent in that group,
such as `uv run`, forwarding its own copy: still one request). A repeat from another sender counts
as a new request only after REPEAT_WINDOW_S. Where sigtimedwait is missing (macOS) the sender is
unknown and every repeat counts.

The signals stay blocked in `up` and are read with sigtimedwait between other work, so no handler
ever interrupts `up` half-way; children unblock them before they exec (`unblock_in_child`).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Literal

__all__ = ["STOP_SIGNALS", "Received", "SignalInbox", "StopPolicy", "unblock_in_child"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SI_KERNEL = 0x80
REPEAT_WINDOW_S = 1.0

Verdict = Literal["drain", "repeat", "now", "again"]


@dataclass(frozen=True, slots=True)
class Received:
    signum: int
    source: str | None  # "the terminal", "pid 123", or None where the platform does not say
    at: float

    def describe(self) -> str:
        name = signal.Signals(self.signum).name
        return f"{name} from {self.source}" if self.source else name


@dataclass(slots=True)
class StopPolicy:
    """First request: stop in order; a second one from the same sender (or after the window): at once."""

    window_s: float = REPEAT_WINDOW_S
    first: Received | None = None
    now: Received | None = None

    def classify(self, received: Received) -> Verdict:
        if self.now is not None:
            return "again"
        if self.first is None:
            self.first = received
            return "drain"
        same_sender = received.source is None or received.source == self.first.source
        if same_sender or received.at - self.first.at >= self.window_s:
            self.now = received
            return "now"
        return "repeat"


def unblock_in_child() -> None:
    """For a child before exec: the signal mask is inherited, and children must obey signals."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@dataclass
class SignalInbox:
    """Stop signals, queued until `poll()` reads them (with their sender where the platform says)."""

    _with_siginfo: bool = field(default_factory=lambda: hasattr(signal, "sigtimedwait"))
    _queued: list[Received] = field(default_factory=list)
    _previous: dict[int, object] = field(default_factory=dict)

    def __enter__(self) -> SignalInbox:
        if self._with_siginfo:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        else:
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._with_siginfo:
            self.poll()  # pending signals would act (and kill) the moment they are unblocked
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        else:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self._queued.append(Received(signum, None, time.monotonic()))

    def poll(self) -> list[Received]:
        """Signals received since the last call, oldest first; never waits."""
        if self._with_siginfo:
            while True:
                info = signal.sigtimedwait(STOP_SIGNALS, 0)
                if info is None:
                    break
                source = "the terminal" if info.si_code == SI_KERNEL else f"pid {info.si_pid}"
                self._queued.append(Received(info.si_signo, source, time.monotonic()))
        received, self._queued = self._queued, []
        return received
