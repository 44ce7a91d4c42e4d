"""Flat painted colour: a small palette found in CIELAB, then a warm, luminous grade.

Photos hold thousands of colours; a painting holds a dozen mixed ones. k-means in Lab (where
distance is close to what the eye sees) on a small sample finds that dozen; every pixel then takes
its nearest palette colour through a 32x32x32 look-up table over Lab.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from space.looks import Look

__all__ = ["fit_palette", "grade", "levels", "quantize"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)
U8 = npt.NDArray[Any]  # uint8 pixels or labels

_WEIGHTS = np.array([1.3, 1.0, 1.0], dtype=np.float32)  # lightness separates regions first
_CELLS = 32  # look-up table cells per 8-bit Lab axis


def _cell_centres() -> F32:
    """Weighted Lab centre of every look-up table cell, in (L, a, b) index order."""
    grid = (np.arange(_CELLS, dtype=np.float32) + 0.5) * (256 / _CELLS)
    l_, a, b = np.meshgrid(grid * (100 / 255), grid - 128, grid - 128, indexing="ij")
    return np.stack([l_, a, b], axis=-1).reshape(-1, 3) * _WEIGHTS


_CELL_CENTRES = _cell_centres()


def fit_palette(lab: F32, colours: int, iterations: int = 8) -> F32:
    """k-means centres (colours x 3, Lab) of a small Lab image, deterministic (no seed involved).

    Lightness counts a little more than chroma: painted regions are separated by value first.
    """
    pts = lab.reshape(-1, 3) * _WEIGHTS
    # Deterministic k-means++-like start: farthest-point seeding from the median colour.
    first = np.median(pts, axis=0)
    centres = [first]
    dist = np.sum((pts - first) ** 2, axis=1)
    for _ in range(1, colours):
        idx = int(np.argmax(dist))
        centres.append(pts[idx])
        dist = np.minimum(dist, np.sum((pts - pts[idx]) ** 2, axis=1))
    c = np.stack(centres).astype(np.float32)
    for _ in range(iterations):
        labels = _nearest(pts, c)
        counts = np.bincount(labels, minlength=colours).astype(np.float32)
        for axis in range(3):
            sums = np.bincount(labels, weights=pts[:, axis], minlength=colours)
            c[:, axis] = np.where(counts > 0, sums / np.maximum(counts, 1), c[:, axis])
    return (c / _WEIGHTS).astype(np.float32)


def _nearest(pts: F32, centres: F32) -> npt.NDArray[np.intp]:
    """Index of the nearest centre for each point, with one matrix product (|x-c|^2 expanded)."""
    d = (centres * centres).sum(axis=1)[None, :] - 2 * (pts @ centres.T)
    return np.asarray(d.argmin(axis=1))


def _lookup_table(centres: F32) -> U8:
    """Nearest palette index for every cell of 8-bit Lab cut into 32x32x32 cells.

    32768 cells cost less than the 150 000 pixels of a 768x768 painting's colour layer, and each
    pixel then needs a single table look-up.
    """
    return _nearest(_CELL_CENTRES, centres * _WEIGHTS).astype(np.uint8)


def quantize(rgb: F32, centres: F32) -> tuple[F32, U8]:
    """Each pixel's palette colour (RGB 0..1) and palette index; labels are ordered by lightness."""
    centres = centres[np.argsort(centres[:, 0])]
    lab8: U8 = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2LAB)
    cell = (lab8 // (256 // _CELLS)).astype(np.intp)
    index = (cell[..., 0] * _CELLS + cell[..., 1]) * _CELLS + cell[..., 2]
    labels: U8 = _lookup_table(centres)[index]
    # Median on lightness-ordered labels removes speckles and jagged borders between regions.
    labels = cv2.medianBlur(labels, 5)
    palette_rgb = cv2.cvtColor(centres[None, :, :], cv2.COLOR_LAB2RGB)[0]
    return palette_rgb[labels].astype(np.float32), labels


_FOLIAGE = np.array([np.cos(np.deg2rad(125)), np.sin(np.deg2rad(125))], dtype=np.float32)
_FOLIAGE_WIDTH = np.float32(np.cos(np.deg2rad(50)))
# Tone curve with a shoulder (1 - (1 - t)^1.12): highlights glow instead of clipping.
_RAMP = np.linspace(0, 1, 1024, dtype=np.float32)
_SHOULDER = (1 - (1 - _RAMP) ** 1.12).astype(np.float32)
_S_CURVE = (_RAMP * _RAMP * (3 - 2 * _RAMP)).astype(np.float32)


def levels(lab: F32) -> tuple[float, float, float]:
    """Lightness (0..100) of the photo's darkest 1 %, its median and its brightest 1 %."""
    lo, mid, hi = np.percentile(lab[..., 0][::2, ::2], (1, 50, 99))
    return float(lo), float(mid), float(hi)


def grade(rgb: F32, look: Look, tones: tuple[float, float, float] = (0.0, 50.0, 100.0)) -> F32:
    """The Ghibli light: richer but soft chroma, fresh greens, lifted shadows, cream highlights.

    `tones` (from `levels`) stretches a flat, hazy photo towards the full range first, so a pale
    cat or a foggy street does not come out washed out; a dark night photo is not brightened.
    """
    lab = cv2.cvtColor(np.clip(rgb, 0, 1), cv2.COLOR_RGB2LAB)
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    # Foliage: hues within 50 degrees of green (125 degrees in the a-b plane), with some chroma.
    chroma = np.sqrt(a * a + b * b) + np.float32(1e-3)
    closeness = (a * _FOLIAGE[0] + b * _FOLIAGE[1]) / chroma  # cosine of the hue difference
    foliage = np.clip((closeness - _FOLIAGE_WIDTH) / (1 - _FOLIAGE_WIDTH), 0, 1)
    foliage *= np.clip(chroma / 12, 0, 1)
    # Turn foliage hues by look.green_shift degrees (towards yellow) and lift their chroma.
    turn = np.float32(np.deg2rad(look.green_shift)) * foliage
    gain = np.float32(look.saturation) * (1 + np.float32(look.foliage_gain) * foliage)
    cos, sin = np.cos(turn) * gain, np.sin(turn) * gain
    a2 = a * cos + b * sin
    b2 = b * cos - a * sin
    # A flat, hazy photo (1..99 % lightness spanning less than 85) gets more contrast around its
    # median, at most 1.6x and without clipping: its exposure stays, its darks deepen (no washed
    # out cat). A photo with a full range is left as it is.
    lo, middle, hi = tones
    gain = min(1.6, max(1.0, 85.0 / max(hi - lo, 1.0)))
    gain = max(
        1.0, min(gain, (97.0 - middle) / max(hi - middle, 1.0), (middle - 3.0) / max(middle - lo, 1.0))
    )
    lightness = (lightness - np.float32(middle)) * np.float32(gain) + np.float32(middle)
    t = np.clip(lightness * np.float32(look.exposure / 100), 0, 1)
    index = (t * 1023).astype(np.intp)
    t = _SHOULDER[index] + np.float32(look.contrast) * (_S_CURVE[index] - _RAMP[index])
    out = cv2.cvtColor(cv2.merge([np.clip(t, 0, 1) * 100, a2, b2]), cv2.COLOR_LAB2RGB)
    # Warmth of the light, then 0..1 onto shadow..highlight: no pure black, no pure white.
    lo_c = np.asarray(look.shadow, dtype=np.float32)
    hi_c = np.asarray(look.highlight, dtype=np.float32)
    cast = np.asarray(look.cast, dtype=np.float32)
    return np.asarray(lo_c + np.clip(out * cast, 0, 1) * (hi_c - lo_c), dtype=np.float32)
