"""The offline Space's command: `ghibli space`, or `python -m space` without the pipeline package."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["space"]


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="GHIBLI_SPACE_HOST",
    show_envvar=True,
    help="Address the offline Space listens on.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=7861,
    show_default=True,
    envvar="GHIBLI_SPACE_PORT",
    show_envvar=True,
    help="Port the offline Space listens on.",
)
@click.option(
    "--engine",
    type=click.Choice(["ghibli", "fast"]),
    default="ghibli",
    show_default=True,
    envvar="GHIBLI_SPACE_ENGINE",
    show_envvar=True,
    help="'ghibli' paints; 'fast' is a cheap transform for throughput benchmarks.",
)
@click.option(
    "--delay",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    envvar="GHIBLI_SPACE_DELAY",
    show_envvar=True,
    help="Seconds to wait before answering.",
)
@click.option(
    "--jitter",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    envvar="GHIBLI_SPACE_JITTER",
    show_envvar=True,
    help="Up to this many more seconds, at random.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=4,
    show_default=True,
    envvar="GHIBLI_SPACE_CONCURRENCY",
    show_envvar=True,
    help="Calls the Space runs at once (Gradio's queue concurrency).",
)
@click.option(
    "--max-queue",
    type=click.IntRange(1),
    default=None,
    envvar="GHIBLI_SPACE_MAX_QUEUE",
    show_envvar=True,
    help="Calls that may wait in Gradio's queue; more get HTTP 503 (QueueError). [default: unbounded]",
)
@click.option(
    "--fault-kind",
    type=click.Choice(["quota", "quota_html", "no_gpu", "worker_error", "queue_full"]),
    default="quota",
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_KIND",
    show_envvar=True,
    help="How chosen calls fail, with the real Space's titles and texts: quota ('ZeroGPU quota "
    "exceeded', 'Try again in H:MM:SS'), quota_html (older HTML text, no retry time), no_gpu "
    "('ZeroGPU queue timeout'), worker_error ('ZeroGPU worker error'), queue_full (HTTP 503 at "
    "queue join: gradio_client QueueError).",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_RATE",
    show_envvar=True,
    help="Probability that a call fails (0..1).",
)
@click.option(
    "--fault-first",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_FIRST",
    show_envvar=True,
    help="The first N calls fail, then the rest succeed (retry tests).",
)
@click.option(
    "--fault-seeds",
    default="",
    envvar="GHIBLI_SPACE_FAULT_SEEDS",
    show_envvar=True,
    help="Comma-separated seeds: calls with one of these seeds always fail (poison tests). A call "
    "fails if any of --fault-first, --fault-seeds or --fault-rate picks it.",
)
@click.option(
    "--fault-retry-after",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    envvar="GHIBLI_SPACE_FAULT_RETRY_AFTER",
    show_envvar=True,
    help="Seconds in the quota message's 'Try again in H:MM:SS'.",
)
@click.option(
    "--call-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="GHIBLI_SPACE_CALL_LOG",
    show_envvar=True,
    help="Append one JSON line per call (times, outcome, seed, size, input sha256, token alias; "
    "never the token).",
)
def space(
    host: str,
    port: int,
    engine: str,
    delay: float,
    jitter: float,
    concurrency: int,
    max_queue: int | None,
    fault_kind: str,
    fault_rate: float,
    fault_first: int,
    fault_seeds: str,
    fault_retry_after: float,
    call_log: Path | None,
) -> None:
    """Run the offline Space: the Ghibli Space's exact API on a CPU stylizer.

    Faults: a call fails when it is one of the first --fault-first calls, when its seed is in
    --fault-seeds, or at random with --fault-rate; it then fails the --fault-kind way.
    """
    from space.app import SpaceOptions, serve
    from space.faults import FaultPlan, parse_seeds

    try:
        seeds = parse_seeds([fault_seeds])
    except ValueError:
        raise click.BadParameter("comma-separated integers", param_hint="--fault-seeds") from None
    faults = FaultPlan(
        kind=fault_kind, rate=fault_rate, first=fault_first, seeds=seeds, retry_after_s=fault_retry_after
    )
    options = SpaceOptions(
        engine=engine,
        delay_s=delay,
        jitter_s=jitter,
        concurrency=concurrency,
        max_queue=max_queue,
        faults=faults,
        call_log=call_log,
    )
    serve(host, port, options)
