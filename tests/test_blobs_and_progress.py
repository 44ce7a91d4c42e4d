"""Directory blob store expiry, and progress that never goes backwards within a run."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import pytest
from litestar.testing import AsyncTestClient

from ingest.app import create_app
from jobs.blobs import FileBlobStore
from jobs.settings import load_settings
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, ghibli, start_space

pytestmark = pytest.mark.anyio


async def test_file_blobs_expire_and_the_sweep_removes_them(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    await store.put("in/a", b"photo", ttl_s=60)
    await store.put("out/b/1", b"picture", ttl_s=1)
    assert await store.get("in/a") == b"photo"
    assert await store.get("out/b/1") == b"picture"
    await anyio.sleep(1.2)
    assert await store.sweep() == 1
    assert not (tmp_path / "blobs" / "out" / "b" / "1").exists()
    assert await store.get("out/b/1") is None
    assert await store.get("in/a") == b"photo"
    with pytest.raises(ValueError, match="bad blob name"):
        await store.put("../escape", b"x", ttl_s=60)


async def test_file_blobs_are_private_to_their_user_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a common default: files 0644 and directories 0755 without care
    try:
        store = FileBlobStore(tmp_path / "blobs")
        await store.put("in/job1", b"photo", ttl_s=60)
        await store.put("out/job1/1", b"picture", ttl_s=60)
    finally:
        os.umask(old)
    root = tmp_path / "blobs"
    for directory in (root, root / "in", root / "out", root / "out" / "job1"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for file in (root / "in" / "job1", root / "out" / "job1" / "1"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


@pytest.mark.system
async def test_progress_seen_by_viewers_never_goes_backwards(
    redis_server: RedisServer, procs: list[Proc], tmp_path: Path
) -> None:
    # The offline Space reports two progress series per call (denoising, then painting).
    space, url = start_space(tmp_path, extra=["--delay", "2"])
    procs.append(space)
    env = base_env(REDIS_URL=redis_server.url, GHIBLI_SPACE=url)
    procs.append(ghibli(["consume"], env, tmp_path / "consumer.log").start())
    async with AsyncTestClient(create_app(load_settings(environ=env))) as client:
        response = await client.post(
            "/v1/jobs",
            files={"image": ("p.jpg", encode(landscape(320, 240)), "image/jpeg")},
            data={"width": "256", "height": "256"},
        )
        job = response.json()
        seen: list[float] = []
        with anyio.fail_after(120):
            while job["status"] not in ("succeeded", "failed", "cancelled"):
                job = (await client.get(f"/v1/jobs/{job['id']}")).json()
                if job["status"] == "running":
                    seen.append(job["progress"])
                await anyio.sleep(0.05)
    assert job["status"] == "succeeded", procs[1].log()[-2000:]
    assert len(set(seen)) >= 3, seen  # several distinct steps were observed
    assert seen == sorted(seen), seen
