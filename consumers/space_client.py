"""One gradio_client session with the Space: connect, check the endpoint, run one generation.

gradio_client is synchronous, so everything here runs in a worker thread. One Client serves many
concurrent calls (it is lock-protected), and it is built once per (space, token) and reused:
building one costs Hub round-trips and threads.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# gradio_client reads these at import time and per call; telemetry must stay off in a service.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import httpx
from gradio_client import Client, handle_file
from gradio_client.utils import Status as GradioStatus
from PIL import Image, UnidentifiedImageError

from consumers.errors import ErrorKind, SpaceError, classify
from jobs.model import JobParams

__all__ = ["ENDPOINT", "SpaceSession", "SpaceUpdate"]

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
HTTP_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class SpaceUpdate:
    """A change in the Gradio job's state, as the job's phase, progress and queue position."""

    phase: str
    progress: float | None = None
    queue_rank: int | None = None
    queue_size: int | None = None
    eta_seconds: float | None = None


class SpaceSession:
    """A reusable connection to one Space with one token (or anonymously, token=None)."""

    def __init__(self, src: str, token: str | None, *, download_dir: Path | None = None) -> None:
        self.src = src
        self._token = token
        self._download_dir = download_dir or Path(tempfile.mkdtemp(prefix="ghibli-space-"))
        self._client: Client | None = None
        self._params: tuple[str, ...] = ()
        self._lock = threading.Lock()

    @property
    def parameters(self) -> tuple[str, ...]:
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
                    httpx_kwargs={"timeout": HTTP_TIMEOUT},
                    download_files=str(self._download_dir),
                    analytics_enabled=False,
                )
                api: Any = client.view_api(print_info=False, return_format="dict")
            except Exception as exc:
                raise classify(exc) from exc
            endpoint = (api or {}).get("named_endpoints", {}).get(ENDPOINT)
            if endpoint is None:
                raise SpaceError(
                    ErrorKind.BROKEN,
                    "endpoint_missing",
                    f"{self.src} has no {ENDPOINT} endpoint; is GHIBLI_SPACE the Ghibli Space?",
                )
            names = tuple(p.get("parameter_name") for p in endpoint.get("parameters", []))
            missing = [n for n in REQUIRED if n not in names]
            if missing:
                raise SpaceError(
                    ErrorKind.BROKEN,
                    "space_signature",
                    f"{ENDPOINT} on {self.src} lacks parameters {missing}; it has {list(names)}",
                )
            self._params = tuple(n for n in FULL_SIGNATURE if n in names)
            self._client = client
            return client

    def reset(self) -> None:
        """Drop the Client (after connection failures or "Server stopped"); rebuilt on next use."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def generate(
        self,
        image_path: Path,
        params: JobParams,
        *,
        timeout_s: float,
        on_update: Callable[[SpaceUpdate], None],
        should_stop: Callable[[], bool],
    ) -> tuple[bytes, str]:
        """Run one generation; the result image's bytes and media type (raises SpaceError)."""
        client = self.connect()
        kwargs: dict[str, Any] = {
            "prompt": params.prompt,
            "spatial_img": handle_file(str(image_path)),
            "height": params.height,
            "width": params.width,
            "seed": int(params.seed),  # the Space seeds torch with it: a float would fail
            "control_type": "Ghibli",
            "use_zero_init": params.use_zero_init,
            "zero_steps": params.zero_steps,
        }
        kwargs = {k: v for k, v in kwargs.items() if k in self._params}
        deadline = time.monotonic() + timeout_s
        try:
            job = client.submit(api_name=ENDPOINT, **kwargs)
            last: SpaceUpdate | None = None
            while not job.done():
                if should_stop():
                    job.cancel()
                    raise SpaceError(ErrorKind.PERMANENT, "cancelled", "The job was cancelled.")
                if time.monotonic() > deadline:
                    job.cancel()
                    raise SpaceError(ErrorKind.TRANSIENT, "timeout", f"No result within {timeout_s:.0f} s.")
                update = _update_from(job.status())
                if update is not None and update != last:
                    on_update(update)
                    last = update
                wait([job], timeout=POLL_S)
            out = job.result(timeout=max(1.0, deadline - time.monotonic()))
        except SpaceError:
            raise
        except Exception as exc:
            error = classify(exc)
            if error.kind is ErrorKind.BROKEN or error.code in ("network", "stream_lost"):
                self.reset()
            raise error from exc
        return _read_result(out, params, image_path)


def _update_from(status: Any) -> SpaceUpdate | None:
    code = status.code
    if code in (GradioStatus.IN_QUEUE, GradioStatus.JOINING_QUEUE, GradioStatus.STARTING):
        return SpaceUpdate(
            phase="in_queue",
            queue_rank=status.rank,
            queue_size=status.queue_size,
            eta_seconds=status.eta,
        )
    if code is GradioStatus.PROGRESS and status.progress_data:
        unit = status.progress_data[0]
        fraction = unit.progress
        if fraction is None and unit.index is not None and unit.length:
            fraction = unit.index / unit.length
        return SpaceUpdate(phase=unit.desc or "processing", progress=fraction)
    if code in (GradioStatus.PROCESSING, GradioStatus.SENDING_DATA, GradioStatus.ITERATING):
        return SpaceUpdate(phase="processing")
    return None


def _read_result(out: Any, params: JobParams, image_path: Path) -> tuple[bytes, str]:
    """The downloaded file's bytes, after checking it is a new image of the requested size."""
    path = Path(out if isinstance(out, str | os.PathLike) else (out or {}).get("path", ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpaceError(
            ErrorKind.TRANSIENT, "result_missing", f"The Space's result could not be read: {exc}"
        ) from exc
    finally:
        # gradio_client never cleans its downloads; each result sits in its own hash directory.
        shutil.rmtree(path.parent, ignore_errors=True)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size = img.size
            media_type = Image.MIME.get(img.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError) as exc:
        raise SpaceError(
            ErrorKind.TRANSIENT, "result_invalid", "The Space returned something that is not an image."
        ) from exc
    if size != (params.width, params.height):
        raise SpaceError(
            ErrorKind.PERMANENT,
            "result_wrong_size",
            f"The Space returned {size[0]}x{size[1]}, not the requested {params.width}x{params.height}.",
        )
    if data == image_path.read_bytes():
        raise SpaceError(
            ErrorKind.PERMANENT, "result_is_input", "The Space returned the input photo unchanged."
        )
    return data, media_type
