"""One gradio_client session with the Space: connect, check the endpoint, run one generation.

gradio_client is synchronous: connecting runs in a worker thread, and a call runs in the Client's
own threads while the event loop watches its Job. One Client serves many concurrent calls, and it
is built once per (space, token) and reused: building one costs Hub round-trips and threads. It
is rebuilt after connection failures, a restarted Space ("Server stopped") or a broken Space,
because its config is fetched only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# gradio_client reads these at import time and per call; telemetry must stay off in a service.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import anyio
import anyio.to_thread
import certifi
import httpx
from gradio_client import Client
from gradio_client.utils import Status as GradioStatus
from gradio_client.utils import encode_file_path

from consumers.errors import ErrorKind, SpaceError, classify
from jobs.logs import get_logger
from jobs.model import JobParams
from sandbox.probe import sniff_type

__all__ = [
    "ENDPOINT",
    "CallTrace",
    "SpaceSession",
    "SpaceUpdate",
    "sweep_download_leftovers",
]

log = get_logger("consumers.space_client")

ENDPOINT = "/single_condition_generate_image"
# The 8-parameter signature of the current Space; older copies take only the first six.
FULL_SIGNATURE = (
    "prompt",
    "spatial_img",
    "height",
    "width",
    "seed",
    "control_type",
    "use_zero_init",
    "zero_steps",
)
REQUIRED = FULL_SIGNATURE[:6]
# The Space sends an SSE heartbeat every 15 s; a shorter read timeout kills healthy long calls.
# It also bounds the client's event-stream reader, so a silent connection cannot hang it forever.
HTTP_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
POLL_S = 0.2
# The Space paints at most 1024x1024: even an uncompressed RGBA PNG of that is 4 MiB. A larger answer
# is not a picture of ours, and is not read into memory beyond this.
MAX_RESULT_BYTES = 32 * 1024 * 1024
# gradio_client opens a new httpx client for every upload, submit and download, and httpx builds
# a fresh SSL context (loading the whole CA bundle) for each unless it is given one: measured at
# ~220 ms CPU per call against ~19 ms with one shared context. Contexts are safe to share.
_TLS_CONTEXT = ssl.create_default_context(cafile=certifi.where())
_REBUILD_CODES = frozenset({"network", "stream_lost", "space_restarted"})


@dataclass(frozen=True, slots=True)
class SpaceUpdate:
    """A change in the Gradio job's state, as the job's phase, progress and queue position."""

    phase: str
    progress: float | None = None
    queue_rank: int | None = None
    queue_size: int | None = None
    eta_seconds: float | None = None


@dataclass(slots=True)
class CallTrace:
    """What one call got to: whether the Space started working on it (GPU time requested)."""

    processing: bool = False
    notices: list[str] = field(default_factory=list)  # gr.Info/gr.Warning texts from the Space


class SpaceSession:
    """A reusable connection to one Space with one token (or anonymously, token=None)."""

    def __init__(self, src: str, token: str | None, *, download_dir: Path, max_calls: int = 40) -> None:
        self.src = src
        self._token = token
        self._download_dir = download_dir  # gradio_client wants one; results never land there (_Files)
        # gradio_client runs at most max_workers calls at once per Client (its default is 40).
        self._max_workers = max(40, max_calls)
        self._client: Client | None = None
        self._files: _Files | None = None
        self._params: tuple[str, ...] = ()
        self._lock = threading.Lock()

    @property
    def parameters(self) -> tuple[str, ...]:
        """The endpoint's parameters this session passes (8, or the older 6)."""
        return self._params

    def connect(self) -> Client:
        """Build the Client once and check the endpoint's signature (raises SpaceError)."""
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                client = Client(
                    self.src,
                    # False, not None: None would fall back to a cached login or HF_TOKEN.
                    token=self._token if self._token else False,
                    verbose=False,
                    max_workers=self._max_workers,
                    httpx_kwargs={"timeout": HTTP_TIMEOUT},
                    download_files=str(self._download_dir),
                    analytics_enabled=False,
                    ssl_verify=_TLS_CONTEXT,  # handed on to httpx as verify=
                )
                api: Any = client.view_api(print_info=False, return_format="dict")
            except Exception as exc:
                raise classify(exc) from exc
            try:
                self._params = _check_signature(self.src, api)
            except SpaceError:
                client.close()
                raise
            if self._files is None:
                self._files = _Files(client, self._max_workers)
            self._files.attach(client, client.endpoints[client._infer_fn_index(ENDPOINT, None)])
            self._client = client
            return client

    def reset(self) -> None:
        """Drop the Client (after connection failures or "Server stopped"); rebuilt on next use."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        # The pooled HTTP client stays: calls still running on the old Client use it, and httpx
        # drops broken connections by itself.

    def close(self) -> None:
        """Drop the Client and close the pooled HTTP client (the session is not used again)."""
        self.reset()
        with self._lock:
            files, self._files = self._files, None
        if files is not None:
            files.close()

    async def agenerate(
        self,
        image: bytes | Path,
        params: JobParams,
        *,
        timeout_s: float,
        on_update: Callable[[SpaceUpdate], None],
        should_stop: Callable[[], bool],
        trace: CallTrace | None = None,
    ) -> bytes:
        """Run one generation; the result file's bytes, not yet checked (raises SpaceError).

        gradio_client runs the call in its own threads; its Job is watched from the event loop
        (woken when it is done, its status read every POLL_S for progress), not by a thread of ours
        per call: that thread and its hand-offs cost more CPU than the watching itself.
        `on_update` is called on the event loop. `image`: the photo, or the file it is in.
        """
        trace = trace if trace is not None else CallTrace()
        deadline = time.monotonic() + timeout_s
        job: Any = None
        try:
            client: Any = self._client
            if client is None:  # the first call: Hub and Space round trips, off the loop
                client = await anyio.to_thread.run_sync(self.connect, abandon_on_cancel=True)
            kwargs: dict[str, Any] = {
                "prompt": params.prompt,
                "spatial_img": _Photo(image),  # uploaded by _Files, in gradio_client's thread
                "height": params.height,
                "width": params.width,
                "seed": int(params.seed),  # the Space seeds torch with it: a float would fail
                "control_type": "Ghibli",
                "use_zero_init": params.use_zero_init,
                "zero_steps": params.zero_steps,
            }
            kwargs = {k: v for k, v in kwargs.items() if k in self._params}
            job = client.submit(api_name=ENDPOINT, **kwargs)  # queued on the Client's executor: no I/O here
            done = _done_event(job)
            progress = _ProgressReader(trace)
            last: SpaceUpdate | None = None
            while not job.done():
                if should_stop():
                    raise SpaceError(ErrorKind.PERMANENT, "cancelled", "The job was cancelled.")
                if time.monotonic() > deadline:
                    raise SpaceError(ErrorKind.TRANSIENT, "timeout", f"No result within {timeout_s:.0f} s.")
                update = progress.read(job.status())
                if update is not None and update != last:
                    on_update(update)
                    last = update
                with anyio.move_on_after(POLL_S):
                    await done.wait()
            # Done: result() does not block. Read here, not awaited through asyncio.wrap_future: a
            # Job that gradio cancelled raises concurrent.futures.CancelledError, an Exception that
            # classify() calls stream_lost; wrapped, it would become asyncio.CancelledError and look
            # like the cancellation of our own task.
            data = job.result(timeout=0)
            job = None
            if not isinstance(data, bytes):  # _Files.download returns the file's bytes
                raise SpaceError(
                    ErrorKind.TRANSIENT, "result_missing", f"The Space returned no file: {data!r:.200}"
                )
        except SpaceError:
            raise
        except Exception as exc:
            error = classify(exc)
            if (
                error.kind is ErrorKind.BROKEN
                or error.code in _REBUILD_CODES
                or error.code.startswith("http_5")
            ):
                self.reset()
            raise error from exc
        finally:
            if job is not None and not job.done():
                # Job.cancel() posts to the Space (blocking I/O): off the loop, not waited for, so
                # it also works while our task is being cancelled.
                threading.Thread(target=job.cancel, name="gradio-cancel", daemon=True).start()
        trace.processing = True
        return data


def _done_event(job: Any) -> anyio.Event:
    """An event set on the loop once the Job is done (its callback runs in gradio's thread)."""
    done = anyio.Event()
    loop = asyncio.get_running_loop()

    def notify(_: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(done.set)

    job.add_done_callback(notify)
    return done


class _Photo:
    """The photo as passed to submit(): _Files uploads it."""

    __slots__ = ("image",)

    def __init__(self, image: bytes | Path) -> None:
        self.image = image


class _Files:
    """gradio_client's file transfers for one Client, through one pooled HTTP client.

    gradio_client opens a new HTTP client, and so a new connection, for every upload and download
    (and reads the result back from a temporary file). Installed on the endpoint instead of its own
    methods, these run in the same gradio_client thread, reusing kept-alive connections, and hand
    the result over as bytes. The submission and the event stream are still gradio_client's.
    """

    def __init__(self, client: Any, max_connections: int) -> None:
        self._upload_url = ""
        self._root = ""
        self._http = httpx.Client(
            verify=_TLS_CONTEXT,
            timeout=HTTP_TIMEOUT,
            headers=client.headers,  # the token, as gradio_client sends it
            cookies=client.cookies,
            follow_redirects=True,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def attach(self, client: Any, endpoint: Any) -> None:
        """Serve the file transfers of this (newly built) Client's endpoint."""
        self._upload_url = client.upload_url
        self._root = endpoint.root_url
        endpoint.process_input_files = self.upload
        endpoint._download_file = self.download

    def upload(self, *data: Any) -> tuple[Any, ...]:
        return tuple(self._upload(d.image) if isinstance(d, _Photo) else d for d in data)

    def _upload(self, image: bytes | Path) -> dict[str, Any]:
        """Put the photo on the Space (Gradio's upload route); the file reference to pass it as."""
        data = image if isinstance(image, bytes) else image.read_bytes()
        name = "photo" + _SUFFIXES.get(sniff_type(data[:32]) or "", ".png")  # the Space saves by suffix
        reply = self._http.post(self._upload_url, files=[("files", (name, data))])
        reply.raise_for_status()
        return {"path": reply.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def download(self, x: dict[str, Any]) -> bytes:
        """The result's bytes, by the file reference the Space returned."""
        url = x.get("url") if x.get("is_stream") else None
        with self._http.stream("GET", url or f"{self._root}file={encode_file_path(x['path'])}") as reply:
            reply.raise_for_status()
            data = bytearray()
            for chunk in reply.iter_bytes():
                data += chunk
                if len(data) > MAX_RESULT_BYTES:
                    raise SpaceError(
                        ErrorKind.PERMANENT,
                        "result_too_large",
                        f"The Space's answer is over {MAX_RESULT_BYTES // 2**20} MiB; no picture of ours is.",
                    )
        return bytes(data)

    def close(self) -> None:
        self._http.close()


_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}


def _check_signature(src: str, api: Any) -> tuple[str, ...]:
    endpoint = (api or {}).get("named_endpoints", {}).get(ENDPOINT)
    if endpoint is None:
        found = sorted((api or {}).get("named_endpoints", {}))
        raise SpaceError(
            ErrorKind.BROKEN,
            "endpoint_missing",
            f"{src} has no {ENDPOINT} endpoint (it has {found or 'none'}); is GHIBLI_SPACE the Ghibli Space?",
        )
    names = tuple(p.get("parameter_name") for p in endpoint.get("parameters", []))
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise SpaceError(
            ErrorKind.BROKEN,
            "space_signature",
            f"{ENDPOINT} on {src} lacks parameters {missing}; it has {list(names)}",
        )
    return tuple(n for n in FULL_SIGNATURE if n in names)


class _ProgressReader:
    """Turns the Gradio job's status into SpaceUpdates, with an ETA while it makes progress."""

    def __init__(self, trace: CallTrace) -> None:
        self.trace = trace
        self._started: float | None = None

    def read(self, status: Any) -> SpaceUpdate | None:
        code = status.code
        if code is GradioStatus.LOG and status.log:
            message = str(status.log[0])
            if message not in self.trace.notices:
                self.trace.notices.append(message)
            return None
        if code in (GradioStatus.IN_QUEUE, GradioStatus.JOINING_QUEUE, GradioStatus.STARTING):
            return SpaceUpdate(
                phase="in_queue", queue_rank=status.rank, queue_size=status.queue_size, eta_seconds=status.eta
            )
        if code in (GradioStatus.PROGRESS, GradioStatus.PROCESSING, GradioStatus.ITERATING):
            self.trace.processing = True
            if self._started is None:
                self._started = time.monotonic()
        if code is GradioStatus.PROGRESS and status.progress_data:
            unit = status.progress_data[0]
            fraction = unit.progress
            if fraction is None and unit.index is not None and unit.length:
                fraction = unit.index / unit.length
            eta = None
            if fraction and 0 < fraction < 1 and self._started is not None:
                elapsed = time.monotonic() - self._started
                eta = round(elapsed * (1 - fraction) / fraction, 1)
            return SpaceUpdate(phase=unit.desc or "processing", progress=fraction, eta_seconds=eta)
        if code in (GradioStatus.PROCESSING, GradioStatus.SENDING_DATA, GradioStatus.ITERATING):
            return SpaceUpdate(phase="processing")
        return None


_LEFTOVER_RE = re.compile(r"[0-9a-f]{40}")


def sweep_download_leftovers(min_age_s: float = 600.0) -> int:
    """Remove the empty `<tmp>/<40 hex>` directories every gradio_client download leaves behind.

    Only empty directories older than `min_age_s` go: a download creates its directory and writes
    into it at once, so no running download (of any process) is touched. Returns how many went.
    """
    removed = 0
    cutoff = time.time() - min_age_s
    root = Path(tempfile.gettempdir())
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        if not _LEFTOVER_RE.fullmatch(entry.name):
            continue
        try:
            if entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.rmdir(entry.path)
                removed += 1
        except OSError:
            continue  # not empty, not ours to remove, or already gone
    return removed
