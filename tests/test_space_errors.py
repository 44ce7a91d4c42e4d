"""Every error class, produced by a real Gradio server (tests/apps/quota_space.py) where practical.

Each quota text variant of the ZeroGPU runtime (today's plain text, the HTML of spaces 0.34, older
wordings) reaches `classify` as the real AppError gradio_client raises; the few classes a local
server cannot produce (a paused Space, HTTP 5xx) are built from the real exception types.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import shutil
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client import utils as gc_utils

from consumers.errors import ERROR_CLASSES, ErrorKind, SpaceError, classify, parse_retry_after, plain_text
from consumers.result_check import check_result
from consumers.space_client import SpaceSession, SpaceUpdate, sweep_download_leftovers
from jobs.model import JobParams
from sandbox.pool import DecodePool, PoolLimits
from sandbox.probe import read_header
from tests.apps.runner import QuotaSpace, new_token
from tests.photos import encode, landscape
from tests.procs import ROOT, free_port


def generate(session: SpaceSession, image: bytes | Path, params: JobParams, **options: Any) -> bytes:
    """One call of the session from this synchronous test (consumers await `agenerate` themselves)."""
    result: bytes = anyio.run(partial(session.agenerate, image, params, **options))
    return result


@pytest.fixture
def space(quota_space: QuotaSpace) -> QuotaSpace:
    return quota_space


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(landscape(320, 240)))
    return path


def _raw_error(space: QuotaSpace, photo: Path, token: str | bool, **kwargs: object) -> BaseException:
    """The exception gradio_client itself raises for one call (nothing of ours in between)."""
    client = Client(space.url, token=token, verbose=False, download_files=str(photo.parent / "dl"))
    args: dict[str, object] = {
        "prompt": "p",
        "spatial_img": handle_file(str(photo)),
        "height": 256,
        "width": 320,
        "seed": 1,
        "control_type": "Ghibli",
        "use_zero_init": False,
        "zero_steps": 1,
        **kwargs,
    }
    try:
        client.submit(api_name="/single_condition_generate_image", **args).result(timeout=60)
    except Exception as exc:  # noqa: BLE001 - the point is to look at it
        return exc
    finally:
        client.close()
    raise AssertionError("the call succeeded")


QUOTA_VARIANTS = [
    # variant, retry text the server puts in, parsed seconds, requested seconds
    ("free", "0:12:34", 754.0, 60.0),
    ("anonymous", "0:00:07", 7.0, 60.0),
    ("pro", "1 day, 2:03:04", 93_784.0, 90.0),
    ("pro", "0:12:34.500000", 754.0, 60.0),
    ("html_anonymous", None, None, 60.0),
    ("html_free", None, None, 120.0),
    ("html_pro", "0:12:34", 754.0, 60.0),
    ("old_retry", "0:09:48", 588.0, 60.0),
    ("old_days", None, 2 * 86_400.0, 300.0),
    ("prefixed", "0:00:56", 56.0, 60.0),
    ("runs_limit", None, None, None),
    ("gpu_limit", None, None, None),
]


@pytest.mark.system
@pytest.mark.parametrize(("variant", "retry", "parsed", "requested"), QUOTA_VARIANTS)
def test_every_zerogpu_quota_text_is_quota_with_its_retry_time(
    space: QuotaSpace,
    photo: Path,
    variant: str,
    retry: str | None,
    parsed: float | None,
    requested: float | None,
) -> None:
    token = new_token()
    space.set_token(token, allowed=0, quota=variant, retry=retry or "", requested=requested or 60)
    raw = _raw_error(space, photo, token)
    assert type(raw).__name__ == "AppError"
    error = classify(raw)
    assert error.kind is ErrorKind.QUOTA
    assert error.code == "quota_exceeded"
    assert error.retry_after_s == parsed
    assert error.requested_s == requested
    assert "<a" not in error.message
    assert "upstream Gradio app" not in error.message
    assert token not in error.message


@pytest.mark.system
def test_the_retry_time_follows_the_tokens_window(space: QuotaSpace, photo: Path) -> None:
    token = new_token()
    space.set_token(token, allowed=1, window_s=300, quota="free")
    session = SpaceSession(space.url, token, download_dir=photo.parent / "dl")
    generate(
        session, photo, JobParams(width=320, height=256), timeout_s=60, on_update=print, should_stop=bool
    )
    with pytest.raises(SpaceError) as caught:
        generate(
            session, photo, JobParams(width=320, height=256), timeout_s=60, on_update=print, should_stop=bool
        )
    assert caught.value.kind is ErrorKind.QUOTA
    assert caught.value.retry_after_s is not None
    assert 280 <= caught.value.retry_after_s <= 300


@pytest.mark.system
@pytest.mark.parametrize(
    ("mode", "kind", "code"),
    [
        ("no_gpu", ErrorKind.TRANSIENT, "no_gpu"),
        ("client_no_gpu", ErrorKind.TRANSIENT, "no_gpu"),
        ("worker_error", ErrorKind.TRANSIENT, "space_worker_error"),
        ("aborted", ErrorKind.TRANSIENT, "space_worker_error"),
        ("crash", ErrorKind.TRANSIENT, "space_error"),
        ("illegal_duration", ErrorKind.BROKEN, "space_misconfigured"),
        ("credits", ErrorKind.QUOTA, "quota_credits_pending"),
    ],
)
def test_other_zerogpu_errors(space: QuotaSpace, photo: Path, mode: str, kind: ErrorKind, code: str) -> None:
    token = new_token()
    space.set_token(token, mode=mode)
    error = classify(_raw_error(space, photo, token))
    assert (error.kind, error.code) == (kind, code)
    if code == "quota_credits_pending":
        assert error.retry_after_s == 60


@pytest.mark.system
def test_out_of_range_values_are_rejected_for_good(space: QuotaSpace, photo: Path) -> None:
    error = classify(_raw_error(space, photo, False, width=2048))
    assert (error.kind, error.code) == (ErrorKind.PERMANENT, "space_rejected")
    assert "1024" in error.message


@pytest.mark.system
def test_unknown_arguments_are_a_permanent_signature_error(space: QuotaSpace, photo: Path) -> None:
    error = classify(_raw_error(space, photo, False, strength=0.5))
    assert isinstance(error.__cause__ or error, SpaceError)
    assert (error.kind, error.code) == (ErrorKind.PERMANENT, "bad_arguments")


def test_a_refused_connection_is_transient(tmp_path: Path) -> None:
    session = SpaceSession(f"http://127.0.0.1:{free_port()}/", None, download_dir=tmp_path)
    with pytest.raises(SpaceError) as caught:
        session.connect()
    assert (caught.value.kind, caught.value.code) == (ErrorKind.TRANSIENT, "network")


@pytest.mark.system
def test_a_missing_endpoint_is_broken_with_a_clear_message(space: QuotaSpace, tmp_path: Path) -> None:
    session = SpaceSession(space.url + "other/", None, download_dir=tmp_path)
    with pytest.raises(SpaceError) as caught:
        session.connect()
    assert (caught.value.kind, caught.value.code) == (ErrorKind.BROKEN, "endpoint_missing")
    assert "/single_condition_generate_image" in caught.value.message
    assert "/generate" in caught.value.message  # what the app has instead


@pytest.mark.system
def test_the_older_six_parameter_app_works(space: QuotaSpace, photo: Path) -> None:
    session = SpaceSession(space.url + "v6/", None, download_dir=photo.parent / "dl")
    data = generate(
        session, photo, JobParams(width=320, height=256), timeout_s=60, on_update=print, should_stop=bool
    )
    assert session.parameters == ("prompt", "spatial_img", "height", "width", "seed", "control_type")
    assert read_header(data).media_type.startswith("image/")
    assert len(data) > 100


@pytest.mark.system
def test_a_full_queue_is_transient(space: QuotaSpace, photo: Path) -> None:
    token = new_token()
    space.set_token(token, mode="slow", sleep_s=3)
    session = SpaceSession(space.url + "tiny/", token, download_dir=photo.parent / "dl")
    session.connect()
    errors: list[SpaceError] = []

    def call(reached: threading.Event, phase: str) -> None:
        def on_update(update: SpaceUpdate) -> None:
            if update.phase != "in_queue" or phase == "in_queue":
                reached.set()

        try:
            generate(
                session,
                photo,
                JobParams(width=320, height=256),
                timeout_s=60,
                on_update=on_update,
                should_stop=bool,
            )
        except SpaceError as exc:
            errors.append(exc)
        reached.set()  # refused: nothing more will come

    # One call at a time: the first runs, the second waits in the one-place queue, the third is
    # refused. Each joins only once the one before holds its place, so the order is certain.
    threads = []
    for phase in ("processing", "in_queue", "refused"):
        reached = threading.Event()
        threads.append(threading.Thread(target=call, args=(reached, phase)))
        threads[-1].start()
        assert reached.wait(30), f"the call meant to be {phase} never got there"
        if phase == "in_queue":
            time.sleep(1)  # its join is answered (the first call still has 2 s to run)
    for thread in threads:
        thread.join(90)
    assert [(e.kind, e.code) for e in errors] == [(ErrorKind.TRANSIENT, "space_queue_full")]


@pytest.mark.system
def test_the_call_deadline_is_a_transient_timeout(space: QuotaSpace, photo: Path) -> None:
    token = new_token()
    space.set_token(token, mode="slow", sleep_s=5)
    session = SpaceSession(space.url, token, download_dir=photo.parent / "dl")
    with pytest.raises(SpaceError) as caught:
        generate(
            session, photo, JobParams(width=320, height=256), timeout_s=1.5, on_update=print, should_stop=bool
        )
    assert (caught.value.kind, caught.value.code) == (ErrorKind.TRANSIENT, "timeout")


@pytest.mark.system
def test_cancelling_the_calling_task_abandons_the_call_without_an_error(
    space: QuotaSpace, photo: Path
) -> None:
    """The Job is watched from the event loop: cancelling the task that awaits it must end the wait at
    once, as a cancellation (not a SpaceError), and ask gradio_client to cancel the Space's job."""
    token = new_token()
    space.set_token(token, mode="slow", sleep_s=5)
    session = SpaceSession(space.url, token, download_dir=photo.parent / "dl")
    session.connect()

    async def cancelled_after(seconds: float) -> bool:
        with anyio.move_on_after(seconds) as scope:
            await session.agenerate(
                photo, JobParams(width=320, height=256), timeout_s=60, on_update=print, should_stop=bool
            )
        return scope.cancelled_caught

    started = time.monotonic()
    assert anyio.run(cancelled_after, 1.0)
    assert time.monotonic() - started < 2.5  # not the 5 s the call would have taken
    # The session is still usable for the next call.
    space.set_token(token)
    data = generate(
        session, photo, JobParams(width=320, height=256), timeout_s=60, on_update=print, should_stop=bool
    )
    assert read_header(data).width == 320


