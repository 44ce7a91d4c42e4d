"""`ghibli metrics-exporter`: serve the queue's gauges (lag, pending, stuck signals, tokens) once."""

from __future__ import annotations

from typing import Any

import click

from ghibli.options import COMMON, EXPORTER, configure_logs, settings_options
from ghibli.stack import resolve_or_fail

__all__ = ["metrics_exporter"]


@click.command("metrics-exporter")
@settings_options(*COMMON, *EXPORTER)
def metrics_exporter(**values: Any) -> None:
    """Serve the queue's state from Redis as Prometheus gauges on /metrics.

    Without options or variables it serves the stack `ghibli up` runs here, if any. Run one per
    Redis: consumers and ingest export only their own counters, so queue-wide numbers
    come from here alone. GHIBLI_LEASE_SECONDS must match the consumers' (it decides which
    consumers count as live and which pending entries have an expired lease).
    """
    from jobs.logs import get_logger
    from metrics.exporter import run_exporter

    target = resolve_or_fail(values, click.get_current_context())
    configure_logs(target.settings)
    # Its first line names the Redis it serves and where that came from; a log line (JSON where
    # logs are JSON), since this is a long-running process.
    get_logger("ghibli.metrics_exporter").info("metrics-exporter: " + target.describe("redis_url"))
    run_exporter(target.settings)
