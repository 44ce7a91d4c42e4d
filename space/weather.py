"""Light and weather painted over the picture: rain, sunlight through leaves, lit lamps.

Each is a seeded layer, drawn once at the size it needs and blended in; a look turns it on with a
strength (`Look.rain`, `Look.dapple`, `Look.lamps`), so the presets differ in more than colour.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["dapple", "lamp_glow", "rain"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)

_RAIN = np.array([0.86, 0.90, 0.96], dtype=np.float32)  # streaks catch the grey sky's light
_SUN_FLECK = np.array([1.0, 0.93, 0.62], dtype=np.float32)
_LAMP = np.array([1.0, 0.72, 0.36], dtype=np.float32)


def rain(rgb: F32, strength: float, rng: np.random.Generator) -> F32:
    """Falling rain: thin, light, slanted streaks of seeded length in two depths, over everything."""
    if strength <= 0:
        return rgb
    h, w = rgb.shape[:2]
    scale = min(h, w) / 768
    slant = rng.uniform(0.12, 0.22)  # wind: streaks lean a little, all the same way
    layer = np.zeros((h, w), np.float32)
    for count, length, alpha, width in ((h * w // 900, 34, 0.5, 1), (h * w // 5000, 70, 0.8, 2)):
        n = max(1, int(count))
        x = rng.uniform(-0.1 * w, 1.1 * w, n)
        y = rng.uniform(-0.1 * h, h, n)
        size = length * scale * rng.uniform(0.6, 1.3, n)
        ends = np.stack([x + slant * size, y + size], axis=1)
        lines = np.stack([np.stack([x, y], axis=1), ends], axis=1).round().astype(np.int32)
        drawn = np.zeros((h, w), np.float32)
        cv2.polylines(drawn, list(lines), False, 1.0, max(1, round(width * scale)), cv2.LINE_AA)
        layer = np.maximum(layer, drawn * np.float32(alpha))
    layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.7 * scale)) * np.float32(0.55 * strength)
    a = layer[..., None]
    return np.asarray(rgb * (1 - a) + _RAIN * a, dtype=np.float32)


def dapple(rgb: F32, strength: float, keep: F32, rng: np.random.Generator) -> F32:
    """Sunlight through leaves: soft warm flecks where `keep` (0..1) allows, brightest on foliage."""
    if strength <= 0:
        return rgb
    h, w = rgb.shape[:2]
    cells: F32 = rng.random((max(3, h // 28), max(3, w // 28))).astype(np.float32)
    field = cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC)
    flecks = np.clip((field - 0.62) * 5, 0, 1)
    flecks = cv2.GaussianBlur(flecks, (0, 0), max(1.0, min(h, w) / 250)) * keep
    # Light falls from above: flecks fade towards the foot of the picture.
    flecks *= np.linspace(1.0, 0.55, h, dtype=np.float32)[:, None]
    a = (flecks * np.float32(0.35 * strength))[..., None]
    return np.asarray(rgb + (_SUN_FLECK * np.minimum(rgb * 1.6, 1) - rgb) * a, dtype=np.float32)


def lamp_glow(rgb: F32, photo: F32, strength: float, scale: float) -> F32:
    """A warm halo round the photo's small bright lights: lit windows, street lamps, lanterns."""
    if strength <= 0:
        return rgb
    luma = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    # A light is small, bright and brighter than all around it (a lit window at dusk): what a
    # morphological opening removes. A white wall or a bright sky above a dark field is not.
    size = max(3, round(18 * scale)) | 1
    opened = cv2.morphologyEx(
        luma, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    )
    lights = np.clip((luma - 0.62) * 4, 0, 1) * np.clip((luma - opened - 0.1) * 5, 0, 1)
    # Lamps are warm or white; a patch of blue sky between two beams is not a light.
    warm = (photo[..., 0] + photo[..., 1]) / 2 - photo[..., 2]
    lights *= np.clip((warm + 0.02) * 12, 0, 1)
    halo = cv2.GaussianBlur(lights, (0, 0), max(2.0, 8 * scale)) * 2.5
    halo = np.clip(halo + lights, 0, 1) * np.float32(0.6 * strength)
    return np.asarray(rgb + (_LAMP - rgb) * halo[..., None] * (1 - rgb * 0.3), dtype=np.float32)
