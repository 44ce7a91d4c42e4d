"""Submission parameters: defaults, ranges and the messages that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from ingest.params import default_size
from jobs.model import DEFAULT_PROMPT
from tests.ingest_support import photo_bytes

pytestmark = pytest.mark.anyio


async def submit(client: AsyncTestClient[Any], size: tuple[int, int] = (320, 240), **form: str) -> Any:
    return await client.post(
        "/v1/jobs", files={"image": ("p.jpg", photo_bytes(size=size), "image/jpeg")}, data=form or None
    )


async def test_defaults(client: AsyncTestClient[Any]) -> None:
    response = await submit(client, (640, 480))
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["links"] == {
        "self": f"/v1/jobs/{job['id']}",
        "events": f"/v1/jobs/{job['id']}/events",
        "result": None,
    }
    assert job["status"] == "queued"
    params = job["params"]
    assert params["prompt"] == DEFAULT_PROMPT
    assert (params["width"], params["height"]) == (768, 576)  # aspect kept, longest side 768
    assert 0 <= params["seed"] <= 2**32 - 1
    assert params["use_zero_init"] is False
    assert params["zero_steps"] == 1


async def test_random_seed_is_returned_and_differs(client: AsyncTestClient[Any]) -> None:
    first = (await submit(client)).json()["params"]["seed"]
    second = (await submit(client)).json()["params"]["seed"]
    assert first != second  # 1 in 2**32 to collide


async def test_explicit_values_are_kept(client: AsyncTestClient[Any]) -> None:
    response = await submit(
        client,
        prompt="  A quiet harbour at dusk  ",
        width="1024",
        height="256",
        seed=str(2**32 - 1),
        use_zero_init="true",
        zero_steps="0",
    )
    assert response.status_code == 202, response.text
    assert response.json()["params"] == {
        "prompt": "A quiet harbour at dusk",
        "width": 1024,
        "height": 256,
        "seed": 2**32 - 1,
        "use_zero_init": True,
        "zero_steps": 0,
    }


async def test_empty_fields_mean_defaults(client: AsyncTestClient[Any]) -> None:
    """HTML forms send "" for empty inputs."""
    response = await submit(client, prompt="", width="", height="", seed="", use_zero_init="", zero_steps="")
    assert response.status_code == 202, response.text
    assert response.json()["params"]["prompt"] == DEFAULT_PROMPT


async def test_one_side_given_keeps_the_aspect_ratio(client: AsyncTestClient[Any]) -> None:
    params = (await submit(client, (640, 480), width="512")).json()["params"]
    assert (params["width"], params["height"]) == (512, 384)
    params = (await submit(client, (480, 640), height="1024")).json()["params"]
    assert (params["width"], params["height"]) == (768, 1024)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("width", "500", "between 256 and 1024 in steps of 64"),
        ("width", "192", "between 256 and 1024 in steps of 64"),
        ("height", "1088", "between 256 and 1024 in steps of 64"),
        ("height", "big", "whole number"),
        ("seed", "-1", "between 0 and 4294967295"),
        ("seed", str(2**32), "between 0 and 4294967295"),
        ("zero_steps", "51", "between 0 and 50"),
        ("use_zero_init", "maybe", "true or false"),
        ("prompt", "x" * 501, "at most 500 characters"),
    ],
)
async def test_bad_values_name_the_field(
    client: AsyncTestClient[Any], field: str, value: str, words: str
) -> None:
    response = await submit(client, **{field: value})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid_parameter"
    assert problem["field"] == field
    assert field in problem["detail"]
    assert words in problem["detail"]


async def test_prompt_of_exactly_500_characters_is_fine(client: AsyncTestClient[Any]) -> None:
    assert (await submit(client, prompt="y" * 500)).status_code == 202


def test_default_size_snaps_to_the_grid() -> None:
    assert default_size(4000, 3000) == (768, 576)
    assert default_size(3000, 4000) == (576, 768)
    assert default_size(1000, 1000) == (768, 768)
    assert default_size(5000, 500) == (768, 256)  # very wide: the short side is clamped to 256
    assert default_size(1920, 1080) == (768, 448)
