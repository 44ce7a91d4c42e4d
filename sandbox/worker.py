"""A decode worker: one process that decodes untrusted images, one at a time, under hard limits.

Started by sandbox/pool.py as `python -m sandbox.worker --memory-mb M --cpu-seconds S`, with an
empty environment (no tokens, no Redis URL) and in its own session. Before it reads any task it
loads every codec it may need and then limits itself: its address space (RLIMIT_AS, so a
decompression bomb gets MemoryError or dies instead of swapping the host), no core files, no
file writes. Before each task its CPU soft limit is moved to "now + S seconds", so one task can
never take more than S seconds of CPU: the kernel sends SIGXCPU, which kills it. The pool also
kills it when a task outlives its wall-clock deadline or its request is abandoned.

Tasks arrive on stdin and replies leave on stdout as length-prefixed msgpack frames (wire.py);
fds 0 and 1 are then pointed away, so nothing a codec prints can corrupt the protocol.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
from pathlib import Path

import msgspec

from sandbox import wire
from sandbox.errors import ImageRefused

MB = 1024 * 1024
# A worker whose heap stays this large after a task is replaced rather than kept (fragmentation).
RETIRE_ABOVE_RSS_MB = 400


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write(fd: int, payload: bytes) -> None:
    view = memoryview(wire.frame(payload) + payload)
    while view:
        view = view[os.write(fd, view) :]


def _private_pipes() -> tuple[int, int]:
    """The protocol's own fds; 0 reads /dev/null and 1 goes to stderr from now on."""
    task_fd, reply_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return task_fd, reply_fd


def _limit_self(memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    if memory_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MB, memory_mb * MB))


def _cpu_budget(seconds: float) -> None:
    """SIGXCPU once this process has used `seconds` more CPU than it has so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _run(task: wire.Task) -> wire.Reply:
    # Imported here, after start-up has loaded them, only to keep this module's top light.
    from sandbox.photo import normalize_photo
    from sandbox.picture import check_picture, convert_picture

    if isinstance(task, wire.NormalizeTask):
        photo = normalize_photo(task.data, max_pixels=task.max_pixels, max_scans=task.max_scans)
        return wire.Reply(ok=True, data=photo.data, width=photo.width, height=photo.height)
    if isinstance(task, wire.CheckTask):
        picture = check_picture(task.data, width=task.width, height=task.height, photo=task.photo)
        return wire.Reply(
            ok=True,
            width=picture.width,
            height=picture.height,
            media_type=picture.media_type,
            same_as_input=picture.same_as_input,
        )
    data = convert_picture(task.data, task.fmt)
    return wire.Reply(ok=True, data=data)


def _answer(payload: bytes, memory_mb: int) -> wire.Reply:
    try:
        return _run(wire.decode_task(payload))
    except ImageRefused as exc:
        return wire.Reply(ok=False, status=exc.status, code=exc.code, message=exc.message)
    except MemoryError:
        return wire.Reply(
            ok=False,
            status=422,
            code="image_too_complex",
            message=f"Decoding it needs more than the {memory_mb} MB of memory a decode may use.",
            retire=True,
        )


def _rss_mb() -> float:
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident * resource.getpagesize() / MB


def _preload() -> None:
    """Every codec and plugin, before the limits make loading them impossible."""
    import pillow_heif
    from PIL import Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401

    import sandbox.photo
    import sandbox.picture  # noqa: F401

    Image.init()
    # One thread per decode: the CPU limit and the pool size assume it.
    pillow_heif.options.DECODE_THREADS = 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.worker")
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--cpu-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    task_fd, reply_fd = _private_pipes()
    _preload()
    _limit_self(args.memory_mb)
    _write(reply_fd, wire.encode(wire.Reply(ok=True)))  # ready
    while True:
        header = _read_exactly(task_fd, wire.HEADER)
        if header is None:
            return 0  # the pool closed the pipe (or died): nothing left to do
        payload = _read_exactly(task_fd, int.from_bytes(header, "big"))
        if payload is None:
            return 0
        _cpu_budget(args.cpu_seconds)
        reply = _answer(payload, args.memory_mb)
        del payload
        if not reply.retire and _rss_mb() > RETIRE_ABOVE_RSS_MB:
            reply = msgspec.structs.replace(reply, retire=True)
        _write(reply_fd, wire.encode(reply))
        if reply.retire:
            return 0


if __name__ == "__main__":
    sys.exit(main())
