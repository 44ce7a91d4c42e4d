"""A Space that answers with a hostile picture: a real consumer refuses it without decoding it in
its own process, the job fails with a clear code (never the photo as a result), and the
consumer's memory stays flat. Real redis-server, real Gradio app (tests/apps/scripted_space.py)
serving files the test built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.model import Status
from tests import hostile, images
from tests.consumer_kit import ScriptedSpace, consumer, pipeline, start_scripted_space
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, pytest.mark.anyio]


@pytest.fixture(scope="module")
def bomb_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedSpace]:
    bombs = tmp_path_factory.mktemp("bombs")
    (bombs / "huge.png").write_bytes(images.png_bomb(20_000))  # 400 MP in ~50 KB
    (bombs / "scans.jpg").write_bytes(hostile.progressive_scan_bomb(side=256, repeats=5000))
    (bombs / "text.png").write_bytes(b"not a picture at all" * 10)
    # A real 256x256 picture with 40 MiB after it: its header would pass, its size must not.
    padded = encode(landscape(256, 256, seed=5), "PNG") + bytes(40 * 1024 * 1024)
    (bombs / "padded.png").write_bytes(padded)
    proc, space = start_scripted_space(tmp_path_factory.mktemp("bomb-space"), bomb_dir=bombs)
    yield space
    proc.stop()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_hostile_pictures_from_the_space_fail_the_job_and_never_reach_the_consumers_memory(
    redis_server: RedisServer, bomb_space: ScriptedSpace, procs: list[Proc], tmp_path: Path
) -> None:
    worker = consumer(
        redis_server.url, bomb_space.url, tmp_path, "bombs", concurrency="3", max_attempts="1"
    ).start()
    procs.append(worker)
    async with pipeline(redis_server.url) as jobs:
        huge, scans, text, padded = [
            (await jobs.submit(1, prompt=f"bomb:{name}", size=256))[0]
            for name in ("huge.png", "scans.jpg", "text.png", "padded.png")
        ]
        honest = await jobs.submit(1, size=256)
        records = await jobs.wait_for([huge, scans, text, padded, *honest], timeout_s=120)
    assert records[honest[0]].status is Status.SUCCEEDED
    expected = {
        huge: "result_wrong_size",
        scans: "result_too_complex",
        text: "result_invalid",
        padded: "result_too_large",
    }
    for job_id, code in expected.items():
        record = records[job_id]
        assert record.status is Status.FAILED, (code, record)
        assert record.error_code == code
        assert not record.result_key  # nothing was stored as its result
    assert "20000x20000" in records[huge].error_message
    # Decoding the 400 MP picture in the consumer would have taken ~400 MB.
    assert peak_rss_mb(worker.pid) < 200
