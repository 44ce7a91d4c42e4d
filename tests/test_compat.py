"""The old product's routes answer with the old product's shapes (see shared notes: old_product.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.ingest_support import Driver, api, photo_bytes, picture, settings_for
from tests.procs import RedisServer

pytestmark = pytest.mark.anyio

OLD_FORM = {
    "prompt": "Ghibli Studio style, Charming hand-drawn anime-style illustration",
    "height": "512",
    "width": "512",
    "seed": "42",
}
NO_CACHE = {"cache-control": "no-cache, no-store, must-revalidate", "pragma": "no-cache", "expires": "0"}


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[AsyncTestClient[Any]]:
    # Checks answered at once: these tests are about shapes; holding is tests/test_long_poll.py's.
    async with api(settings_for(redis_server, GHIBLI_LONG_POLL_SECONDS="0")) as client:
        yield client


async def transform(client: AsyncTestClient[Any], seed: int = 1) -> str:
    response = await client.post(
        "/api/transform-ghibli",
        files={"image": ("upload.jpg", photo_bytes(seed=seed), "image/jpeg")},
        data=OLD_FORM,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "taskId": body["taskId"],
        "message": "Image processing started",
        "estimatedTime": "30-60 seconds",
    }
    task_id: str = body["taskId"]
    return task_id


async def check(client: AsyncTestClient[Any], task_id: str, method: str = "GET") -> Any:
    return await client.request(method, f"/api/transform-ghibli/check/{task_id}")


async def test_submit_queues_a_real_job(client: AsyncTestClient[Any]) -> None:
    task_id = await transform(client)
    job = (await client.get(f"/v1/jobs/{task_id}")).json()
    assert job["status"] == "queued"
    assert (job["params"]["width"], job["params"]["height"], job["params"]["seed"]) == (512, 512, 42)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_check_while_running_then_the_picture(
    client: AsyncTestClient[Any], driver: Driver, method: str
) -> None:
    task_id = await transform(client)
    queued = await check(client, task_id, method)
    assert queued.status_code == 200
    assert queued.headers["content-type"].startswith("application/json")
    body = queued.json()
    assert set(body) == {"status", "progress", "elapsedTime"}
    assert body["status"] == "processing"
    assert body["progress"] == 0
    assert isinstance(body["elapsedTime"], int)
    assert body["elapsedTime"] >= 0

    claim = (await driver.claim_all())[task_id]
    await driver.progress(claim, 0.5)
    assert (await check(client, task_id, method)).json()["progress"] == 50

    result = picture()
    await driver.succeed(claim, result, "image/png")
    done = await check(client, task_id, method)
    assert done.status_code == 200
    assert done.content == result
    assert done.headers["content-type"] == "image/png"  # the real type, which old clients read
    for name, value in NO_CACHE.items():
        assert done.headers[name] == value


async def test_failed_and_cancelled_are_500_failed(client: AsyncTestClient[Any], driver: Driver) -> None:
    failed_id, cancelled_id = await transform(client, 1), await transform(client, 2)
    claims = await driver.claim_all()
    await driver.fail(claims[failed_id], "space_error", "The Space is paused.")
    response = await check(client, failed_id)
    assert response.status_code == 500
    assert response.json() == {"status": "failed", "error": "The Space is paused.", "code": "space_error"}
    await driver.store.cancel(cancelled_id)
    response = await check(client, cancelled_id, "POST")
    assert response.status_code == 500
    assert response.json()["status"] == "failed"
    assert response.json()["error"]


async def test_unknown_task_is_404_not_found(client: AsyncTestClient[Any]) -> None:
    for task_id in ("m1a2b3c4d5", "0" * 32):  # an old-style id and one of ours that does not exist
        response = await check(client, task_id)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"status": "not_found", "code": "job_not_found"}


async def test_expired_picture_is_404_error(client: AsyncTestClient[Any], driver: Driver) -> None:
    task_id = await transform(client)
    await driver.succeed((await driver.claim_all())[task_id], picture())
    record = await driver.store.get(task_id)
    assert record is not None
    await driver.blobs.delete(record.result_key)
    response = await check(client, task_id)
    assert response.status_code == 404
    assert response.json() == {"status": "error", "code": "result_expired", "error": "Image data not found"}


async def test_submit_errors_carry_the_old_error_member(client: AsyncTestClient[Any]) -> None:
    no_image = await client.post(
        "/api/transform-ghibli", files={"other": ("x.txt", b"x", "text/plain")}, data=OLD_FORM
    )
    assert no_image.status_code == 422
    assert no_image.headers["content-type"].startswith("application/problem+json")
    assert no_image.json()["code"] == "missing_image"
    assert no_image.json()["error"] == no_image.json()["detail"]
    not_a_photo = await client.post(
        "/api/transform-ghibli", files={"image": ("a.jpg", b"plain text", "image/jpeg")}
    )
    assert not_a_photo.status_code == 415
    assert not_a_photo.json()["error"]
