"""Reading results (type, ETag, 304, names, conversion) and DELETE (cancel + erase, then 404)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.ingest_support import Driver, api, decode, photo_bytes, picture, settings_for
from tests.procs import RedisServer

pytestmark = pytest.mark.anyio


async def submitted(client: AsyncTestClient[Any], seed: int = 1) -> dict[str, Any]:
    response = await client.post(
        "/v1/jobs", files={"image": ("p.jpg", photo_bytes(seed=seed), "image/jpeg")}, data={"seed": str(seed)}
    )
    assert response.status_code == 202
    job: dict[str, Any] = response.json()
    return job


async def finished(
    client: AsyncTestClient[Any], driver: Driver, data: bytes, media_type: str, seed: int = 1
) -> dict[str, Any]:
    job = await submitted(client, seed)
    claim = (await driver.claim_all())[job["id"]]
    assert await driver.succeed(claim, data, media_type) == "ok"
    return job


async def test_result_has_type_etag_and_name(client: AsyncTestClient[Any], driver: Driver) -> None:
    data = picture()
    job = await finished(client, driver, data, "image/png")
    status = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert status["result"] == {
        "url": f"/v1/jobs/{job['id']}/result",
        "content_type": "image/png",
        "width": job["params"]["width"],
        "height": job["params"]["height"],
    }
    response = await client.get(status["result"]["url"])
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == f'inline; filename="ghibli-{job["id"][:8]}.png"'
    etag = response.headers["etag"]
    assert etag.startswith('"')

    again = await client.get(status["result"]["url"], headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert (
        await client.get(status["result"]["url"], headers={"If-None-Match": '"other"'})
    ).status_code == 200
    download = await client.get(status["result"]["url"], params={"download": "true"})
    assert download.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("fmt", "media_type", "ext"), [("jpeg", "image/jpeg", "jpg"), ("webp", "image/webp", "webp")]
)
async def test_format_converts(
    client: AsyncTestClient[Any], driver: Driver, fmt: str, media_type: str, ext: str
) -> None:
    job = await finished(client, driver, picture((10, 200, 90)), "image/png")
    url = f"/v1/jobs/{job['id']}/result"
    original_etag = (await client.get(url)).headers["etag"]
    response = await client.get(url, params={"format": fmt})
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["content-disposition"].endswith(f'.{ext}"')
    assert response.headers["etag"] != original_etag  # another representation, another validator
    img = decode(response.content)
    assert img.format == fmt.upper()
    assert img.size == (64, 48)
    r, g, b = img.convert("RGB").getpixel((32, 24))
    assert abs(r - 10) < 12
    assert abs(g - 200) < 12
    assert abs(b - 90) < 12


async def test_webp_result_to_png(client: AsyncTestClient[Any], driver: Driver) -> None:
    from tests.photos import encode, landscape

    job = await finished(client, driver, encode(landscape(96, 64), "WEBP"), "image/webp")
    response = await client.get(f"/v1/jobs/{job['id']}/result", params={"format": "png"})
    assert response.headers["content-type"] == "image/png"
    assert decode(response.content).format == "PNG"


async def test_unknown_format_is_a_problem(client: AsyncTestClient[Any], driver: Driver) -> None:
    job = await finished(client, driver, picture(), "image/png")
    response = await client.get(f"/v1/jobs/{job['id']}/result", params={"format": "bmp"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "bad_request"


async def test_no_result_yet_or_ever(client: AsyncTestClient[Any], driver: Driver) -> None:
    job = await submitted(client)
    response = await client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 409
    assert response.json()["code"] == "result_not_ready"
    assert response.json()["job_status"] == "queued"
    claim = (await driver.claim_all())[job["id"]]
    await driver.fail(claim, "space_error", "The Space said no.")
    response = await client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 409
    assert response.json()["code"] == "job_not_succeeded"
    status = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert status["error"] == {"code": "space_error", "message": "The Space said no."}


async def test_expired_result_is_410(client: AsyncTestClient[Any], driver: Driver) -> None:
    job = await finished(client, driver, picture(), "image/png")
    record = await driver.store.get(job["id"])
    assert record is not None
    await driver.blobs.delete(record.result_key)
    response = await client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 410
    assert response.json()["code"] == "result_expired"


async def test_delete_cancels_erases_and_then_404(client: AsyncTestClient[Any], driver: Driver) -> None:
    job = await submitted(client)
    claim = (await driver.claim_all())[job["id"]]
    await driver.progress(claim, 0.3)
    record = await driver.store.get(job["id"])
    assert record is not None
    assert await driver.blobs.get(record.input_key) is not None

    response = await client.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 204
    for path in ("", "/result", "/events"):
        gone = await client.get(f"/v1/jobs/{job['id']}{path}")
        assert gone.status_code == 404
        assert gone.json()["code"] == "job_not_found"
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 404
    assert await driver.blobs.get(record.input_key) is None
    assert not await driver.redis.exists(driver.keys.job(job["id"]))
    # The consumer that held it finds out at its next write and stops.
    assert await driver.store.update(claim, progress=0.6) in ("missing", "cancelled")


async def test_delete_of_a_finished_job_removes_its_result(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    job = await finished(client, driver, picture(), "image/png")
    record = await driver.store.get(job["id"])
    assert record is not None
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    assert await driver.blobs.get(record.result_key) is None
    assert await driver.blobs.get(record.input_key) is None


async def test_malformed_ids_are_not_found(client: AsyncTestClient[Any]) -> None:
    for job_id in ("nope", "A" * 32, "0" * 33, "0" * 31 + "g"):
        response = await client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 404, job_id
        assert response.json()["code"] == "job_not_found"


async def test_a_conversion_is_made_once_kept_with_the_result_and_erased_with_it(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    job = await finished(client, driver, picture((10, 200, 90)), "image/png")
    record = await driver.store.get(job["id"])
    assert record is not None
    url = f"/v1/jobs/{job['id']}/result"
    first = await client.get(url, params={"format": "webp"})
    assert first.status_code == 200
    kept = driver.keys.blob(f"{record.result_key}.webp")
    assert await driver.redis.get(kept) == first.content
    # It expires with the result, never after it.
    result_ttl = await driver.redis.ttl(driver.keys.blob(record.result_key))
    assert 0 < await driver.redis.ttl(kept) <= result_ttl
    # The second request is answered from the kept copy: replace it and the answer follows.
    await driver.redis.set(kept, b"kept copy", keepttl=True)
    assert (await client.get(url, params={"format": "webp"})).content == b"kept copy"
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    assert not await driver.redis.exists(kept)


async def test_conversions_count_against_the_clients_request_budget(redis_server: RedisServer) -> None:
    settings = settings_for(redis_server, GHIBLI_RATE_LIMIT_REQUESTS="70")
    driver = Driver(settings)
    async with api(settings) as client:
        job = await finished(client, driver, picture(), "image/png")
        url = f"/v1/jobs/{job['id']}/result"
        assert (await client.get(url, params={"format": "webp"})).status_code == 200  # 1 + 30
        assert (await client.get(url, params={"format": "jpeg"})).status_code == 200  # 1 + 30
        other = await finished(client, driver, picture((1, 2, 3)), "image/png", seed=2)
        refused = await client.get(
            f"/v1/jobs/{other['id']}/result", params={"format": "webp"}
        )  # > what is left
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert "conversion" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        # Stored copies cost one request each, like any read.
        assert (await client.get(url, params={"format": "webp"})).status_code == 200
    await driver.close()
