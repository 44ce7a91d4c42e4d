"""GET /metrics: the Prometheus exposition of this process's registry.

One small module on purpose: switching to prometheus_client's multiprocess mode (several ingest
workers) only changes `_registry()`.
"""

from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

import metrics.definitions  # noqa: F401 - registers the pipeline's metrics before the first scrape
from metrics.exposition import scrape_registry

__all__ = ["metrics_endpoint"]


def _registry() -> CollectorRegistry:
    # Several uvicorn workers: every worker's values, summed (metrics/exposition.py).
    return scrape_registry()


# Litestar appends the charset to text/* itself.
_MEDIA_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


@get(
    "/metrics",
    summary="Prometheus metrics",
    tags=["health"],
    media_type=_MEDIA_TYPE,
    opt={"no_rate_limit": True},
)
async def metrics_endpoint() -> Response[bytes]:
    return Response(generate_latest(_registry()), media_type=_MEDIA_TYPE)