@pytest.mark.system
@pytest.mark.parametrize(
    ("mode", "code"), [("wrong_size", "result_wrong_size"), ("echo_input", "result_is_input")]
)
def test_a_picture_that_is_not_the_requested_one_is_an_error(
    space: QuotaSpace, tmp_path: Path, mode: str, code: str
) -> None:
    photo = tmp_path / "photo.png"  # the requested size, so echoing it back is a plausible "result"
    photo.write_bytes(encode(landscape(320, 256), "PNG"))
    token = new_token()
    space.set_token(token, mode=mode)
    session = SpaceSession(space.url, token, download_dir=tmp_path / "dl")
    params = JobParams(width=320, height=256)
    data = generate(session, photo, params, timeout_s=60, on_update=print, should_stop=bool)
    assert not any((tmp_path / "dl").rglob("*.*")), "the download was left behind"

    async def checked() -> None:
        async with DecodePool(PoolLimits(workers=1)) as decoder:
            await check_result(decoder, data, params, photo.read_bytes())

    with pytest.raises(SpaceError) as caught:
        anyio.run(checked)
    assert (caught.value.kind, caught.value.code) == (ErrorKind.PERMANENT, code)


@pytest.mark.system
def test_progress_units_become_phase_progress_and_eta(space: QuotaSpace, photo: Path) -> None:
    token = new_token()
    space.set_token(token, delay_s=2.0)
    updates: list[SpaceUpdate] = []
    session = SpaceSession(space.url, token, download_dir=photo.parent / "dl")
    generate(
        session,
        photo,
        JobParams(width=320, height=256),
        timeout_s=60,
        on_update=updates.append,
        should_stop=bool,
    )
    denoising = [u for u in updates if u.phase == "denoising"]
    assert denoising, updates
    assert all(u.progress is not None and 0 <= u.progress <= 1 for u in denoising)
    assert any(u.eta_seconds is not None and u.eta_seconds > 0 for u in denoising)


