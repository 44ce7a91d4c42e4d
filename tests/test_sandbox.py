"""The decode sandbox on its own: structural checks, and the pool of real worker processes.

Every limit is proven with a file that needs it: the CPU limit with a progressive scan bomb (let
past the scan check on purpose), the memory limit with a PNG that decodes to ~150 MB, the
wall-clock deadline and abandoned requests with an honest but slow photo. A worker that is
killed, from inside or outside, is replaced and the next decode works.
"""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from sandbox.errors import ImageRefused
from sandbox.jfif import stored_as_sent
from sandbox.pool import DecodePool, PoolLimits
from sandbox.probe import probe
from tests import hostile, images
from tests.photos import encode, landscape

pytestmark = pytest.mark.anyio

MAX_PIXELS = 40_000_000
HONEST = encode(landscape(640, 480), "JPEG", quality=90)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (hostile.progressive_scan_bomb, "image_too_complex"),
        (hostile.webp_bomb, "too_many_pixels"),
        (lambda: hostile.webp_bomb(side=6000), "image_too_complex"),  # 36 MP in 34 bytes
        (hostile.gif_bomb, "too_many_pixels"),
        (hostile.heic_bomb, "too_many_pixels"),
        (images.png_bomb, "too_many_pixels"),
    ],
    ids=["scan bomb", "webp 268 MP", "webp 36 MP tiny", "gif", "heic", "png"],
)
def test_structural_checks_refuse_bombs_in_microseconds(make: Callable[[], bytes], code: str) -> None:
    data = make()
    started = time.perf_counter()
    with pytest.raises(ImageRefused) as refused:
        probe(data, max_pixels=MAX_PIXELS)
    elapsed = time.perf_counter() - started
    assert refused.value.code == code
    assert elapsed < 0.05, f"the probe took {elapsed * 1000:.1f} ms"


def test_structural_checks_read_honest_headers() -> None:
    for data, kind in (
        (HONEST, "image/jpeg"),
        (encode(landscape(320, 240), "PNG"), "image/png"),
        (encode(landscape(320, 240), "WEBP"), "image/webp"),
        (encode(landscape(320, 240), "GIF"), "image/gif"),
        (images.heic(), "image/heic"),
        (encode(landscape(320, 240), "JPEG", progressive=True), "image/jpeg"),
    ):
        info = probe(data, max_pixels=MAX_PIXELS)
        assert info.media_type == kind
        assert (info.width, info.height) in ((320, 240), (640, 480), (160, 120))


def status(pid: int) -> dict[str, str]:
    rows = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(row.split(":", 1) for row in rows if ":" in row)


def alive(pid: int) -> bool:
    try:
        return status(pid)["State"].split()[0] != "Z"
    except OSError:
        return False


async def until(check: Callable[[], bool], timeout_s: float = 30) -> None:
    """Poll `check` (a process's state has no event to wait on)."""
    with anyio.fail_after(timeout_s):
        while not check():  # noqa: ASYNC110 - polling /proc
            await anyio.sleep(0.05)


async def ready(pool: DecodePool, count: int, *, old: frozenset[int] = frozenset()) -> list[int]:
    """The pids of `count` live workers that are not in `old`."""
    await until(lambda: len([p for p in pool.pids() if p not in old]) >= count)
    return [p for p in pool.pids() if p not in old]


async def test_honest_photos_are_decoded_and_a_clean_jfif_jpeg_is_kept() -> None:
    async with DecodePool(PoolLimits(workers=1)) as pool:
        kept = await pool.normalize(HONEST, max_pixels=MAX_PIXELS)
        assert kept.data is None  # stored byte for byte
        assert (kept.width, kept.height) == (640, 480)
        converted = await pool.normalize(encode(landscape(320, 240), "PNG"), max_pixels=MAX_PIXELS)
        assert converted.data is not None
        assert converted.data.startswith(b"\xff\xd8")
        with pytest.raises(ImageRefused) as refused:
            await pool.normalize(images.truncated_jpeg(), max_pixels=MAX_PIXELS)
        assert refused.value.code == "image_unreadable"
        with pytest.raises(ImageRefused) as refused:
            await pool.normalize(hostile.header_only_png(), max_pixels=MAX_PIXELS)
        assert refused.value.code == "image_unreadable"
        assert sum(pool.replaced.values()) == 0  # refusals are answers, not crashes


async def test_workers_run_limited_and_without_the_parents_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecret")
    monkeypatch.setenv("REDIS_URL", "redis://:password@127.0.0.1:1/0")
    async with DecodePool(PoolLimits(workers=2, memory_mb=300, cpu_seconds=3)) as pool:
        pids = await ready(pool, 2)
        for pid in pids:
            environ = await anyio.Path(f"/proc/{pid}/environ").read_bytes()
            assert b"hf_secret" not in environ
            assert b"REDIS_URL" not in environ
            limits = await anyio.Path(f"/proc/{pid}/limits").read_text()
            address_space = next(line for line in limits.splitlines() if line.startswith("Max address space"))
            assert str(300 * 1024 * 1024) in address_space
            assert os.getsid(pid) == pid  # its own session: the terminal's signals are not for it


