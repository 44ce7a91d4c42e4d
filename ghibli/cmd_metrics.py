"""`ghibli metrics-exporter`: serve the queue's gauges (lag, pending, stuck signals, tokens) once."""

from __future__ import annotations

from typing import Any

import click

from ghibli.cli import COMMON, _configure_logs, _settings, settings_options

__all__ = ["metrics_exporter"]


@click.command("metrics-exporter")
@settings_options(*COMMON, "lease_seconds", "metrics_host", "exporter_port")
def metrics_exporter(**values: Any) -> None:
    """Serve the queue's state from Redis as Prometheus gauges on /metrics.

    Run one per Redis: consumers and ingest export only their own counters, so queue-wide numbers
    come from here alone. GHIBLI_LEASE_SECONDS must match the consumers' (it decides which
    consumers count as live and which pending entries have an expired lease).
    """
    from metrics.exporter import run_exporter

    settings = _settings(values)
    _configure_logs(settings)
    run_exporter(settings)
