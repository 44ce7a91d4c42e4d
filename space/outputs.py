"""Where the offline Space writes its pictures: one new file per call.

Returning a PIL image lets Gradio write it to `<cache>/<hash of bytes>/image.webp`, so two calls
with the same seed and photo write the same file while it may be being downloaded, and the
client sees a truncated body. Each call here writes its own `generated-<nonce>.webp` (atomically,
by rename) and returns the path; Gradio copies it into its cache under that unique name. The bytes
stay identical for identical inputs: same seed, same pixels, same bytes, different file names.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from PIL import Image

__all__ = ["OutputDir"]

_PREFIX = "ghibli-space-"


def _remove_orphans() -> None:
    """Delete output directories of Space processes that are gone (SIGTERM skips atexit)."""
    for entry in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = entry.name[len(_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(entry, ignore_errors=True)


class OutputDir:
    """A private temporary directory for this process's outputs, swept of old files as it goes."""

    def __init__(self, keep_s: float = 900.0) -> None:
        _remove_orphans()
        self.path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        self._keep_s = keep_s
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()
        atexit.register(shutil.rmtree, self.path, True)

    def write(self, image: Image.Image) -> str:
        """Save as WebP (the format the Space's Gradio returns) under a unique name; return the path."""
        name = f"generated-{uuid.uuid4().hex}.webp"
        partial = self.path / f".{name}.part"
        image.save(partial, format="WEBP")
        final = self.path / name
        os.replace(partial, final)
        self._sweep()
        return str(final)

    def _sweep(self) -> None:
        """Delete outputs older than keep_s (Gradio has its own copy by then), at most once a minute."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_sweep < 60:
                return
            self._last_sweep = now
        cutoff = time.time() - self._keep_s
        for entry in self.path.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
            except OSError:
                continue