async def test_a_scan_bomb_past_the_scan_check_is_stopped_by_the_cpu_limit() -> None:
    bomb = hostile.progressive_scan_bomb(side=6000, repeats=8000)  # ~30 s of CPU unchecked
    async with DecodePool(PoolLimits(workers=1, cpu_seconds=1, timeout_seconds=60)) as pool:
        (first,) = await ready(pool, 1)
        started = time.monotonic()
        with pytest.raises(ImageRefused) as refused:
            await pool.normalize(bomb, max_pixels=MAX_PIXELS, max_scans=100_000)
        assert time.monotonic() - started < 20
        assert refused.value.code == "image_too_complex"
        assert "CPU" in refused.value.message
        assert pool.replaced["over_cpu"] == 1
        assert not alive(first)
        assert (await pool.normalize(HONEST, max_pixels=MAX_PIXELS)).width == 640
        assert first not in pool.pids()


async def test_a_decompression_bomb_is_stopped_by_the_memory_limit() -> None:
    bomb = hostile.png_memory_bomb(6000)  # 36 MP RGBA: ~144 MB of pixels from 140 KB
    async with DecodePool(PoolLimits(workers=1, memory_mb=160, timeout_seconds=60)) as pool:
        with pytest.raises(ImageRefused) as refused:
            await pool.normalize(bomb, max_pixels=MAX_PIXELS)
        assert refused.value.code == "image_too_complex"
        assert pool.replaced["retired"] + pool.replaced["crashed"] == 1
        assert (await pool.normalize(HONEST, max_pixels=MAX_PIXELS)).width == 640


async def test_the_wall_clock_deadline_kills_a_slow_decode() -> None:
    slow = hostile.png_memory_bomb(3000)
    async with DecodePool(PoolLimits(workers=1, timeout_seconds=0.2)) as pool:
        (first,) = await ready(pool, 1)
        started = time.monotonic()
        with pytest.raises(ImageRefused) as refused:
            await pool.normalize(slow, max_pixels=MAX_PIXELS)
        assert time.monotonic() - started < 5
        assert refused.value.code == "image_too_complex"
        assert pool.replaced["over_time"] == 1
        await ready(pool, 1, old=frozenset({first}))
        assert not alive(first)


async def test_a_worker_killed_from_outside_is_replaced() -> None:
    async with DecodePool(PoolLimits(workers=2)) as pool:
        pids = await ready(pool, 2)
        os.kill(pids[0], signal.SIGKILL)
        replacement = await ready(pool, 2, old=frozenset({pids[0]}))
        assert pids[0] not in replacement
        assert pool.replaced["died_idle"] == 1
        for _ in range(4):  # both workers answer
            assert (await pool.normalize(HONEST, max_pixels=MAX_PIXELS)).width == 640


async def test_an_abandoned_request_kills_its_decode() -> None:
    slow = hostile.png_memory_bomb(6000)
    async with DecodePool(PoolLimits(workers=1, timeout_seconds=60)) as pool:
        (first,) = await ready(pool, 1)
        with anyio.move_on_after(0.3) as scope:
            await pool.normalize(slow, max_pixels=MAX_PIXELS)
        assert scope.cancelled_caught
        await until(lambda: not alive(first), timeout_s=5)
        assert pool.replaced["abandoned"] == 1
        assert (await pool.normalize(HONEST, max_pixels=MAX_PIXELS)).width == 640


async def test_turns_go_to_the_client_with_the_fewest_decodes_running() -> None:
    slow = hostile.png_memory_bomb(2500)
    finished: list[str] = []
    async with DecodePool(PoolLimits(workers=1, timeout_seconds=60)) as pool:
        await ready(pool, 1)

        async def decode(client: str, data: bytes, name: str) -> None:
            await pool.normalize(data, max_pixels=MAX_PIXELS, client=client)
            finished.append(name)

        async with anyio.create_task_group() as tg:
            for index in range(4):
                tg.start_soon(decode, "flood", slow, f"flood-{index}")
                await anyio.sleep(0.02)
            tg.start_soon(decode, "honest", HONEST, "honest")
    # The flood's first decode was running; the honest upload goes next, before the flood's others.
    assert finished.index("honest") <= 1, finished


