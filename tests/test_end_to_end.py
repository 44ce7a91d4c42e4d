"""One photo through the whole pipeline: real Litestar app, real Redis, real consumer, real Space."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from ingest.app import create_app
from jobs.settings import load_settings
from tests.photos import encode, landscape
from tests.procs import Proc, RedisServer, base_env, ghibli

pytestmark = pytest.mark.anyio


@pytest.mark.system
async def test_photo_becomes_a_stylized_picture_of_the_requested_size(
    redis_server: RedisServer, space_url: str, procs: list[Proc], tmp_path: Path
) -> None:
    env = base_env(REDIS_URL=redis_server.url, GHIBLI_SPACE=space_url)
    procs.append(ghibli(["consume"], env, tmp_path / "consumer.log").start())
    photo = landscape(640, 480)
    app = create_app(load_settings(environ=env))
    async with AsyncTestClient(app) as client:
        response = await client.post(
            "/v1/jobs",
            files={"image": ("photo.jpg", encode(photo), "image/jpeg")},
            data={"width": "512", "height": "384", "seed": "7"},
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] == "queued"
        assert job["params"] == {
            "prompt": "Ghibli Studio style, Charming hand-drawn anime-style illustration",
            "width": 512,
            "height": 384,
            "seed": 7,
            "use_zero_init": False,
            "zero_steps": 1,
        }

        with anyio.fail_after(60):
            while job["status"] not in ("succeeded", "failed", "cancelled"):
                await anyio.sleep(0.2)
                job = (await client.get(f"/v1/jobs/{job['id']}")).json()
        assert job["status"] == "succeeded", (job, procs[0].log()[-2000:])
        assert job["progress"] == 1.0
        assert job["result"]["url"] == f"/v1/jobs/{job['id']}/result"

        result = await client.get(job["result"]["url"])
        assert result.status_code == 200
        assert result.headers["content-type"].startswith("image/")
    picture = Image.open(io.BytesIO(result.content))
    assert picture.size == (512, 384)
    # Not the input (nor a plain resize of it): the stylizer really repainted it.
    plain = np.asarray(photo.resize((512, 384)).convert("RGB"), dtype=np.float32)
    painted = np.asarray(picture.convert("RGB"), dtype=np.float32)
    assert np.abs(plain - painted).mean() > 8


async def test_unknown_job_is_a_problem_document(redis_server: RedisServer) -> None:
    app = create_app(load_settings(environ=base_env(REDIS_URL=redis_server.url)))
    async with AsyncTestClient(app) as client:
        response = await client.get("/v1/jobs/" + "0" * 32)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "job_not_found"
