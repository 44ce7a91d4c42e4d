"""Procedural photo-like pictures for the before/after sheet, the benchmark and the tests.

They are not art: they have what a photo has and a painting does not (sensor noise, fine texture,
smooth gradients, hard small details), so they show what the stylizer does without shipping any
binary photo in the repository. Each is a pure function of its size and seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["SAMPLES", "colour", "fractal_noise", "meadow", "photo_finish", "portrait", "seaside"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)


def colour(r: float, g: float, b: float) -> F32:
    return np.array([r, g, b], dtype=np.float32)


def fractal_noise(h: int, w: int, rng: np.random.Generator, octaves: int = 5, base: int = 4) -> F32:
    """Value noise summed over octaves, 0..1."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = min(base * 2**o, max(8, max(h, w) // 2))  # finer than 2 px adds nothing
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.55
    out /= total
    return np.asarray(np.clip((out - out.min()) / max(float(np.ptp(out)), 1e-6), 0, 1), dtype=np.float32)


def photo_finish(img: F32, rng: np.random.Generator) -> Image.Image:
    """Sensor noise and a touch of lens blur, as in a phone photo."""
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    img = img + rng.normal(0, 0.018, img.shape).astype(np.float32)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


def _sky(
    h: int, w: int, rng: np.random.Generator, zenith: tuple[float, ...], horizon: tuple[float, ...]
) -> F32:
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.asarray(zenith, np.float32) * (1 - y) + np.asarray(horizon, np.float32) * y
    img = np.broadcast_to(sky, (h, w, 3)).copy()
    clouds = np.clip((fractal_noise(h, w, rng, 6, 3) - 0.55) * 3.0, 0, 1)[..., None]
    return np.asarray(img * (1 - clouds) + np.float32(0.93) * clouds, dtype=np.float32)


def _ridge(w: int, rng: np.random.Generator, level: float, rough: float, h: int) -> npt.NDArray[Any]:
    line = fractal_noise(1, w, rng, 5, 2)[0]
    return np.asarray((level + (line - 0.5) * rough) * h, dtype=np.int32)


