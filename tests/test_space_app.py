"""The offline Space through a real gradio_client against a real Gradio server on a free port.

One `ghibli space` subprocess (the command people run) serves most tests; the fault kinds each get
a small in-process server (space.app.launch) because a subprocess per kind would cost a Gradio
start-up each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError, Status
from PIL import Image

from ghibli.cli import cli
from space.app import WAIT_STEP
from space.samples import meadow
from space.stylizer import STEPS
from tests.procs import free_port, start_space, wait_until

ENDPOINT = "/single_condition_generate_image"
GHIBLI_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
TOKEN = "hf_offline_test_token_0123456789"  # a made-up token: only its alias may reach the log


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real `ghibli space` command with a call log; yields its URL and the log path."""
    workdir = tmp_path_factory.mktemp("space-app")
    log = workdir / "calls.jsonl"
    # A short delay is reported as "denoising" steps, so progress updates are certain to be seen
    # (Gradio sends the latest progress every ~0.1 s and drops the ones in between).
    proc, url = start_space(workdir, extra=["--call-log", str(log), "--delay", "0.6"], timeout_s=300)
    yield url, log
    proc.stop()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "meadow.jpg"
    meadow(800, 600, seed=5).save(path, quality=90)
    return path


def call(client: Client, image: Path, **params: Any) -> Path:
    args: dict[str, Any] = {"prompt": GHIBLI_PROMPT, "height": 512, "width": 512, "seed": 42}
    args.update(params)
    job = client.submit(
        spatial_img=handle_file(str(image)),
        control_type="Ghibli",
        use_zero_init=False,
        zero_steps=1,
        api_name=ENDPOINT,
        **args,
    )
    return Path(job.result(timeout=180))


def log_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.system
def test_view_api_shows_the_spaces_exact_eight_parameters(space: tuple[str, Path]) -> None:
    client = Client(space[0], verbose=False, token=False)
    info = client.view_api(print_info=False, return_format="dict")
    assert list(info["named_endpoints"]) == [ENDPOINT]
    endpoint = info["named_endpoints"][ENDPOINT]
    shape = [
        (p["parameter_name"], p["component"], p["python_type"]["type"], p["parameter_has_default"])
        for p in endpoint["parameters"]
    ]
    assert shape == [
        ("prompt", "Textbox", "str", True),
        ("spatial_img", "Image", "filepath", False),
        ("height", "Slider", "float", True),
        ("width", "Slider", "float", True),
        ("seed", "Number", "float", True),
        ("control_type", "Dropdown", "Literal['Ghibli']", True),
        ("use_zero_init", "Checkbox", "bool", True),
        ("zero_steps", "Number", "float", True),
    ]
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in endpoint["parameters"]}
    assert defaults["prompt"] == GHIBLI_PROMPT
    assert defaults["height"] == defaults["width"] == 768
    assert defaults["seed"] == 42
    assert defaults["control_type"] == "Ghibli"
    assert defaults["use_zero_init"] is False
    assert defaults["zero_steps"] == 1
    assert [r["component"] for r in endpoint["returns"]] == ["Image"]
    # Slider ranges as on the Space: 256..1024 in steps of 64.
    sliders = [c for c in client.config["components"] if c.get("type") == "slider"]
    assert {(c["props"]["minimum"], c["props"]["maximum"], c["props"]["step"]) for c in sliders} == {
        (256, 1024, 64)
    }


@pytest.mark.system
def test_a_call_gets_the_picture_and_named_progress_steps(space: tuple[str, Path], photo: Path) -> None:
    client = Client(space[0], verbose=False, token=False)
    job = client.submit(
        prompt=GHIBLI_PROMPT,
        spatial_img=handle_file(str(photo)),
        height=384,
        width=640,
        seed=11,
        control_type="Ghibli",
        use_zero_init=False,
        zero_steps=1,
        api_name=ENDPOINT,
    )

    async def updates() -> list[Any]:
        seen = []
        async for update in job:  # every update the server sent, queued by the client
            seen.append(update)
        return seen

    seen = asyncio.run(asyncio.wait_for(updates(), timeout=180))
    units = [
        unit for u in seen if getattr(u, "code", None) == Status.PROGRESS for unit in u.progress_data or []
    ]
    steps = [unit.desc for unit in units]
    assert WAIT_STEP in steps, steps
    assert set(steps) <= {WAIT_STEP, *STEPS}, steps
    painting = [STEPS.index(step) for step in steps if step in STEPS]
    assert painting == sorted(painting)  # named steps arrive in order
    assert all(unit.length and unit.index is not None for unit in units)
    assert any(getattr(u, "code", None) == Status.FINISHED and u.success for u in seen)
    out = Image.open(job.result(timeout=10))
    assert out.size == (640, 384)
    assert out.format == "WEBP"