# --- classes a local server cannot produce, from the real exception types ---------------------------


def _status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://example.hf.space/gradio_api/queue/join")
    return httpx.HTTPStatusError("boom", request=request, response=httpx.Response(status, request=request))


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (ValueError("The current space is in the invalid state: PAUSED. Please contact the owner."),
         ErrorKind.BROKEN, "space_unavailable"),
        (ValueError("Could not find Space: someone/gone. If it is a private Space, please provide a token."),
         ErrorKind.BROKEN, "space_unavailable"),
        (ValueError("Cannot find a function with `api_name`: /single_condition_generate_image."),
         ErrorKind.BROKEN, "endpoint_missing"),
        (ValueError("Server stopped."), ErrorKind.TRANSIENT, "space_restarted"),
        (gc_utils.QueueError("Queue is full! Please try again."), ErrorKind.TRANSIENT, "space_queue_full"),
        (gc_utils.TooManyRequestsError("Too many requests to the API"), ErrorKind.TRANSIENT, "rate_limited"),
        (_status_error(429), ErrorKind.TRANSIENT, "rate_limited"),
        (_status_error(503), ErrorKind.TRANSIENT, "http_503"),
        (_status_error(401), ErrorKind.BROKEN, "space_auth"),
        (_status_error(404), ErrorKind.BROKEN, "space_unavailable"),
        (_status_error(413), ErrorKind.PERMANENT, "space_rejected"),
        (httpx.ReadTimeout("read timed out"), ErrorKind.TRANSIENT, "timeout"),
        (TimeoutError(), ErrorKind.TRANSIENT, "timeout"),
        (concurrent.futures.CancelledError(), ErrorKind.TRANSIENT, "stream_lost"),
        (KeyError("Could not find 'data' key in response."), ErrorKind.TRANSIENT, "stream_lost"),
    ],
)  # fmt: skip
def test_classes_of_client_side_failures(exc: BaseException, kind: ErrorKind, code: str) -> None:
    error = classify(exc)
    assert (error.kind, error.code) == (kind, code)