def meadow(width: int = 960, height: int = 640, seed: int = 1) -> Image.Image:
    """Sky with clouds, far blue hills, a green meadow, trees and a red-roofed house."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    img = _sky(h, w, rng, (0.30, 0.52, 0.85), (0.75, 0.85, 0.95))
    rows = np.arange(h)[:, None]
    far = rows >= _ridge(w, rng, 0.48, 0.12, h)[None, :]
    img[far] = img[far] * 0.3 + colour(0.42, 0.52, 0.62) * 0.7
    near = rows >= _ridge(w, rng, 0.6, 0.1, h)[None, :]
    grass = fractal_noise(h, w, rng, 7, 8)[..., None]
    meadow_rgb = colour(0.25, 0.48, 0.16) * (0.6 + 0.8 * grass)
    light = np.linspace(1.1, 0.8, h, dtype=np.float32)[:, None, None]
    img = np.where(near[..., None], meadow_rgb * light, img)
    # A path of earth winding towards the viewer.
    path: F32 = np.zeros((h, w), np.float32)
    pts = np.array([[w * 0.55, h * 0.62], [w * 0.45, h * 0.8], [w * 0.6, h]], np.int32)
    cv2.polylines(path, [pts], False, 1.0, max(3, w // 30), cv2.LINE_AA)
    path = cv2.GaussianBlur(path, (0, 0), 2)[..., None] * near[..., None]
    img = img * (1 - path) + colour(0.62, 0.52, 0.38) * (0.8 + 0.3 * grass) * path
    # House: wall, roof, door and windows.
    x0, y0, x1, y1 = int(w * 0.62), int(h * 0.5), int(w * 0.78), int(h * 0.66)
    img[y0:y1, x0:x1] = colour(0.88, 0.84, 0.74) * (0.9 + 0.1 * grass[y0:y1, x0:x1])
    roof = np.array([[x0 - w // 60, y0], [(x0 + x1) // 2, int(h * 0.41)], [x1 + w // 60, y0]], np.int32)
    cv2.fillPoly(img, [roof], (0.62, 0.18, 0.12), cv2.LINE_AA)
    dw = (x1 - x0) // 6
    img[y1 - (y1 - y0) // 2 : y1, x0 + dw : x0 + 2 * dw] = (0.35, 0.22, 0.14)
    for wx in (x0 + 3 * dw, x0 + 4 * dw + dw // 2):
        img[y0 + (y1 - y0) // 4 : y0 + (y1 - y0) // 2, wx : wx + dw] = (0.2, 0.3, 0.42)
    # Trees: dark trunks and textured crowns.
    leaves = fractal_noise(h, w, rng, 6, 16)
    crowns: F32 = np.zeros((h, w), np.float32)
    for tx, size in ((0.18, 0.16), (0.33, 0.11), (0.9, 0.13)):
        cx, cy, r = int(w * tx), int(h * 0.5), int(h * size)
        cv2.rectangle(img, (cx - r // 8, cy), (cx + r // 8, cy + r * 2), (0.28, 0.2, 0.13), -1)
        cv2.circle(crowns, (cx, cy), r, 1.0, -1, cv2.LINE_AA)
        cv2.circle(crowns, (cx - r // 2, cy + r // 3), int(r * 0.7), 1.0, -1, cv2.LINE_AA)
        cv2.circle(crowns, (cx + r // 2, cy + r // 4), int(r * 0.75), 1.0, -1, cv2.LINE_AA)
    crown = (crowns * (0.7 + 0.6 * leaves) > 0.75)[..., None]
    img = np.where(crown, colour(0.12, 0.3, 0.1) * (0.5 + leaves[..., None]), img)
    return photo_finish(img, rng)


def portrait(width: int = 640, height: int = 800, seed: int = 2) -> Image.Image:
    """A face against a soft green background: eyes, brows, nose, mouth, hair, shirt."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    bokeh = fractal_noise(h, w, rng, 3, 3)[..., None]
    img = colour(0.36, 0.5, 0.3) * (0.7 + 0.6 * bokeh)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, rx, ry = w * 0.5, h * 0.45, w * 0.22, h * 0.24
    # Shirt and shoulders.
    shoulders = ((xs - cx) / (w * 0.45)) ** 2 + ((ys - h * 1.05) / (h * 0.35)) ** 2 < 1
    img[shoulders] = colour(0.2, 0.3, 0.55) * (0.8 + 0.3 * bokeh[shoulders])
    neck = (np.abs(xs - cx) < rx * 0.45) & (ys > cy) & (ys < h * 0.8)
    img[neck] = (0.78, 0.56, 0.44)
    # Hair behind the head.
    hair = ((xs - cx) / (rx * 1.2)) ** 2 + ((ys - cy + ry * 0.15) / (ry * 1.15)) ** 2 < 1
    strands = fractal_noise(h, w, rng, 7, 12)
    img[hair] = colour(0.24, 0.15, 0.1)[None, :] * (0.6 + 0.8 * strands[hair][:, None])
    # Face, lit from the upper left.
    d = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
    face = d < 1
    lit = np.clip(1.05 - 0.35 * (xs - cx + rx * 0.4) / rx - 0.15 * d, 0.5, 1.1)
    skin = colour(0.87, 0.64, 0.52) * lit[..., None]
    img = np.where(face[..., None], skin, img)
    fringe = hair & (ys < cy - ry * 0.55)
    img[fringe] = colour(0.24, 0.15, 0.1)[None, :] * (0.6 + 0.8 * strands[fringe][:, None])
    for side in (-1, 1):
        ex, ey = int(cx + side * rx * 0.4), int(cy - ry * 0.1)
        cv2.ellipse(
            img, (ex, ey), (int(rx * 0.22), int(ry * 0.09)), 0, 0, 360, (0.95, 0.93, 0.9), -1, cv2.LINE_AA
        )
        cv2.circle(img, (ex, ey), int(ry * 0.075), (0.3, 0.2, 0.12), -1, cv2.LINE_AA)
        cv2.circle(img, (ex, ey), int(ry * 0.035), (0.05, 0.04, 0.03), -1, cv2.LINE_AA)
        cv2.circle(img, (ex - 2, ey - 2), max(1, int(ry * 0.015)), (1, 1, 1), -1, cv2.LINE_AA)
        brow = np.array(
            [[ex - rx * 0.25, ey - ry * 0.17], [ex, ey - ry * 0.23], [ex + rx * 0.25, ey - ry * 0.18]]
        )
        cv2.polylines(img, [brow.astype(np.int32)], False, (0.25, 0.16, 0.1), max(2, w // 120), cv2.LINE_AA)
    nose = np.array([[cx, cy], [cx - rx * 0.1, cy + ry * 0.28], [cx + rx * 0.05, cy + ry * 0.3]], np.int32)
    cv2.polylines(img, [nose], False, (0.62, 0.42, 0.33), max(2, w // 200), cv2.LINE_AA)
    cv2.ellipse(
        img,
        (int(cx), int(cy + ry * 0.5)),
        (int(rx * 0.3), int(ry * 0.08)),
        0,
        0,
        180,
        (0.7, 0.3, 0.3),
        -1,
        cv2.LINE_AA,
    )
    pores = fractal_noise(h, w, rng, 8, 32)[..., None]
    img = np.where(face[..., None], img * (0.95 + 0.1 * pores), img)
    return photo_finish(img, rng)


def seaside(width: int = 800, height: int = 800, seed: int = 3) -> Image.Image:
    """Sky, sea with waves, a sandy beach and a white lighthouse with a red top."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    img = _sky(h, w, rng, (0.22, 0.45, 0.8), (0.7, 0.82, 0.92))
    horizon = int(h * 0.55)
    waves = fractal_noise(h - horizon, w, rng, 7, 10)
    depth = np.linspace(0.0, 1.0, h - horizon, dtype=np.float32)[:, None]
    sea = colour(0.1, 0.35, 0.5) * (0.8 + 0.4 * waves[..., None]) * (1 + 0.3 * depth[..., None])
    img[horizon:] = sea
    beach = np.arange(h)[:, None] >= _ridge(w, rng, 0.78, 0.08, h)[None, :]
    sand = fractal_noise(h, w, rng, 8, 24)[..., None]
    img = np.where(beach[..., None], colour(0.86, 0.76, 0.58) * (0.85 + 0.25 * sand), img)
    x0, x1, top = int(w * 0.7), int(w * 0.78), int(h * 0.28)
    body = np.array(
        [[x0, int(h * 0.8)], [x0 + w // 80, top], [x1 - w // 80, top], [x1, int(h * 0.8)]], np.int32
    )
    cv2.fillPoly(img, [body], (0.93, 0.92, 0.88), cv2.LINE_AA)
    img[top - h // 20 : top, x0 + w // 80 : x1 - w // 80] = (0.75, 0.15, 0.12)
    img[int(h * 0.45) : int(h * 0.5), x0 + w // 100 : x1 - w // 100] = (0.75, 0.15, 0.12)
    shade = np.linspace(1.0, 0.75, x1 - x0, dtype=np.float32)[None, :, None]
    img[top : int(h * 0.8), x0:x1] *= shade
    return photo_finish(img, rng)


SAMPLES: dict[str, Callable[..., Image.Image]] = {"meadow": meadow, "portrait": portrait, "seaside": seaside}