@pytest.mark.system
def test_same_seed_same_picture_other_seed_other_picture(space: tuple[str, Path], photo: Path) -> None:
    client = Client(space[0], verbose=False, token=False)
    first, again, other = (call(client, photo, seed=s) for s in (5, 5, 6))
    assert first.read_bytes() == again.read_bytes()
    # Each call answers with its own file: concurrent identical outputs never share one.
    assert first.name != again.name
    a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in (first, other))
    assert np.abs(a - b).mean() > 0.5
    plain = np.asarray(Image.open(photo).convert("RGB").resize((512, 512)), dtype=np.float32)
    # Not the input, nor a plain resize of it (the photo is 4:3, so allow for the cover-crop).
    plain_crop = np.asarray(
        Image.open(photo).convert("RGB").crop((100, 0, 700, 600)).resize((512, 512)), dtype=np.float32
    )
    assert min(np.abs(a - plain).mean(), np.abs(a - plain_crop).mean()) > 8


@pytest.mark.system
@pytest.mark.parametrize(
    ("image", "size"),
    [
        (Image.new("RGB", (1, 1), (90, 140, 200)), (256, 256)),
        (Image.new("L", (640, 480), 128), (320, 256)),
        (Image.new("RGBA", (300, 300), (0, 0, 0, 0)), (256, 320)),
        (meadow(300, 200, seed=2).resize((4800, 3200)), (1024, 640)),  # 15 megapixels
    ],
    ids=["1x1", "grey", "transparent", "huge"],
)
def test_odd_uploads_are_painted_at_the_requested_size(
    space: tuple[str, Path], tmp_path: Path, image: Image.Image, size: tuple[int, int]
) -> None:
    path = tmp_path / ("upload.jpg" if image.width > 2000 else "upload.png")
    image.save(path)
    client = Client(space[0], verbose=False, token=False)
    out = Image.open(call(client, path, width=size[0], height=size[1], seed=3))
    assert out.size == size
    if image.mode == "RGBA":  # transparency becomes white paper, not black
        assert np.asarray(out.convert("L")).mean() > 180


