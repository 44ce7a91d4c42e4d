"""How each process exposes its metrics: one endpoint per process, except uvicorn's workers.

- A consumer process serves its own /metrics (`GHIBLI_METRICS_PORT`); Prometheus scrapes each
  one and sums. Counters of a killed process vanish with it, which rate() handles.
- Ingest with several uvicorn workers has one socket for all of them, so a scrape lands on any
  worker: there prometheus_client's multiprocess mode is on (each worker writes its values to
  files in PROMETHEUS_MULTIPROC_DIR; whichever worker answers sums them all).
  `prepare_multiprocess_dir` sets that up before the workers start.
- The queue's gauges come from `ghibli metrics-exporter` alone (metrics.exporter).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import start_http_server

import metrics.definitions  # noqa: F401 - the catalogue is served before its first event
from jobs.logs import get_logger

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "MetricsServer",
    "multiprocess_enabled",
    "prepare_multiprocess_dir",
    "render_latest",
    "scrape_registry",
    "serve_process_metrics",
    "start_metrics_server",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# prometheus_client picks its value store once, at import, from this variable; so do we.
_MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))


def multiprocess_enabled() -> bool:
    return _MULTIPROCESS


def scrape_registry() -> CollectorRegistry:
    """What a scrape of this process shows: its own registry, or every worker's files."""
    if not _MULTIPROCESS:
        return REGISTRY
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render_latest() -> bytes:
    """The text exposition of this process (or of all ingest workers in multiprocess mode)."""
    return generate_latest(scrape_registry())


if _MULTIPROCESS:
    # Live gauges of a worker that exits cleanly leave the sum; counters stay, as they should.
    atexit.register(_multiprocess.mark_process_dead, os.getpid())


def prepare_multiprocess_dir(workers: int) -> Path | None:
    """Before uvicorn spawns `workers` processes: a clean PROMETHEUS_MULTIPROC_DIR, if needed.

    Called in the parent, whose children inherit the variable (uvicorn spawns, so they import
    prometheus_client afresh). An operator's directory is emptied of the last run's files; without
    one, a private temporary directory is made and removed at exit. One worker needs none.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return path
    if workers <= 1:
        return None
    path = Path(tempfile.mkdtemp(prefix="ghibli-ingest-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@dataclass(slots=True)
class MetricsServer:
    """A /metrics HTTP server on a daemon thread (prometheus_client's own WSGI server)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(host: str, port: int, registry: CollectorRegistry | None = None) -> MetricsServer:
    """Serve `registry` (default: this process's metrics) on host:port; port 0 picks a free one."""
    server, thread = start_http_server(port, addr=host, registry=registry or scrape_registry())
    return MetricsServer(server, thread)


def serve_process_metrics(host: str, port: int) -> MetricsServer | None:
    """A long-running process's own /metrics (consumers: GHIBLI_METRICS_PORT); port 0 = none."""
    if not port:
        return None
    server = start_metrics_server(host, port)
    get_logger("metrics.exposition").info("metrics endpoint listening", address=f"{host}:{server.port}")
    return server