async def test_waiting_is_capped_per_client_and_in_all() -> None:
    # The one worker is held by a scan bomb that runs until its CPU limit (2 s of CPU: seconds of
    # wall time however loaded the machine), so every later request finds it busy. An ordinary
    # slow decode could finish before the last request arrives on a fast or idle machine.
    blocker = hostile.progressive_scan_bomb(side=6000, repeats=8000)
    limits = PoolLimits(workers=1, cpu_seconds=2, timeout_seconds=60, per_client_waiting=2, max_waiting=3)
    codes: dict[str, list[str]] = {}
    async with DecodePool(limits) as pool:
        await ready(pool, 1)

        async def decode(name: str, client: str, data: bytes, max_scans: int = 100) -> None:
            try:
                await pool.normalize(data, max_pixels=MAX_PIXELS, max_scans=max_scans, client=client)
                codes.setdefault(name, []).append("ok")
            except ImageRefused as exc:
                codes.setdefault(name, []).append(exc.code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(decode, "blocker", "a", blocker, 100_000)
            await anyio.sleep(0.05)
            for client in ("a", "a", "a", "b", "c"):
                tg.start_soon(decode, client, client, HONEST)
                await anyio.sleep(0.05)
    # a: one running, two waiting, the fourth refused; b waits (3 waiting in all); c finds it full.
    assert {name: sorted(found) for name, found in codes.items()} == {
        "blocker": ["image_too_complex"],
        "a": ["ok", "ok", "too_many_decodes"],
        "b": ["ok"],
        "c": ["decoder_busy"],
    }, codes


async def test_a_worker_is_recycled_after_many_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import pool as pool_module

    monkeypatch.setattr(pool_module, "RECYCLE_AFTER_TASKS", 3)
    async with DecodePool(PoolLimits(workers=1)) as pool:
        (first,) = await ready(pool, 1)
        for _ in range(3):
            assert (await pool.normalize(HONEST, max_pixels=MAX_PIXELS)).width == 640
        assert pool.replaced["recycled"] == 1
        (second,) = await ready(pool, 1, old=frozenset({first}))
        assert (await pool.normalize(HONEST, max_pixels=MAX_PIXELS)).width == 640
        assert pool.pids() == [second]


def _jpeg(**options: Any) -> bytes:
    image = options.pop("image", None) or landscape(640, 480)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, **options)
    return out.getvalue()


PLAIN = {"max_side": 2048, "min_side": 16, "max_pixels": MAX_PIXELS}


def test_a_plain_jfif_jpeg_is_recognised_from_its_structure_alone() -> None:
    assert stored_as_sent(_jpeg(), **PLAIN) == (640, 480)
    assert stored_as_sent(_jpeg(optimize=True), **PLAIN) == (640, 480)
    assert stored_as_sent(_jpeg(subsampling=0), **PLAIN) == (640, 480)  # 4:4:4
    exif = Image.Exif()
    exif[0x0112] = 6
    with_comment = _jpeg()
    with_comment = with_comment[:2] + b"\xff\xfe\x00\x07hello" + with_comment[2:]
    two_scans = hostile.progressive_scan_bomb(side=64, repeats=2)
    over_subscribed = bytearray(_jpeg())
    dht = over_subscribed.index(b"\xff\xc4")
    over_subscribed[dht + 5 : dht + 7] = b"\x09\x09"  # 9 codes of length 1 and 2: no prefix code
    not_plain = {
        "exif": _jpeg(exif=exif.tobytes()),
        "icc profile": _jpeg(icc_profile=images.srgb_icc()),
        "comment": with_comment,
        "progressive": _jpeg(progressive=True),
        "grey": _jpeg(image=landscape(640, 480).convert("L")),
        "cmyk": _jpeg(image=landscape(640, 480).convert("CMYK")),
        "larger than stored": _jpeg(image=landscape(2400, 1200)),
        "truncated": images.truncated_jpeg(),
        "data after the end": _jpeg() + b"trailing",
        "no entropy-coded data": _jpeg()[: _jpeg().index(b"\xff\xda") + 14] + b"\xff\xd9",
        "over-subscribed huffman table": bytes(over_subscribed),
        "two scans": two_scans,
        "not a jpeg": encode(landscape(640, 480), "PNG"),
    }
    for name, data in not_plain.items():
        assert stored_as_sent(data, **PLAIN) is None, name


async def test_whatever_the_fast_path_keeps_the_sandbox_would_keep_too() -> None:
    variants = [_jpeg(), _jpeg(optimize=True), _jpeg(subsampling=0), _jpeg(image=landscape(2048, 1536))]
    async with DecodePool(PoolLimits(workers=1)) as pool:
        for data in variants:
            plain = stored_as_sent(data, **PLAIN)
            assert plain is not None
            decoded = await pool.normalize(data, max_pixels=MAX_PIXELS)
            assert decoded.data is None  # kept byte for byte after a full decode as well
            assert (decoded.width, decoded.height) == plain
