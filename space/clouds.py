"""Painted cumulus clouds and stars, from a seed.

A cloud is a heap of round puffs on a flat base, bigger in the middle. Puffs are painted back to
front, each lit at its top and shaded at its bottom, so where a front puff overlaps a back one a
soft lobe edge appears: the cauliflower shape of the clouds in Ghibli skies. Everything is drawn
on a small canvas and enlarged, which also gives the soft painted edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from space.looks import Look

__all__ = ["cloud_layer", "star_field"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)


@dataclass(frozen=True, slots=True)
class _Puff:
    x: float
    y: float
    r: float


def _cloud_puffs(
    cx: float, base: float, width: float, height: float, rng: np.random.Generator
) -> list[_Puff]:
    puffs: list[_Puff] = []
    n = int(rng.integers(5, 9))
    for i in range(n):
        u = (i + rng.uniform(-0.3, 0.3)) / max(n - 1, 1) * 2 - 1  # -1..1 across the cloud
        dome = 1 - u * u
        r = height * (0.28 + 0.42 * dome) * rng.uniform(0.8, 1.15)
        x = cx + u * width / 2
        y = base - r * 0.55 - height * 0.45 * dome * rng.uniform(0.7, 1.0)
        puffs.append(_Puff(x, y, r))
        # Smaller puffs heaped on the upper rim: the cauliflower top.
        for _ in range(int(rng.integers(0, 3))):
            angle = rng.uniform(-2.4, -0.7)  # upper half
            rr = r * rng.uniform(0.35, 0.6)
            puffs.append(_Puff(x + np.cos(angle) * r * 0.8, y + np.sin(angle) * r * 0.8, rr))
    return puffs


def _paint_puff(rgba: F32, puff: _Puff, base: float, look: Look, sun_x: float) -> None:
    h, w = rgba.shape[:2]
    x0, x1 = max(0, int(puff.x - puff.r - 2)), min(w, int(puff.x + puff.r + 3))
    y0, y1 = max(0, int(puff.y - puff.r - 2)), min(h, int(min(base, puff.y + puff.r) + 3))
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = (xs - puff.x) / puff.r, (ys - puff.y) / puff.r
    dist = np.sqrt(dx * dx + dy * dy)
    alpha = np.clip((1 - dist) * puff.r / 1.5, 0, 1)  # anti-aliased disc
    alpha *= np.clip((base - ys) / 1.5, 0, 1)  # flat base
    # Light from above and from the sun's side; the underside takes the shade colour.
    light = np.clip(0.55 - 0.55 * dy + 0.25 * dx * sun_x - 0.25 * dist * dist * (dy > 0), 0, 1)
    light = light * light * (3 - 2 * light)
    lit = np.asarray(look.cloud_light, dtype=np.float32)
    shade = np.asarray(look.cloud_shade, dtype=np.float32)
    colour = shade + (lit - shade) * light[..., None]
    region = rgba[y0:y1, x0:x1]
    a = alpha[..., None]
    region[..., :3] = region[..., :3] * (1 - a) + colour * a
    region[..., 3] = region[..., 3] * (1 - alpha) + alpha  # premultiplied 'over'


def cloud_layer(h: int, w: int, sky_rows: tuple[int, int], look: Look, rng: np.random.Generator) -> F32:
    """Premultiplied RGBA (h x w x 4, 0..1) of painted cumulus clouds between the given sky rows."""
    q = 2 if max(h, w) > 256 else 1
    ch, cw = max(8, h // q), max(8, w // q)
    top, bottom = sky_rows[0] / q, max(sky_rows[0] / q + 8, sky_rows[1] / q)
    span = bottom - top
    rgba: F32 = np.zeros((ch, cw, 4), np.float32)
    sun_x = float(rng.choice([-1.0, 1.0]))
    puffs: list[tuple[_Puff, float]] = []
    n = int(rng.integers(look.clouds[0], look.clouds[1] + 1))
    slots = rng.permutation(max(n, 1))  # one horizontal slot each: clouds spread, not heaped
    for i in range(n):
        width = cw * rng.uniform(0.2, 0.42)
        height = min(width * rng.uniform(0.3, 0.5) * look.cloud_size, span * 0.6)
        cx = (slots[i] + rng.uniform(0.15, 0.85)) / n * cw * 1.1 - cw * 0.05
        base = top + span * rng.uniform(0.4, 0.95)
        puffs += [(p, base) for p in _cloud_puffs(cx, base, width, height, rng)]
    # Back to front: higher puffs first, so lower ones overlap them with a shaded lobe edge.
    for puff, base in sorted(puffs, key=lambda pb: pb[0].y + pb[0].r):
        _paint_puff(rgba, puff, base, look, sun_x)
    rgba = cv2.GaussianBlur(rgba, (0, 0), max(0.6, cw / 500))
    if q > 1:
        rgba = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_LINEAR)
    return rgba


def star_field(h: int, w: int, rng: np.random.Generator) -> F32:
    """Sparse soft stars (0..~1) for night skies."""
    field = np.zeros((h, w), np.float32)
    count = max(1, int(h * w / 1800))
    ys = rng.integers(0, h, count)
    xs = rng.integers(0, w, count)
    field[ys, xs] = rng.uniform(0.3, 1.0, count).astype(np.float32)
    return np.clip(cv2.GaussianBlur(field, (0, 0), 0.6) * 4, 0, 1)