def test_retry_time_texts() -> None:
    assert parse_retry_after("Try again in 0:12:34. Subscribe") == 754
    assert parse_retry_after("Please retry in 0:00:56") == 56
    assert parse_retry_after("try again in 1 day, 0:00:01") == 86_401
    assert parse_retry_after("try again in 3 days, 1:00:00.250000") == 3 * 86_400 + 3600
    assert parse_retry_after("Signup on Huggingface or try again in 2 days.") == 172_800
    assert parse_retry_after("Create a free account to get more daily usage quota.") is None
    assert plain_text('a <a href="x">link</a> &amp; more') == "a link & more"


def test_the_docs_list_every_error_code() -> None:
    readme = (ROOT / "docs" / "tokens.md").read_text()
    for row in ERROR_CLASSES:
        for code in row.codes.split(", "):
            assert f"`{code}`" in readme, code


@pytest.mark.system
def test_downloads_leave_nothing_behind(space: QuotaSpace, photo: Path, tmp_path: Path) -> None:
    session = SpaceSession(space.url, None, download_dir=tmp_path / "dl")
    generate(
        session, photo, JobParams(width=320, height=256), timeout_s=60, on_update=print, should_stop=bool
    )
    assert not any((tmp_path / "dl").rglob("*.*"))
    # gradio_client also leaves an empty <tmp>/<40 hex> directory per download; old ones are swept.
    root = Path(tempfile.gettempdir())
    old_empty, new_empty, old_full = (root / secrets.token_hex(20) for _ in range(3))
    for folder in (old_empty, new_empty, old_full):
        folder.mkdir()
    (old_full / "image.webp").write_bytes(b"x")
    for folder in (old_empty, old_full):
        os.utime(folder, (time.time() - 3600, time.time() - 3600))
    try:
        assert sweep_download_leftovers(min_age_s=600) >= 1
        assert not old_empty.exists()
        assert new_empty.exists()  # may be a download in progress
        assert old_full.exists()  # never a directory with something in it
    finally:
        shutil.rmtree(new_empty, ignore_errors=True)
        shutil.rmtree(old_full, ignore_errors=True)
