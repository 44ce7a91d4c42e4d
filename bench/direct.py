"""The baseline: the same Space call made directly with gradio_client, no pipeline in between.

Two clients are measured. `default` is `Client(url)` as a hand-written worker builds it; every
call then creates several httpx clients, each loading the CA bundle into a new SSL context (even
for http:// URLs). `tuned` passes one shared SSL context (`ssl_verify=<SSLContext>`), which removes
that cost without changing anything else. The budgets compare the pipeline with the faster one.

Throughput runs use worker processes (`python -m bench.direct ...`), so the benchmark's own process
does not share their interpreter: each connects, makes one warm-up call, says `ready`, and starts
on `go` from stdin, so every process begins at the same moment. It prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import certifi
import httpx
from gradio_client import Client, handle_file

from bench.procs import ROOT, cpu_seconds, rss_bytes

__all__ = ["CLIENTS", "DirectCaller", "DirectRun", "run_direct"]

ENDPOINT = "/single_condition_generate_image"
CLIENTS = ("default", "tuned")


class DirectCaller:
    """One gradio_client Client, shared by any number of threads (as the consumer shares its own)."""

    def __init__(self, url: str, client: str, photo: Path, size: int) -> None:
        self.photo = photo
        self.size = size
        self.download_dir = Path(tempfile.mkdtemp(prefix="bench-direct-"))
        kwargs: dict[str, Any] = {}
        if client == "tuned":
            kwargs["ssl_verify"] = ssl.create_default_context(cafile=certifi.where())
        self.client = Client(
            url,
            verbose=False,
            httpx_kwargs={"timeout": httpx.Timeout(60.0, connect=10.0)},
            download_files=str(self.download_dir),
            analytics_enabled=False,
            **kwargs,
        )

    def call(self, seed: int) -> float:
        """One generation; its wall time in seconds (raises what gradio_client raises)."""
        start = time.perf_counter()
        out = self.client.predict(
            prompt="Ghibli Studio style, Charming hand-drawn anime-style illustration",
            spatial_img=handle_file(str(self.photo)),
            height=self.size,
            width=self.size,
            seed=seed,
            control_type="Ghibli",
            use_zero_init=False,
            zero_steps=1,
            api_name=ENDPOINT,
        )
        elapsed = time.perf_counter() - start
        shutil.rmtree(Path(str(out)).parent, ignore_errors=True)  # as the consumer does
        return elapsed

    def close(self) -> None:
        self.client.close()
        shutil.rmtree(self.download_dir, ignore_errors=True)


def _work(caller: DirectCaller, threads: int, calls: int, seed_base: int) -> dict[str, Any]:
    """`calls` calls from `threads` threads as fast as they go; times are wall-clock (time.time)."""
    lock = threading.Lock()
    next_call = [0]
    ends: list[float] = []
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def loop() -> None:
        while True:
            with lock:
                if next_call[0] >= calls:
                    return
                next_call[0] += 1
                seed = seed_base + next_call[0]
            try:
                latency = caller.call(seed)
            except Exception as exc:  # noqa: BLE001 - counted, like the pipeline counts its failures
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            with lock:
                latencies.append(latency)
                ends.append(time.time())

    cpu = cpu_seconds(os.getpid())
    start = time.time()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {
        "start": start,
        "ends": ends,
        "latencies": latencies,
        "errors": errors,
        "cpu_s": cpu_seconds(os.getpid()) - cpu,
        "rss_peak": rss_bytes(os.getpid(), peak=True),
    }


@dataclass(slots=True)
class DirectRun:
    calls: int
    seconds: float
    latencies: list[float]
    errors: dict[str, int]
    cpu_s: float  # CPU of the client processes
    rss_idle: int  # largest RSS of one client process after its warm-up call, before the run
    rss_peak: int  # largest peak RSS of one client process

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def run_direct(
    url: str, client: str, photo: Path, size: int, layout: tuple[int, int], calls: int, seed_base: int
) -> DirectRun:
    """`calls` calls from `layout` = (processes, threads each), started together."""
    processes, threads = layout
    share = [calls // processes + (1 if i < calls % processes else 0) for i in range(processes)]
    workers = []
    for index, count in enumerate(share):
        argv = [sys.executable, "-m", "bench.direct", "--url", url, "--client", client, "--photo", str(photo)]
        argv += ["--size", str(size), "--threads", str(threads), "--calls", str(count)]
        argv += ["--seed-base", str(seed_base + index * 1_000_000)]
        workers.append(
            subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    idle: list[int] = []
    try:
        for worker in workers:
            assert worker.stdout is not None
            word, _, rss = worker.stdout.readline().partition(" ")
            if word != "ready":
                raise RuntimeError(f"direct gradio_client worker did not start: {word!r}")
            idle.append(int(rss))
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            out, _ = worker.communicate(timeout=900)
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    ends = [end for result in results for end in result["ends"]]
    errors: dict[str, int] = {}
    for result in results:
        for name, count in result["errors"].items():
            errors[name] = errors.get(name, 0) + count
    start = min(result["start"] for result in results)
    return DirectRun(
        calls=len(ends),
        seconds=(max(ends) - start) if ends else 0.0,
        latencies=[lat for result in results for lat in result["latencies"]],
        errors=errors,
        cpu_s=sum(result["cpu_s"] for result in results),
        rss_idle=max(idle),
        rss_peak=max(result["rss_peak"] for result in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="One direct gradio_client worker process (see bench/direct.py)."
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--client", choices=CLIENTS, default="default")
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--seed-base", type=int, default=0)
    args = parser.parse_args()
    caller = DirectCaller(args.url, args.client, args.photo, args.size)
    try:
        caller.call(args.seed_base)  # warm-up: the event stream, connection set-up, lazy imports
        print(f"ready {rss_bytes(os.getpid())}", flush=True)
        sys.stdin.readline()
        result = _work(caller, args.threads, args.calls, args.seed_base)
    finally:
        caller.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
