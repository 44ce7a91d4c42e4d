"""The web page in Debian's Chromium (Playwright, headless) against the real stack.

Every state the page can show is driven for real: uploads go through `ghibli ingest`, jobs through
`ghibli consume` and the offline Space; a job that must stay queued or wait for GPU quota lives
under a key prefix without consumers and is moved by the real job-store scripts. A screenshot of
each state lands in test-artifacts/web/ (look at them), and no test may leave a console error.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from ingest.page import STATIC_DIR
from jobs.model import Status
from jobs.store import now_ms
from tests.procs import RedisServer
from tests.web_page_kit import JOB_TIMEOUT_MS, choose_photo, job_id_of, needs_chromium, shot
from tests.web_stack import FAIL_SEED, HELD_PREFIX, Ingest, ScriptedConsumer, stack_env, start_ingest

# The stack, the browser and open_page (each module gets its own stack: module scope).
pytest_plugins = ["tests.web_page_kit"]

TIMES = "\u00d7"  # the multiplication sign the page writes sizes with
DEFAULT_PROMPT = "Ghibli Studio style, Charming hand-drawn anime-style illustration"
# Every file the page can load, examples included.
STATIC_FILES = sorted(
    path.relative_to(STATIC_DIR).as_posix() for path in STATIC_DIR.rglob("*") if path.is_file()
)

# System tier: starts processes beyond redis-server (docs/tests.md).
pytestmark = [pytest.mark.system, needs_chromium]


# ---------------------------------------------------------------------------------------------
# Records what the progress view shows, on every change (sampling from Python would miss states
# that last less than a round trip on a busy machine).
TRAIL_JS = """() => {
  window.trail = {percents: [], places: [], lines: []};
  const view = document.querySelector('.view-progress');
  const percent = document.querySelector('#f-percent');
  const wrap = document.querySelector('#f-queue-wrap');
  const place = document.querySelector('#f-queue');
  const line = document.querySelector('#status-text');
  const record = () => {
    const p = parseInt(percent.textContent, 10);
    if (window.trail.percents.at(-1) !== p) window.trail.percents.push(p);
    if (!wrap.hidden && window.trail.places.at(-1) !== place.textContent) {
      window.trail.places.push(place.textContent);
    }
    if (window.trail.lines.at(-1) !== line.textContent) window.trail.lines.push(line.textContent);
  };
  new MutationObserver(record).observe(view, {subtree: true, childList: true, characterData: true,
                                              attributes: true});
}"""


# ---------------------------------------------------------------------------------------------
# the happy path: upload, live progress, result, slider, downloads, history, link, regenerate


def test_photo_to_picture_with_live_progress_downloads_history_and_regenerate(
    open_page: Any, live: Ingest, photo_file: Path, tmp_path: Path
) -> None:
    page, _console = open_page(live.url + "/")
    assert page.title() == "Ghibli pictures"
    assert page.input_value("#prompt") == DEFAULT_PROMPT
    shot(page, "01-idle-light")

    choose_photo(page, photo_file)
    assert f"800 {TIMES} 600" in page.inner_text("#photo-facts")
    # Size and seed are folded under "More options", whose summary says what they are.
    assert page.is_hidden("#sizes")
    assert page.inner_text("#more-summary") == f"Medium 768 {TIMES} 576 · new seed each time"
    page.click("#more > summary")
    # Size presets keep the 4:3 shape, snapped to 64.
    assert page.inner_text("#sizes .dims[data-long='768']") == f"768 {TIMES} 576"
    assert page.inner_text("#sizes .dims[data-long='512']") == f"512 {TIMES} 384"
    page.check("#sizes input[value='512']")
    assert page.inner_text("#more-summary").startswith(f"Small 512 {TIMES} 384")
    page.get_by_role("button", name="Rainy evening").click()
    rainy = page.input_value("#prompt")
    assert rainy.startswith("Ghibli Studio style, quiet rainy evening")
    assert page.get_attribute("#presets .chip[data-key='preset.rain']", "aria-pressed") == "true"

    # Two other jobs keep the Space busy (it paints one at a time, the consumer runs two calls at
    # once), so ours waits in the Space's queue for at least one whole painting.
    image = photo_file.read_bytes()
    others = [
        httpx.post(f"{live.url}/v1/jobs", files={"image": image}, data={"seed": str(seed)}).json()["id"]
        for seed in (1, 2)
    ]
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while not any(httpx.get(f"{live.url}/v1/jobs/{other}").json()["progress"] > 0 for other in others):
        assert time.monotonic() < deadline, "the other jobs never started painting"
        time.sleep(0.05)

    # Every state the page renders is recorded, however briefly it shows.
    page.evaluate(TRAIL_JS)
    page.get_by_role("button", name="Paint it").click()
    page.wait_for_selector("#stage[data-view='progress']")
    first_id = job_id_of(page)
    page.wait_for_function("() => window.trail.places.length > 0", timeout=JOB_TIMEOUT_MS)
    shot(page, "02-in-the-space-queue", settle_ms=0)
    page.wait_for_function("() => window.trail.percents.some(p => p > 0 && p < 100)", timeout=JOB_TIMEOUT_MS)
    assert page.inner_text("#f-phase") != "—"
    assert re.fullmatch(r"\d+:\d\d", page.inner_text("#f-elapsed"))
    shot(page, "03-progress", settle_ms=0)
    page.wait_for_selector("#stage[data-view='result']", timeout=JOB_TIMEOUT_MS)
    trail = page.evaluate("() => window.trail")
    seen, places, lines = trail["percents"], trail["places"], trail["lines"]
    assert any(0 < v < 100 for v in seen), f"no intermediate progress seen: {sorted(set(seen))}"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert re.fullmatch(r"#1 of \d+", places[0]), places
    assert "In line at the painting service" in lines
    assert "Painting your picture…" in lines

    # The result: the painted picture behind the original, with a slider between them.
    page.wait_for_function("() => document.querySelector('#after').naturalWidth > 0")
    assert page.evaluate("document.querySelector('#after').naturalWidth") == 512
    assert page.evaluate("document.querySelector('#after').naturalHeight") == 384
    assert page.get_attribute("#compare", "data-mode") == "compare"
    page.focus("#compare-range")
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#compare')).getPropertyValue('--pos')")
        == "45%"
    )
    assert "seed" in page.inner_text("#result-meta")
    shot(page, "04-result")

    job = httpx.get(f"{live.url}/v1/jobs/{first_id}").json()
    assert job["status"] == "succeeded"
    assert job["params"]["prompt"] == rainy
    assert (job["params"]["width"], job["params"]["height"]) == (512, 384)
    assert str(job["params"]["seed"]) == page.input_value("#seed")

    # Downloads in the three formats, converted by the server.
    for fmt, magic in (("webp", b"RIFF"), ("png", b"\x89PNG"), ("jpeg", b"\xff\xd8\xff")):
        with page.expect_download() as info:
            page.click(f".fmt[data-fmt='{fmt}']")
        download = info.value
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        data = target.read_bytes()
        assert data.startswith(magic), fmt
        assert target.suffix == (".jpg" if fmt == "jpeg" else f".{fmt}")
        assert Image.open(io.BytesIO(data)).size == (512, 384)

    # Copy link: a page link with the id in the fragment.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click(".view-result .copy-link")
    page.wait_for_selector("#toast.show")
    assert page.evaluate("navigator.clipboard.readText()") == f"{live.url}/#job={first_id}"

    # History survives a reload and reopens with the original for comparison.
    assert page.locator(".history-item").count() == 1
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    page.wait_for_selector("#stage[data-view='result']")  # the #job= link reopens it
    page.wait_for_selector(".history-item")
    assert page.locator(".history-item").count() == 1
    assert page.get_attribute("#compare", "data-mode") == "compare"

    # The link opened elsewhere (no history there): the picture, without the original.
    other, _ = open_page(f"{live.url}/#job={first_id}")
    other.wait_for_selector("#stage[data-view='result']")
    other.wait_for_function("() => document.querySelector('#after').naturalWidth > 0")
    assert other.get_attribute("#compare", "data-mode") == "single"
    assert other.is_visible("#no-original")

    # Regenerate: same photo and settings, a new seed, a new job.
    page.click("#regenerate")
    page.wait_for_selector("#stage[data-view='progress']")
    page.wait_for_function(f"() => location.hash !== '#job={first_id}'")
    second_id = job_id_of(page)
    page.wait_for_selector("#stage[data-view='result']", timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("() => document.querySelectorAll('.history-item').length === 2")
    second = httpx.get(f"{live.url}/v1/jobs/{second_id}").json()
    assert second["status"] == "succeeded"
    assert second["params"]["seed"] != job["params"]["seed"]
    assert second["params"]["prompt"] == rainy
    assert (second["params"]["width"], second["params"]["height"]) == (512, 384)
    shot(page, "05-regenerated-with-history")

    # Delete from history: gone here and erased on the server.
    page.click(f".history-item[data-id='{first_id}'] .history-delete")
    page.wait_for_function("() => document.querySelectorAll('.history-item').length === 1")
    deadline = time.monotonic() + 10
    while httpx.get(f"{live.url}/v1/jobs/{first_id}").status_code != 404:
        assert time.monotonic() < deadline, "the deleted job is still on the server"
        time.sleep(0.1)


def test_failed_job_is_explained_in_plain_words_and_can_be_retried(
    open_page: Any, live: Ingest, photo_file: Path
) -> None:
    page, _console = open_page(live.url + "/")
    choose_photo(page, photo_file)
    page.click("#more > summary")
    page.fill("#seed", str(FAIL_SEED))
    page.click("#lock")  # keep this seed: the Space fails every call with it
    assert page.inner_text("#more-summary").endswith(f"seed {FAIL_SEED}")
    page.click("#go")
    page.wait_for_selector("#stage[data-view='error']", timeout=JOB_TIMEOUT_MS)
    assert page.inner_text("#error-title") == "The picture could not be painted"
    assert page.inner_text("#error-text") == "The painting service's GPU worker failed."
    assert "worker" in page.inner_text("#error-detail").lower()
    assert page.is_visible("#retry")
    shot(page, "06-failed")
    job = httpx.get(f"{live.url}/v1/jobs/{job_id_of(page)}").json()
    assert job["status"] == "failed"


def test_queued_job_waits_for_quota_then_fails_and_the_page_says_so(
    open_page: Any, held: tuple[Ingest, ScriptedConsumer], photo_file: Path
) -> None:
    ingest, consumer = held
    page, _console = open_page(ingest.url + "/")
    choose_photo(page, photo_file)
    page.click("#go")
    page.wait_for_selector("#stage[data-view='progress']")
    job_id = job_id_of(page)
    page.wait_for_function(
        "() => document.querySelector('#status-text').textContent.startsWith('Waiting for a free')"
    )
    assert page.get_attribute("#bar", "data-waiting") == "true"
    shot(page, "07-queued")

    claim = consumer.take(job_id)
    consumer.update(claim, Status.RUNNING, progress=0.4, phase="painting")
    page.wait_for_function("() => document.querySelector('#f-percent').textContent === '40%'")
    assert page.inner_text("#f-phase") == "painting"
    assert page.get_attribute("#bar", "aria-valuenow") == "40"

    resume_at = now_ms() + 12 * 60 * 1000
    consumer.update(claim, Status.WAITING_FOR_QUOTA, resume_at=resume_at, phase="waiting_for_quota")
    page.wait_for_selector("#quota-note:not([hidden])")
    clock = page.evaluate(
        "ms => new Date(ms).toLocaleTimeString('en', {hour: 'numeric', minute: '2-digit'})", resume_at
    )
    assert page.inner_text("#status-text") == f"Waiting for GPU quota, resumes at {clock}"
    assert "continues by itself" in page.inner_text("#quota-note")
    eta = page.inner_text("#f-eta")
    assert re.fullmatch(r"about 1[12]:\d\d", eta), eta
    shot(page, "08-waiting-for-quota")

    # Long waits are fine: the page has no time-out of its own while the job lives.
    page.wait_for_timeout(3000)
    assert page.get_attribute("#stage", "data-view") == "progress"

    consumer.finish(
        claim,
        Status.FAILED,
        error_code="space_rejected",
        error_message="The Space refused the photo: the image has no content.",
        phase="failed",
    )
    page.wait_for_selector("#stage[data-view='error']")
    assert (
        page.inner_text("#error-text") == "The painting service could not use this photo or these settings."
    )
    assert "the image has no content" in page.inner_text("#error-detail")
    shot(page, "09-failed-after-quota")
    assert now_ms() < resume_at  # it failed; it did not wait it out


def test_cancel_erases_the_job(
    open_page: Any, held: tuple[Ingest, ScriptedConsumer], photo_file: Path
) -> None:
    ingest, consumer = held
    page, _console = open_page(ingest.url + "/")
    choose_photo(page, photo_file)
    page.click("#go")
    page.wait_for_selector("#stage[data-view='progress']")
    job_id = job_id_of(page)
    claim = consumer.take(job_id)
    consumer.update(claim, Status.RUNNING, progress=0.25, phase="painting")
    page.wait_for_function("() => document.querySelector('#f-percent').textContent === '25%'")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("#stage[data-view='idle']")
    assert page.inner_text("#toast") == "The job was cancelled and erased."
    assert page.evaluate("location.hash") == ""
    assert not page.is_disabled("#go")
    shot(page, "10-cancelled")
    assert httpx.get(f"{ingest.url}/v1/jobs/{job_id}").status_code == 404


def test_the_page_polls_when_the_server_refuses_it_a_stream(
    open_page: Any, redis: RedisServer, workdir: Path, photo_file: Path
) -> None:
    env = stack_env(redis, "http://127.0.0.1:9/", HELD_PREFIX, GHIBLI_MAX_STREAMS_PER_CLIENT="1")
    ingest = start_ingest(env, workdir, "one-stream")
    consumer = ScriptedConsumer(redis.url, HELD_PREFIX)
    try:
        other = httpx.post(
            ingest.url + "/v1/jobs",
            files={"image": ("p.jpg", photo_file.read_bytes(), "image/jpeg")},
            timeout=30,
        ).json()
        # Another tab of this client holds its one stream, so the page's is refused (429).
        with httpx.stream("GET", f"{ingest.url}/v1/jobs/{other['id']}/events", timeout=60) as held_stream:
            assert held_stream.status_code == 200
            page, console = open_page(ingest.url + "/")
            console.expect(r"429")
            choose_photo(page, photo_file)
            page.click("#go")
            page.wait_for_selector("#stage[data-view='progress']")
            claim = consumer.take(job_id_of(page))
            consumer.update(claim, Status.RUNNING, progress=0.4, phase="painting")
            # Polled, not streamed: the page still follows the job.
            page.wait_for_function("() => document.querySelector('#f-percent').textContent === '40%'")
            consumer.finish(
                claim, Status.FAILED, error_code="space_error", error_message="The Space said no."
            )
            page.wait_for_selector("#stage[data-view='error']")
        refusals = [
            line
            for line in ingest.proc.log().splitlines()
            if '"/v1/jobs/{job_id}/events"' in line and '"status": 429' in line
        ]
        assert len(refusals) == 1, refusals
    finally:
        ingest.proc.stop()


def test_upload_problem_is_shown_in_plain_words(
    open_page: Any, held: tuple[Ingest, ScriptedConsumer], tmp_path: Path
) -> None:
    """A file that starts like a JPEG but is not one passes the page's sniff (the first bytes) and
    is refused by the server; the page explains the refusal in plain words."""
    ingest, _consumer = held
    page, console = open_page(ingest.url + "/")
    console.expect(r"status of 422")  # the browser logs the API's refusal; that is the point here
    damaged = tmp_path / "holiday.jpg"
    damaged.write_bytes(b"\xff\xd8\xff\xe0" + b"this is not a photo at all, just some text " * 20)
    page.set_input_files("#file", str(damaged))
    page.wait_for_selector("#drop[data-state='photo']")
    assert page.is_visible("#no-preview")  # the browser cannot show it; the server decides
    page.click("#go")
    page.wait_for_selector("#stage[data-view='error']")
    assert page.inner_text("#error-text").startswith("That photo could not be read; it may be damaged.")
    assert page.is_hidden("#retry")  # the same file would be refused again
    shot(page, "11-upload-refused")


# ---------------------------------------------------------------------------------------------
# languages, themes, phones, accessibility


def test_chinese_dark_phone_layout_and_switches(open_page: Any, live: Ingest, photo_file: Path) -> None:
    page, _console = open_page(
        live.url + "/",
        locale="zh-CN",
        color_scheme="dark",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.inner_text("#go-label") == "开始绘制"
    assert page.evaluate("document.documentElement.dataset.effectiveTheme") == "dark"
    assert page.is_visible("#take")  # camera capture on phones
    assert page.get_attribute("#camera", "capture") == "environment"
    # Nothing sticks out sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "12-zh-dark-phone", full_page=False)  # a full-page capture drops the touch emulation
    choose_photo(page, photo_file)
    shot(page, "13-zh-dark-phone-photo", full_page=False)

    page.click("#lang-toggle")
    assert page.inner_text("#go-label") == "Paint it"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.effectiveTheme") == "light"
    page.reload()
    page.wait_for_selector("html[data-ready='true']")
    assert page.inner_text("#go-label") == "Paint it"  # the choices are remembered
    assert page.evaluate("document.documentElement.dataset.effectiveTheme") == "light"


# WCAG relative luminance and contrast of an element's text against the first opaque background.
_CONTRAST_JS = """
sel => {
  const parse = c => {
    const n = (c.match(/[\\d.]+/g) || []).map(Number);
    // color-mix() computes to color(srgb r g b [/ a]) with channels in 0..1
    return c.startsWith('color(') ? n.map((v, i) => (i < 3 ? v * 255 : v)) : n;
  };
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const el = document.querySelector(sel);
  const fg = parse(getComputedStyle(el).color);
  let node = el, bg = null;
  while (node && node.nodeType === 1) {
    const c = parse(getComputedStyle(node).backgroundColor);
    if (c.length >= 3 && (c.length === 3 || c[3] === 1)) { bg = c; break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_labels_keyboard_and_contrast(open_page: Any, live: Ingest, scheme: str) -> None:
    page, _console = open_page(live.url + "/", color_scheme=scheme)
    # Every control has an accessible name.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, input, textarea, select')]
            .filter(el => el.offsetParent !== null || el.type === 'file')
            .filter(el => {
              const label = el.labels && el.labels.length ? el.labels[0].textContent.trim() : '';
              return !(label || el.getAttribute('aria-label') || el.textContent.trim() ||
                       el.getAttribute('aria-labelledby'));
            })
            .map(el => el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    # The keyboard reaches the photo picker, the settings and the main button, in reading order.
    page.evaluate(
        """() => { window.reached = [];
          document.addEventListener('focusin',
            e => window.reached.push(e.target.id || e.target.className)); }"""
    )
    page.click("#more > summary")  # size and seed are folded away until asked for
    page.focus("#theme-toggle")
    for _ in range(40):
        page.keyboard.press("Tab")
    reached: list[str] = page.evaluate("() => window.reached")
    order = [reached.index(x) for x in ("choose", "example", "prompt", "seed", "dice", "lock", "go")]
    assert order == sorted(order), reached
    # Text contrast (WCAG AA: 4.5 for body text).
    for selector in (
        "label[for='prompt']",
        ".hint",
        "#prompt",
        ".brand-tag",
        ".chip",
        ".examples-label",
        ".more-summary",
        ".engine-note summary",
        ".engine-how",
        "#go-label",
        ".foot p",
    ):
        ratio = page.evaluate(_CONTRAST_JS, selector)
        assert ratio >= 4.5, (scheme, selector, ratio)
    shot(page, f"14-keyboard-{scheme}")


def test_page_is_served_with_a_strict_policy_and_nothing_from_other_hosts(live: Ingest) -> None:
    assert httpx.head(live.url + "/").status_code == 200
    page = httpx.get(live.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    # No CDN, no fonts or scripts from elsewhere: the page works offline.
    assert {"examples/cat.jpg", "examples/coffee.jpg", "examples/astronaut.jpg"} <= set(STATIC_FILES)
    for asset in ("/", *(f"/static/{name}" for name in STATIC_FILES)):
        response = httpx.get(live.url + asset)
        assert response.status_code == 200, asset
        if asset.endswith((".jpg", ".png")):
            assert len(response.content) <= 150_000, asset  # examples stay small
            continue
        hosts = set(re.findall(r"https?://([^/\"'\s)]+)", response.text)) - {"www.w3.org"}
        assert hosts == set(), (asset, hosts)
