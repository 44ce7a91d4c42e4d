"""A command in a pseudo-terminal, as a person runs it: its own session, the pty as its controlling
terminal, and keys typed into it (Ctrl-C makes the terminal send SIGINT to the foreground group).

A thread drains the terminal all the time (a full pty would block every writer) into a transcript
that tests read; `close()` hangs the terminal up, as closing its window does (SIGHUP).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import subprocess
import termios
import threading
import time
from pathlib import Path

__all__ = ["PtyProc"]

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _take_terminal() -> None:
    """In the child, after setsid: make the pty (its stdin) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProc:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, transcript: Path) -> None:
        self.transcript = transcript
        self._master, slave = pty.openpty()
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,  # noqa: PLW1509 - the tests start it before any thread of ours
        )
        os.close(slave)
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        with self.transcript.open("ab") as log:
            while not self._closing.is_set():
                ready, _, _ = select.select([self._master], [], [], 0.2)
                if not ready:
                    continue
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:  # EIO: every process closed the terminal
                    return
                if not chunk:
                    return
                log.write(chunk)
                log.flush()
                with self._lock:
                    self._buffer += chunk

    def text(self) -> str:
        """What the terminal showed so far, without colours."""
        with self._lock:
            raw = bytes(self._buffer)
        return _ANSI.sub(b"", raw).replace(b"\r\n", b"\n").decode(errors="replace")

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def interrupt(self) -> None:
        """Ctrl-C: the terminal's interrupt character, whatever it is set to."""
        self.type(termios.tcgetattr(self._master)[6][termios.VINTR])

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.text():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"exited with {self.proc.returncode} before {text!r}:\n{self.text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} within {timeout_s} s:\n{self.text()[-4000:]}")
            time.sleep(0.1)

    def wait(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        return code

    def close(self) -> None:
        """Hang the terminal up (the kernel sends SIGHUP to the session), as closing the window does."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._reader.join(5)
        with contextlib.suppress(OSError):
            os.close(self._master)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close()
