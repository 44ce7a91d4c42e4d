"""`ghibli up` starts the whole stack; `ghibli submit` gets a picture; SIGTERM leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from tests.photos import landscape
from tests.procs import ROOT, base_env, children_of, free_port, ghibli, pid_alive, wait_until


def test_up_submit_and_clean_shutdown(tmp_path: Path) -> None:
    port, redis_port, space_port = free_port(), free_port(), free_port()
    env = base_env(GHIBLI_PORT=str(port), GHIBLI_SHUTDOWN_GRACE_SECONDS="5")
    up = ghibli(
        [
            "up",
            "--redis-port",
            str(redis_port),
            "--space-port",
            str(space_port),
            "--consumers",
            "2",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env,
        tmp_path / "up.log",
    ).start()
    try:
        wait_until(lambda: "ghibli-pipeline is up" in up.log(), "ghibli up", 120, up.proc)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["status"] == "ready"
        assert ready["redis"]["topology"] == "standalone"
        stack = children_of(up.pid)
        assert len(stack) >= 5, up.log()  # redis, space, ingest, 2 consumers

        photo = tmp_path / "photo.jpg"
        landscape(480, 360).save(photo)
        out = tmp_path / "out.webp"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ghibli",
                "submit",
                str(photo),
                "-o",
                str(out),
                "--server",
                f"http://127.0.0.1:{port}",
                "--width",
                "384",
                "--height",
                "256",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr + up.log()[-3000:]
        assert Image.open(out).size == (384, 256)

        up.signal(signal.SIGTERM)
        assert up.wait(60) == 0, up.log()[-3000:]
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in stack) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in stack if pid_alive(p)], "processes of the stack survived SIGTERM"
    finally:
        up.stop()
