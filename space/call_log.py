"""One JSON line per Space call, for tests and benchmarks that count what the Space saw.

Chaos tests count duplicate calls (same input and seed) and calls running at once per token from
these lines. The caller's token appears only as an alias (first 8 hex digits of its SHA-256), the
same alias the consumers use; the raw token is never written.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CallLog", "CallRecord", "file_sha256", "token_alias"]

ANONYMOUS = "anonymous"


def token_alias(headers: Mapping[str, str]) -> str:
    """Alias of the bearer token in `x-hf-authorization` (Python client) or `authorization` (JS)."""
    for name in ("x-hf-authorization", "authorization"):
        value = headers.get(name, "")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return hashlib.sha256(token.strip().encode()).hexdigest()[:8]
    return ANONYMOUS


def file_sha256(path: str | Path | None) -> str | None:
    """SHA-256 of a file's bytes (the uploaded photo as received), None when unreadable."""
    if path is None:
        return None
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CallRecord:
    call: int  # arrival number, 1-based, in this Space process
    start: float  # unix time the call started (after Gradio's queue)
    end: float  # unix time it answered or failed
    outcome: str  # "ok", a fault kind (quota, quota_html, no_gpu, worker_error, queue_full) or "error"
    seed: int | None
    width: int | None
    height: int | None
    input_sha256: str | None  # of the uploaded file's bytes
    token: str  # alias or "anonymous"
    session: str | None  # gradio_client's session hash (one per Client)
    engine: str
    error: str | None = None  # the message sent back, when the call failed


class CallLog:
    """Appends records to a file; safe to share between Gradio's worker threads."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._calls = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def next_call(self) -> int:
        with self._lock:
            self._calls += 1
            return self._calls

    def write(self, record: CallRecord) -> None:
        if self._path is None:
            return
        line = json.dumps(asdict(record), separators=(",", ":")) + "\n"
        with self._lock, self._path.open("a", encoding="utf-8") as fh:
            fh.write(line)
