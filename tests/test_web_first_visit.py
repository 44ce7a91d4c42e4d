"""A newcomer's first visit to the page, at 1280x800 and on a 390x844 phone, against the real stack
(tests/web_page_kit.py): the demo engine named, the button in the first screen, an example photo in
one click, the stage brought into view on submit and on finish, errors that go away with a new
choice, files sniffed by their first bytes, and an outage shown as an outage that the job survives.

Screenshots land in test-artifacts/web/. The desktop run also keeps the README's picture of the page
with a result: set GHIBLI_UPDATE_DOCS_SCREENSHOT=1 to write it to docs/screenshot.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.model import Status
from tests.photos import encode, landscape
from tests.procs import ROOT, RedisServer
from tests.web_page_kit import ARTIFACTS, JOB_TIMEOUT_MS, choose_photo, job_id_of, needs_chromium, shot
from tests.web_stack import FAIL_SEED, Ingest, ScriptedConsumer, stack_env, start_ingest

pytest_plugins = ["tests.web_page_kit"]
# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, needs_chromium]

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"

# Where an element is on the screen, in viewport coordinates.
RECT_JS = """sel => {
  const r = document.querySelector(sel).getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, height: innerHeight, scrollY: window.scrollY};
}"""
INTERSECTS_JS = """sel => {
  const r = document.querySelector(sel).getBoundingClientRect();
  return r.height > 0 && r.bottom > 0 && r.top < innerHeight;
}"""


def rect(page: Any, selector: str) -> dict[str, float]:
    found: dict[str, float] = page.evaluate(RECT_JS, selector)
    return found


def fully_in_view(page: Any, selector: str) -> bool:
    r = rect(page, selector)
    return r["top"] >= 0 and r["bottom"] <= r["height"]


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_first_visit_paints_an_example_with_everything_in_view(
    open_page: Any, live: Ingest, size: str
) -> None:
    page, _console = open_page(live.url + "/", **SIZES[size])
    # The demo engine says what it is, with the way to the real model folded under it.
    page.wait_for_selector("#engine-note:not([hidden])")
    assert page.inner_text("#engine-note summary").startswith("Demo engine on this machine's CPU")
    assert "connect the real model" in page.inner_text("#engine-note summary")
    # The call to action is in the first screen, unscrolled.
    assert page.evaluate("window.scrollY") == 0
    assert fully_in_view(page, "#go"), rect(page, "#go")
    shot(page, f"20-first-screen-{size}", full_page=False)
    page.click("#engine-note summary")
    assert page.is_visible(".engine-help pre")
    assert "GHIBLI_SPACE=jamesliu1217/EasyControl_Ghibli" in page.inner_text(".engine-help pre")
    shot(page, f"21-connect-the-model-{size}", full_page=False)
    page.click("#engine-note summary")

    # An example photo in one click.
    page.click(".example[data-name='coffee.jpg']")
    page.wait_for_selector("#drop[data-state='photo']")
    page.wait_for_function("() => document.querySelector('#preview').naturalWidth === 600")
    assert page.inner_text("#photo-facts").startswith("coffee.jpg · 600 \u00d7 400")
    if size == "desktop":
        assert fully_in_view(page, "#go"), rect(page, "#go")  # still, with the preview shown

    # Clicked at the bottom of the screen, as someone who scrolled to it: the progress card comes
    # into view and takes the focus.
    page.evaluate("document.querySelector('#go').scrollIntoView({block: 'end'})")
    page.click("#go")
    page.wait_for_selector("#stage[data-view='progress']")
    page.wait_for_function(INTERSECTS_JS, arg=".view-progress")
    page.wait_for_function(INTERSECTS_JS, arg="#status-text")
    assert page.evaluate("document.activeElement.id") == "stage-title"
    shot(page, f"22-progress-{size}", full_page=False)

    # Finished: the result is in view, and says which engine painted it.
    page.wait_for_selector("#stage[data-view='result']", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#after').naturalWidth > 0")
    page.wait_for_function(INTERSECTS_JS, arg="#compare")
    page.wait_for_timeout(600)  # the smooth scroll ends
    where = rect(page, "#compare")
    assert where["top"] >= 0, where  # its top edge is on the screen, not above it
    assert where["top"] < where["height"] * 0.5, where
    assert "painted by the demo engine" in page.inner_text("#result-meta")
    shot(page, f"23-result-{size}", full_page=False)
    if size == "desktop":
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, "docs-screenshot", full_page=False)
        if os.environ.get("GHIBLI_UPDATE_DOCS_SCREENSHOT"):
            shutil.copyfile(ARTIFACTS / "docs-screenshot.png", DOCS_SCREENSHOT)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_files_are_sniffed_and_a_new_choice_clears_the_errors(
    open_page: Any, held: tuple[Ingest, ScriptedConsumer], tmp_path: Path, size: str
) -> None:
    ingest, consumer = held
    page, _console = open_page(ingest.url + "/", **SIZES[size])
    posted: list[str] = []
    page.on("request", lambda request: posted.append(request.url) if request.method == "POST" else None)

    # Text named .jpg: refused from its first bytes, before any upload.
    notes = tmp_path / "notes.jpg"
    notes.write_text("Shopping list: eggs, milk, a photo of the cat\n" * 10)
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#photo-error:not([hidden])")
    assert page.inner_text("#photo-error") == (
        "“notes.jpg” is not a photo this service can read: it is not a JPEG, PNG, WebP, GIF or HEIC file, "
        "whatever its name says."
    )
    assert page.get_attribute("#drop", "data-state") == "empty"
    page.click("#go")
    assert page.inner_text("#photo-error") == "Choose a photo first."
    shot(page, f"24-not-a-photo-{size}", full_page=False)
    assert posted == []

    # A PNG is a PNG whatever its name; the error goes with the new choice.
    png = tmp_path / "really-a-png.jpg"
    png.write_bytes(encode(landscape(320, 240, seed=8), "PNG"))
    choose_photo(page, png)
    assert page.is_hidden("#photo-error")

    # A failed job's error goes too when another photo is chosen.
    page.click("#go")
    page.wait_for_selector("#stage[data-view='progress']")
    claim = consumer.take(job_id_of(page))
    consumer.finish(claim, Status.FAILED, error_code="space_rejected", error_message="no content")
    page.wait_for_selector("#stage[data-view='error']")
    page.click("#change")  # the file picker: choose another photo
    page.set_input_files("#file", str(png))
    page.wait_for_selector("#stage[data-view='idle']")
    assert page.is_hidden("#error-text")
    assert page.evaluate("location.hash") == ""


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_an_outage_is_shown_as_one_and_the_job_resumes(
    open_page: Any, redis: RedisServer, space: str, workdir: Path, photo_file: Path, size: str
) -> None:
    prefix = f"{{outage-{size}}}:"
    env = stack_env(redis, space, prefix)
    ingest = start_ingest(env, workdir, f"outage-{size}")
    consumer = ScriptedConsumer(redis.url, prefix)
    again: Ingest | None = None
    try:
        page, console = open_page(ingest.url + "/", **SIZES[size])
        # While ingest is down the browser logs its refused connections: that is the scenario.
        console.expect(r"ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_INCOMPLETE")
        choose_photo(page, photo_file)
        page.click("#more > summary")
        page.check("#sizes input[value='512']")
        page.click("#go")
        page.wait_for_selector("#stage[data-view='progress']")
        job_id = job_id_of(page)
        claim = consumer.take(job_id)
        consumer.update(claim, Status.RUNNING, progress=0.3, phase="painting")
        page.wait_for_function("() => document.querySelector('#f-percent').textContent === '30%'")

        ingest.proc.stop()  # the server goes away in the middle of the job
        page.wait_for_function(
            "() => document.querySelector('#status-text').textContent.startsWith('Connection lost')",
            timeout=30_000,
        )
        assert page.inner_text("#status-text") == "Connection lost: the server cannot be reached"
        assert page.is_visible("#outage-note")
        assert "picks the job up again" in page.inner_text("#outage-note")
        assert page.get_attribute("#bar", "data-paused") == "true"
        page.wait_for_timeout(2500)  # no estimate grows while nothing is known
        assert page.inner_text("#f-eta") == "—"
        shot(page, f"25-outage-{size}", full_page=False)

        # Work goes on behind the dead server; when it is back the page picks the job up by itself.
        consumer.update(claim, Status.RUNNING, progress=0.6, phase="painting")
        again = start_ingest(env, workdir, f"outage-again-{size}", port=int(ingest.url.rsplit(":", 1)[1]))
        page.wait_for_function(
            "() => document.querySelector('#f-percent').textContent === '60%'", timeout=60_000
        )
        page.wait_for_function("() => document.querySelector('#outage-note').hidden")
        assert page.inner_text("#status-text") == "Painting your picture…"
        shot(page, f"26-resumed-{size}", full_page=False)
        consumer.succeed(claim, encode(landscape(512, 384, seed=2), "PNG"))
        page.wait_for_selector("#stage[data-view='result']", timeout=30_000)
    finally:
        ingest.proc.stop()
        if again is not None:
            again.proc.stop()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_bad_seed_opens_more_options(open_page: Any, live: Ingest, photo_file: Path, size: str) -> None:
    page, _console = open_page(live.url + "/", **SIZES[size])
    choose_photo(page, photo_file)
    page.click("#more > summary")
    page.fill("#seed", str(FAIL_SEED) + "x")
    page.click("#lock")
    page.click("#more > summary")  # folded again
    page.click("#go")
    assert page.get_attribute("#more", "open") is not None
    assert page.evaluate("document.activeElement.id") == "seed"
    assert page.is_visible("#seed-error")
