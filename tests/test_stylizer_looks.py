"""What users look at first: the page's presets, and thin things against the sky.

Every preset of the web page (read from ingest/static/state.js, so a new preset is covered too)
must paint a picture of its own, with the grade its name promises; masts, a lattice tower, a wire
and a bare tree against a day or night sky must survive the painted sky. Speed is measured in
bench/stylizer.py, never asserted here.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from space.samples import meadow
from space.scenes import structures
from space.stylizer import stylize

STATE_JS = Path(__file__).resolve().parent.parent / "ingest" / "static" / "state.js"


def page_presets() -> dict[str, str]:
    """The page's presets as {key: prompt}, e.g. {"classic": "Ghibli Studio style, ..."}."""
    js = STATE_JS.read_text(encoding="utf-8")
    default = re.search(r'DEFAULT_PROMPT\s*=\s*"([^"]+)"', js)
    assert default, "DEFAULT_PROMPT not found in state.js"
    pairs = re.findall(r'\[\s*"preset\.(\w+)"\s*,\s*(DEFAULT_PROMPT|"[^"]*")\s*\]', js)
    return {key: default[1] if value == "DEFAULT_PROMPT" else value.strip('"') for key, value in pairs}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img / 255, cv2.COLOR_RGB2LAB)


def chroma(img: np.ndarray) -> float:
    colour = lab(img)
    return float(np.hypot(colour[..., 1], colour[..., 2]).mean())


def greenness(img: np.ndarray) -> float:
    return float((img[..., 1] - (img[..., 0] + img[..., 2]) / 2).mean())


def warmth(img: np.ndarray) -> float:
    return float((img[..., 0] - img[..., 2]).mean())


def streaks(img: np.ndarray) -> int:
    """Thin light marks much taller than wide (rain), counted as connected components."""
    gray = img.mean(axis=2)
    light = (gray - cv2.GaussianBlur(gray, (0, 0), 2.5) > 6).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(light, connectivity=8)
    w, h = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    return int(((h >= 6) & (h >= 2.5 * w)).sum())


@pytest.fixture(scope="module")
def painted() -> dict[str, np.ndarray]:
    photo = meadow(768, 512, seed=4)
    return {
        key: pixels(stylize(photo, 384, 256, seed=3, prompt=prompt)) for key, prompt in page_presets().items()
    }


def test_the_page_has_the_presets_this_file_checks() -> None:
    presets = page_presets()
    assert {"classic", "meadow", "rain", "seaside", "forest", "golden"} <= set(presets), presets


def test_every_preset_paints_a_picture_of_its_own(painted: dict[str, np.ndarray]) -> None:
    for a, b in itertools.combinations(painted, 2):
        difference = float(np.abs(painted[a] - painted[b]).mean())
        assert difference > 8, f"presets {a} and {b} look alike (mean difference {difference:.1f})"


def test_rain_is_grey_blue_with_streaks(painted: dict[str, np.ndarray]) -> None:
    rain, classic = painted["rain"], painted["classic"]
    assert chroma(rain) < chroma(classic) * 0.7  # greyer
    assert lab(rain)[..., 2].mean() < lab(classic)[..., 2].mean() - 6  # bluer (b* lower)
    assert warmth(rain) < warmth(classic)  # not a sunset
    assert streaks(rain) > 30
    assert all(streaks(img) < 5 for key, img in painted.items() if key != "rain")


def test_forest_is_greener_than_classic(painted: dict[str, np.ndarray]) -> None:
    assert greenness(painted["forest"]) > greenness(painted["classic"]) + 15


def test_summer_meadow_is_brighter_more_colourful_with_a_bluer_sky(painted: dict[str, np.ndarray]) -> None:
    summer, classic = painted["meadow"], painted["classic"]
    assert lab(summer)[..., 0].mean() > lab(classic)[..., 0].mean() + 1
    assert chroma(summer) > chroma(classic) + 2
    assert warmth(summer) > warmth(classic)  # warm light
    sky = slice(0, 60)
    assert lab(summer[sky])[..., 2].mean() < lab(classic[sky])[..., 2].mean() - 1


def test_golden_hour_is_warm_and_seaside_has_the_bluest_sky(painted: dict[str, np.ndarray]) -> None:
    assert warmth(painted["golden"]) > warmth(painted["classic"]) + 30
    sky = slice(0, 60)
    blues = {key: float(lab(img[sky])[..., 2].mean()) for key, img in painted.items()}
    assert min(blues, key=blues.__getitem__) == "seaside", blues


def _contrast(img: np.ndarray, part: np.ndarray, others: np.ndarray, ground: int) -> float:
    """How much darker a thin part is than the sky right around it (0 = gone, ~0.7 in the photo)."""
    gray = img.mean(axis=2)
    mask = part.astype(np.uint8)
    mask[ground:] = 0
    ring = cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0
    ring &= cv2.dilate(others.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    ring[ground:] = False
    around = float(gray[ring].mean())
    return (around - float(gray[mask > 0].mean())) / around


@pytest.mark.parametrize("night", [False, True], ids=["day", "night"])
@pytest.mark.parametrize("preset", ["classic", "rain"])
def test_masts_towers_wires_and_branches_survive_the_painted_sky(night: bool, preset: str) -> None:
    scene = structures(768, 512, seed=5, night=night)
    photo = pixels(scene.image)
    out = pixels(stylize(scene.image, 768, 512, seed=1, prompt=page_presets()[preset]))
    every = np.logical_or.reduce(list(scene.parts.values()))
    ground = int(512 * 0.78)
    for name, part in scene.parts.items():
        before = _contrast(photo, part, every, ground)
        after = _contrast(out, part, every, ground)
        assert after > max(0.3, 0.5 * before), (
            f"{name}: contrast {before:.2f} in the photo, {after:.2f} painted"
        )


def test_gaps_between_branches_take_the_painted_sky_not_photo_blue_blocks() -> None:
    scene = structures(768, 512, seed=5)
    out = pixels(stylize(scene.image, 768, 512, seed=1, prompt="Ghibli Studio style"))
    branches = scene.parts["branches"].astype(np.uint8)
    every = np.logical_or.reduce(list(scene.parts.values())).astype(np.uint8)
    clear = cv2.dilate(every, np.ones((7, 7), np.uint8)) == 0  # sky pixels, away from any line
    # Gaps: sky pixels with twigs all around (within 12 px on the left and on the right).
    near = cv2.dilate(branches, np.ones((1, 25), np.uint8)) > 0
    gaps = clear & near & (cv2.erode(near.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0)
    rows = np.flatnonzero(gaps.any(axis=1))
    assert gaps.sum() > 300, "the scene should have gaps between twigs"
    # Open sky just outside the crown, at the same height (painted clouds keep clear of trees).
    outside = (cv2.dilate(branches, np.ones((41, 41), np.uint8)) > 0) & ~gaps
    outside &= cv2.dilate(branches, np.ones((15, 15), np.uint8)) == 0
    beside = np.zeros_like(clear)
    beside[rows[0] : rows[-1] + 1] = True
    gap_colour = np.median(out[gaps], axis=0)
    sky_colour = np.median(out[beside & outside & clear], axis=0)
    assert np.abs(gap_colour - sky_colour).max() < 14, (gap_colour, sky_colour)


def test_a_night_photo_stays_night_under_every_preset() -> None:
    scene = structures(512, 384, seed=5, night=True)
    for key, prompt in page_presets().items():
        out = pixels(stylize(scene.image, 512, 384, seed=2, prompt=prompt))
        assert lab(out[:120])[..., 0].mean() < 40, f"{key} painted a day sky over a night photo"
