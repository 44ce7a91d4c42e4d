"""The processes `ghibli up` runs, and their output passed on through `up`.

Each child runs in a session of its own (the terminal's signals reach `up` only), is told by Linux to
get SIGTERM if `up` dies (PR_SET_PDEATHSIG), reads nothing from the terminal, and writes into a pipe
that `up` reads: whole lines go to `up`'s stderr, so lines of different processes never glue together,
start-up chatter that does not apply to a local stack is left out, and a closed terminal (SIGHUP)
cannot make a child's log write fail half-way through its shutdown: `up` then sends the rest to
/dev/null.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from ghibli.up_signals import unblock_in_child

__all__ = ["Child", "Output", "redis_noise"]

_PR_SET_PDEATHSIG = 1
_MAX_LINE = 64 * 1024


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc Linux: children are not tied to `up`'s death
        return None


# Loaded in the parent: a forked child should call as little as possible before exec.
_LIBC = _load_libc()


def _child_setup(parent: int) -> Callable[[], None]:
    def setup() -> None:
        unblock_in_child()
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # `up` died before the line above: nobody will stop us
                os._exit(1)

    return setup


def redis_noise(line: bytes) -> bool:
    """Redis start-up lines that do not apply to the local stack: its banner, and warnings about
    background saves (off here) and a listen backlog a local demo never fills."""
    return any(
        mark in line
        for mark in (
            b"oO0OoO0OoO0Oo Redis is starting",
            b"Redis version=",
            b"Configuration loaded",
            b"Server initialized",
            b"WARNING Memory overcommit must be enabled",
            b"WARNING overcommit_memory is set to 0",
            b"WARNING: The TCP backlog setting",
        )
    )


class Output:
    """`up`'s own messages and its children's lines, on its stdout/stderr, whole lines at a time."""

    def __init__(self) -> None:
        self.terminal_gone = False
        self._partial: dict[int, bytearray] = {}
        self._drop: dict[int, Callable[[bytes], bool]] = {}

    def say(self, text: str, *, err: bool = True) -> None:
        self._write(2 if err else 1, (text + "\n").encode())

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except InterruptedError:
                continue
            except OSError:  # EIO after the terminal closed, EPIPE: nobody reads any more
                self._lose(fd)
                return

    def _lose(self, fd: int) -> None:
        """From now on this stream goes nowhere (later writes, ours or at exit, cannot fail)."""
        self.terminal_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
        os.close(devnull)

    def follow(self, fd: int, drop: Callable[[bytes], bool] | None = None) -> None:
        os.set_blocking(fd, False)
        self._partial[fd] = bytearray()
        if drop is not None:
            self._drop[fd] = drop

    def pump(self, timeout_s: float) -> None:
        """Pass on what the children wrote, waiting up to timeout_s for something to arrive."""
        if not self._partial:
            if timeout_s > 0:
                select.select([], [], [], timeout_s)
            return
        try:
            ready, _, _ = select.select(list(self._partial), [], [], max(0.0, timeout_s))
        except InterruptedError:
            return
        for fd in ready:
            self._read(fd)

    def _read(self, fd: int) -> None:
        buffer = self._partial[fd]
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the child closed its end: exited
            if buffer:
                self._emit(fd, bytes(buffer) + b"\n")
            del self._partial[fd]
            self._drop.pop(fd, None)
            os.close(fd)
            return
        buffer += chunk
        end = buffer.rfind(b"\n")
        if end < 0 and len(buffer) < _MAX_LINE:
            return
        cut = end + 1 if end >= 0 else len(buffer)
        self._emit(fd, bytes(buffer[:cut]))
        del buffer[:cut]

    def _emit(self, fd: int, lines: bytes) -> None:
        drop = self._drop.get(fd)
        if drop is not None:
            lines = b"".join(line for line in lines.splitlines(keepends=True) if not drop(line))
        if lines:
            self._write(2, lines)

    def drain(self, fd: int | None) -> None:
        """Everything a child that exited wrote (its pipe ends when every writer closed it)."""
        while fd is not None and fd in self._partial:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                return  # a grandchild still holds the pipe: do not wait for it
            self._read(fd)


@dataclass(slots=True)
class Child:
    """One process of the stack."""

    name: str
    argv: list[str]
    env: dict[str, str]
    drop: Callable[[bytes], bool] | None = None
    proc: subprocess.Popen[bytes] | None = None
    output_fd: int | None = None
    restarts: int = 0
    restart_at: float | None = None
    signalled: set[int] = field(default_factory=set)

    def start(self, output: Output) -> None:
        self.signalled = set()
        self.proc = subprocess.Popen(  # noqa: S603 - our own executables
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509 - `up` runs no threads
        )
        assert self.proc.stdout is not None
        self.output_fd = os.dup(self.proc.stdout.fileno())
        self.proc.stdout.close()
        output.follow(self.output_fd, self.drop)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, signum: int) -> None:
        """Send a signal once (a repeat of the same one would mean something else to the child)."""
        if self.alive and signum not in self.signalled:
            assert self.proc is not None
            self.signalled.add(signum)
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)
