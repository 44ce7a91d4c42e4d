"""`ghibli webhooks`: the webhook dispatcher (webhooks/dispatch.py), a process of its own."""

from __future__ import annotations

from typing import Any

import click

from ghibli.options import COMMON, WEBHOOKS, build_settings, configure_logs, settings_options

__all__ = ["WEBHOOKS", "webhooks"]


@click.command("webhooks")
@settings_options(*COMMON, *WEBHOOKS)
def webhooks(**values: Any) -> None:
    """Deliver the jobs' webhooks: signed (Standard Webhooks), in order per job, retried for a day.

    Run one or more anywhere that reaches Redis; they share the work. It reads the same API keys
    (GHIBLI_API_KEYS, GHIBLI_API_KEYS_FILE) and GHIBLI_WEBHOOK_SECRET as ingest, to sign with.
    """
    from webhooks.dispatch import run_dispatcher

    settings = build_settings(values)
    configure_logs(settings)
    run_dispatcher(settings)