@pytest.mark.system
def test_call_log_has_one_line_per_call_with_the_token_alias_only(
    space: tuple[str, Path], photo: Path
) -> None:
    url, log = space
    before = len(log_lines(log)) if log.exists() else 0
    call(Client(url, verbose=False, token=TOKEN), photo, seed=77, width=256, height=320)
    # The JS client sends `Authorization: Bearer ...`; that header is read too.
    call(
        Client(url, verbose=False, token=False, headers={"Authorization": "Bearer js-token"}), photo, seed=78
    )
    call(Client(url, verbose=False, token=False), photo, seed=79)
    wait_until(lambda: len(log_lines(log)) >= before + 3, "call log lines", timeout_s=30)
    lines = {line["seed"]: line for line in log_lines(log)[before:]}
    alias = hashlib.sha256(TOKEN.encode()).hexdigest()[:8]
    assert lines[77]["token"] == alias
    assert lines[78]["token"] == hashlib.sha256(b"js-token").hexdigest()[:8]
    assert lines[79]["token"] == "anonymous"
    first = lines[77]
    assert (first["width"], first["height"], first["outcome"], first["engine"]) == (256, 320, "ok", "ghibli")
    assert first["input_sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert first["start"] <= first["end"]
    assert first["session"]
    text = log.read_text()
    assert TOKEN not in text
    assert "js-token" not in text


# --- faults: small in-process servers, one per kind ----------------------------------------------


@pytest.fixture
def fault_space(tmp_path: Path) -> Iterator[Any]:
    """Start an in-process offline Space with given fault options; stops them all at the end."""
    from space.app import SpaceOptions, launch
    from space.faults import FaultPlan

    running: list[Any] = []

    def start(**plan: Any) -> tuple[str, Path]:
        log = tmp_path / f"calls-{len(running)}.jsonl"
        port = free_port()
        options = SpaceOptions(engine="fast", faults=FaultPlan(**plan), call_log=log)
        running.append(launch(options, "127.0.0.1", port, block=False))
        return f"http://127.0.0.1:{port}/", log

    yield start
    for demo in running:
        demo.close()


def test_quota_fault_has_the_zerogpu_title_text_and_retry_time(fault_space: Any, photo: Path) -> None:
    url, log = fault_space(kind="quota", first=1, retry_after_s=7)
    anonymous = Client(url, verbose=False, token=False)
    with pytest.raises(AppError) as caught:
        call(anonymous, photo, seed=1)
    assert caught.value.title == "ZeroGPU quota exceeded"
    assert str(caught.value) == (
        "You have exceeded your ZeroGPU quota (60s requested vs. 12s left). Try again in 0:00:07. "
        "Authenticate with a Hugging Face token for more quota - https://huggingface.co/settings/tokens"
    )
    assert call(anonymous, photo, seed=1).exists()  # only the first call failed
    assert [line["outcome"] for line in log_lines(log)] == ["quota", "ok"]


def test_quota_fault_for_a_token_names_the_free_quota(fault_space: Any, photo: Path) -> None:
    url, _ = fault_space(kind="quota", rate=1.0, retry_after_s=3725)
    with pytest.raises(AppError) as caught:
        call(Client(url, verbose=False, token=TOKEN), photo, seed=2)
    assert str(caught.value).startswith(
        "You have exceeded your free ZeroGPU quota (60s requested vs. 12s left). Try again in 1:02:05. "
        "Subscribe to Hugging Face PRO"
    )


def test_poison_seeds_always_fail_and_other_seeds_pass(fault_space: Any, photo: Path) -> None:
    url, log = fault_space(kind="worker_error", seeds=frozenset({13}))
    client = Client(url, verbose=False, token=False)
    for _ in range(2):
        with pytest.raises(AppError) as caught:
            call(client, photo, seed=13)
        assert (caught.value.title, str(caught.value)) == ("ZeroGPU worker error", "GPU task aborted")
    assert call(client, photo, seed=14).exists()
    assert [(line["seed"], line["outcome"]) for line in log_lines(log)] == [
        (13, "worker_error"),
        (13, "worker_error"),
        (14, "ok"),
    ]


@pytest.mark.parametrize(
    ("kind", "title", "text"),
    [
        (
            "quota_html",
            "ZeroGPU quota exceeded",
            "You have exceeded your GPU quota (60s requested vs. 12s left). <a ",
        ),
        ("no_gpu", "ZeroGPU queue timeout", "No GPU was available after 60s"),
    ],
)
def test_other_fault_kinds_use_the_real_titles(
    fault_space: Any, photo: Path, kind: str, title: str, text: str
) -> None:
    url, _ = fault_space(kind=kind, rate=1.0)
    with pytest.raises(AppError) as caught:
        call(Client(url, verbose=False, token=False), photo, seed=3)
    assert caught.value.title == title
    assert str(caught.value).startswith(text)
    if kind == "quota_html":
        assert "Try again" not in str(caught.value)  # the old runtime gave free users no retry time


def test_queue_full_is_a_503_at_join_time(fault_space: Any, photo: Path) -> None:
    url, log = fault_space(kind="queue_full", first=1)
    client = Client(url, verbose=False, token=False)
    with pytest.raises(QueueError, match="Queue is full"):
        call(client, photo, seed=4)
    assert call(client, photo, seed=4).exists()
    outcomes = [(line["outcome"], line["seed"]) for line in log_lines(log)]
    assert outcomes == [("queue_full", 4), ("ok", 4)]


def test_space_help_documents_the_fault_options() -> None:
    result = CliRunner().invoke(cli, ["space", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in ("--fault-kind", "--fault-rate", "--fault-first", "--fault-seeds", "--fault-retry-after"):
        assert option in result.output
    assert "--call-log" in result.output
    assert "queue_full" in result.output


@pytest.mark.system
def test_sizes_outside_the_sliders_are_refused(space: tuple[str, Path], photo: Path) -> None:
    client = Client(space[0], verbose=False, token=False)
    with pytest.raises(AppError, match="1088"):
        call(client, photo, width=1088)
    with pytest.raises(AppError, match="128"):
        call(client, photo, height=128)
