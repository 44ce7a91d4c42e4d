"""Uploads: type from the bytes, size limits before decoding, and the normalized stored copy.

Real app (in-process ASGI), real redis-server; the stored copy is read back from Redis.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from metrics.definitions import DECODE_SECONDS
from tests import images
from tests.ingest_support import Driver, api, decode, photo_bytes, settings_for
from tests.photos import encode, landscape
from tests.procs import RedisServer

pytestmark = pytest.mark.anyio


async def upload(client: AsyncTestClient[Any], data: bytes, name: str = "photo.jpg", **form: str) -> Any:
    return await client.post(
        "/v1/jobs", files={"image": (name, data, "application/octet-stream")}, data=form or None
    )


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["detail"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("name", "make", "status", "code"),
    [
        ("zero bytes", lambda: b"", 422, "empty_image"),
        ("text file named .jpg", images.text_named_jpg, 415, "unsupported_image_type"),
        ("truncated JPEG", images.truncated_jpeg, 422, "image_unreadable"),
        ("1x1 PNG", images.one_by_one_png, 422, "image_too_small"),
        ("30000x30000 PNG bomb", images.png_bomb, 422, "too_many_pixels"),
        # Only the header claims 900 MP: refused as too large, so the size was read before decoding.
        ("PNG header claiming 900 MP", images.png_header_only, 422, "too_many_pixels"),
        ("BMP", lambda: encode(landscape(64, 48), "BMP"), 415, "unsupported_image_type"),
    ],
)
async def test_bad_uploads_are_refused_with_a_problem(
    client: AsyncTestClient[Any], name: str, make: Any, status: int, code: str
) -> None:
    body = assert_problem(await upload(client, make()), status, code)
    assert body["field"] == "image", name


async def test_missing_image_field(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/v1/jobs", files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}, data={"prompt": "hello"}
    )
    assert_problem(response, 422, "missing_image")
    # Not multipart at all: a malformed request, still a problem document.
    assert_problem(await client.post("/v1/jobs", data={"prompt": "hello"}), 400, "bad_request")


async def test_type_comes_from_the_bytes_not_the_name_or_header(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    png = encode(landscape(320, 240), "PNG")
    response = await client.post("/v1/jobs", files={"image": ("holiday.gif", png, "image/gif")})
    assert response.status_code == 202, response.text
    assert decode(await driver.stored_photo(response.json()["id"])).format == "JPEG"


async def test_byte_limit_is_413(redis_server: RedisServer) -> None:
    limit = 50_000
    async with api(settings_for(redis_server, GHIBLI_MAX_UPLOAD_BYTES=str(limit))) as client:
        noisy = encode(landscape(300, 200, seed=3), "PNG")
        assert limit < len(noisy) < limit + 60_000  # within the form allowance: our own check
        assert_problem(await upload(client, noisy), 413, "payload_too_large")
        huge = b"\xff\xd8\xff" + bytes(300_000)  # over the whole-body limit: Litestar stops reading
        assert_problem(await upload(client, huge), 413, "payload_too_large")
        assert (await upload(client, photo_bytes())).status_code == 202


async def test_pixel_limit_is_a_setting(redis_server: RedisServer) -> None:
    async with api(settings_for(redis_server, GHIBLI_MAX_PIXELS="100000")) as client:
        body = assert_problem(
            await upload(client, encode(landscape(400, 300), "JPEG")), 422, "too_many_pixels"
        )
        assert "400x300" in body["detail"]
        assert (await upload(client, encode(landscape(300, 300), "JPEG"))).status_code == 202


async def accepted_copy(client: AsyncTestClient[Any], driver: Driver, data: bytes) -> Image.Image:
    response = await upload(client, data)
    assert response.status_code == 202, response.text
    stored = await driver.stored_photo(response.json()["id"])
    img = decode(stored)
    assert img.format == "JPEG"
    assert img.mode == "RGB"
    assert not img.getexif()
    assert "icc_profile" not in img.info
    return img


def near(pixel: Any, color: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, color, strict=True))


async def test_exif_rotated_photo_is_stored_upright_without_metadata(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    original = images.exif_rotated_jpeg()
    assert b"PhoneMaker" in original
    response = await upload(client, original)
    assert response.status_code == 202
    stored = await driver.stored_photo(response.json()["id"])
    img = decode(stored)
    assert img.size == (240, 320)  # portrait again
    assert near(img.getpixel((120, 10)), images.RED)  # the red band is at the top
    assert not near(img.getpixel((120, 310)), images.RED)
    assert not img.getexif()
    assert b"Exif" not in stored
    assert b"PhoneMaker" not in stored
    # The default size follows the upright photo: portrait, longest side 768.
    assert response.json()["params"]["width"] == 576
    assert response.json()["params"]["height"] == 768


async def test_a_large_phone_photo_is_stored_upright_at_2048_px(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    # 12.6 MP, decoded at reduced scale (JPEG DCT scaling) before the final resize.
    img = await accepted_copy(client, driver, images.exif_rotated_jpeg(3072, 4096))
    assert img.size == (1536, 2048)  # portrait, the aspect ratio kept
    assert near(img.getpixel((768, 100)), images.RED)
    assert not near(img.getpixel((768, 1900)), images.RED)


def decodes() -> float:
    """Decodes the sandbox has run in this process so far (every task, every outcome)."""
    return sum(
        sample.value
        for metric in DECODE_SECONDS.collect()
        for sample in metric.samples
        if sample.name.endswith("_count")
    )


async def test_a_clean_jpeg_is_stored_byte_for_byte(client: AsyncTestClient[Any], driver: Driver) -> None:
    sent = encode(landscape(640, 480), "JPEG", quality=88)  # JFIF only, as browsers export
    before = decodes()
    response = await upload(client, sent)
    assert response.status_code == 202, response.text
    assert await driver.stored_photo(response.json()["id"]) == sent
    # Accepted from its structure alone: no decoder had to look at its pixels.
    assert decodes() == before
    png = await upload(client, encode(landscape(640, 480), "PNG"))
    assert png.status_code == 202
    assert decodes() == before + 1


@pytest.mark.parametrize(
    ("name", "sent", "left_out"),
    [
        ("a comment", encode(landscape(320, 240), "JPEG", comment=b"secret-comment"), b"secret-comment"),
        (
            "bytes after its end",
            encode(landscape(320, 240), "JPEG") + b"appended-payload",
            b"appended-payload",
        ),
        (
            "an ICC profile",
            encode(landscape(320, 240), "JPEG", icc_profile=images.srgb_icc()),
            b"ICC_PROFILE",
        ),
    ],
)
async def test_a_jpeg_with_more_than_pixels_is_re_encoded_without_it(
    client: AsyncTestClient[Any], driver: Driver, name: str, sent: bytes, left_out: bytes
) -> None:
    assert left_out in sent
    response = await upload(client, sent)
    assert response.status_code == 202, response.text
    stored = await driver.stored_photo(response.json()["id"])
    assert left_out not in stored, name
    assert decode(stored).size == (320, 240)


async def test_a_clean_jpeg_larger_than_2048_px_is_resized(
    client: AsyncTestClient[Any], driver: Driver
) -> None:
    sent = encode(landscape(3000, 2000), "JPEG", quality=85)
    img = await accepted_copy(client, driver, sent)
    assert img.size == (2048, 1365)


async def test_cmyk_jpeg_becomes_rgb(client: AsyncTestClient[Any], driver: Driver) -> None:
    img = await accepted_copy(client, driver, images.cmyk_jpeg(images.RED))
    assert near(img.getpixel((40, 30)), images.RED, tolerance=40)


async def test_16_bit_png_becomes_8_bit_rgb(client: AsyncTestClient[Any], driver: Driver) -> None:
    img = await accepted_copy(client, driver, images.png16())
    left, middle, right = (img.getpixel((x, 32)) for x in (2, 128, 253))
    assert near(left, (0, 0, 0), 12)
    assert near(right, (255, 255, 255), 12)
    assert near(middle, (128, 128, 128), 16)  # scaled, not clipped to white


async def test_alpha_is_composited_on_white(client: AsyncTestClient[Any], driver: Driver) -> None:
    img = await accepted_copy(client, driver, images.rgba_png())
    assert near(img.getpixel((2, 2)), (255, 255, 255), 8)
    assert near(img.getpixel((32, 32)), images.RED)


async def test_palette_png_becomes_rgb(client: AsyncTestClient[Any], driver: Driver) -> None:
    img = await accepted_copy(client, driver, images.palette_png())
    assert near(img.getpixel((32, 24)), images.RED)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
async def test_animated_images_use_the_first_frame(
    client: AsyncTestClient[Any], driver: Driver, fmt: str
) -> None:
    data = images.animated(fmt)
    assert Image.open(__import__("io").BytesIO(data)).n_frames == 3
    img = await accepted_copy(client, driver, data)
    assert near(img.getpixel((32, 24)), images.RED, tolerance=40)


async def test_heic_is_accepted(client: AsyncTestClient[Any], driver: Driver) -> None:
    data = images.heic()
    assert data[4:12] == b"ftypheic"
    img = await accepted_copy(client, driver, data)
    assert img.size == (160, 120)
    # The same scene as the JPEG corpus photo: sky at the top, hills at the bottom.
    top, bottom = img.getpixel((10, 5)), img.getpixel((10, 115))
    assert top[2] > top[1] > top[0]  # blue sky
    assert bottom[1] > bottom[0]
    assert bottom[1] > bottom[2]
