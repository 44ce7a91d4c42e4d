"""Which engine paints the jobs, as ingest tells it: `/readyz`, the 202 body and the status JSON name
the offline demo engine, a Hugging Face Space or a self-hosted app, told apart by real servers (the
offline Space, the quota test app standing in for a self-hosted copy, a port nobody listens on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.engine_probe import EngineProbe
from jobs.engine import EngineInfo, engine_from_title, engine_without_probe
from tests.apps.runner import QuotaSpace
from tests.ingest_support import Driver, api, photo_bytes, picture, settings_for
from tests.procs import Proc, RedisServer, free_port, start_space

pytestmark = pytest.mark.anyio

HF_SPACE = "jamesliu1217/EasyControl_Ghibli"


@pytest.fixture(scope="module")
def offline_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc: Proc
    proc, url = start_space(tmp_path_factory.mktemp("space"), engine="fast")
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def self_hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    space = QuotaSpace(tmp_path_factory.mktemp("quota")).start()
    yield space.url
    space.stop()


def test_a_space_id_or_hf_space_url_needs_no_probe() -> None:
    assert engine_without_probe(HF_SPACE) == EngineInfo(kind="space", name=HF_SPACE)
    assert engine_without_probe("https://jamesliu1217-easycontrol-ghibli.hf.space/") == EngineInfo(
        kind="space", name="jamesliu1217-easycontrol-ghibli"
    )
    assert engine_without_probe("http://127.0.0.1:7861/") is None
    assert engine_from_title(None).kind == "unknown"
    assert engine_from_title("My \x1b[31mGPU\x00 copy").name == "My [31mGPU copy"  # nothing unprintable


@pytest.mark.system
async def test_the_offline_space_is_named_the_demo_engine_everywhere(
    redis_server: RedisServer, offline_space: str
) -> None:
    async with api(settings_for(redis_server, GHIBLI_SPACE=offline_space)) as client:
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready"
        demo = {"kind": "offline-demo", "name": "EasyControl Ghibli, offline demo engine (fast)"}
        assert ready["engine"] == demo
        accepted = await client.post("/v1/jobs", files={"image": ("p.jpg", photo_bytes(), "image/jpeg")})
        assert accepted.status_code == 202
        assert accepted.json()["engine"] == ready["engine"]
        status = (await client.get(f"/v1/jobs/{accepted.json()['id']}")).json()
        assert status["engine"] == ready["engine"]
        # The URL itself is never shown: it may be internal or carry credentials.
        assert offline_space.rstrip("/") not in str(ready) + str(status)


@pytest.mark.system
async def test_a_space_id_and_a_self_hosted_app(redis_server: RedisServer, self_hosted: str) -> None:
    async with api(settings_for(redis_server, GHIBLI_SPACE=HF_SPACE)) as client:
        assert (await client.get("/readyz")).json()["engine"] == {"kind": "space", "name": HF_SPACE}
    async with api(settings_for(redis_server, GHIBLI_SPACE=self_hosted)) as client:
        engine = (await client.get("/readyz")).json()["engine"]
    assert engine == {"kind": "self-hosted", "name": "quota test Space"}


@pytest.mark.system
async def test_an_unreachable_url_is_unknown_until_it_answers(offline_space: str) -> None:
    dead = EngineProbe(f"http://127.0.0.1:{free_port()}/")
    assert (await dead.refresh()).kind == "unknown"
    probe = EngineProbe(offline_space)
    assert probe.current.kind == "unknown"  # not asked yet
    assert (await probe.refresh()).kind == "offline-demo"


async def test_the_result_cache_never_crosses_engines(redis_server: RedisServer, tmp_path: Path) -> None:
    """A picture the demo engine painted is not handed out once the real model is connected."""
    photo, form = photo_bytes(seed=4), {"seed": "7", "width": "512", "height": "384"}
    driver = Driver(settings_for(redis_server))
    try:
        async with api(settings_for(redis_server, GHIBLI_SPACE="someone/DemoSpace")) as client:
            first = (await client.post("/v1/jobs", files={"image": photo}, data=form)).json()
            claim = (await driver.claim_all())[first["id"]]
            assert await driver.succeed(claim, picture()) == "ok"
            again: dict[str, Any] = (await client.post("/v1/jobs", files={"image": photo}, data=form)).json()
            assert again["cache_hit"] is True
        async with api(settings_for(redis_server, GHIBLI_SPACE=HF_SPACE)) as client:
            other = (await client.post("/v1/jobs", files={"image": photo}, data=form)).json()
        assert other["cache_hit"] is False
        assert other["status"] == "queued"
        assert other["engine"] == {"kind": "space", "name": HF_SPACE}
    finally:
        await driver.close()
