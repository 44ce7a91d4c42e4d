"""Brush work: colour dragged along the forms, and stroke marks that follow them.

A filter smooths colour the same way everywhere; a painter drags the brush along the shape (round
a cheek, down a tree trunk, along a roof). The direction is the edge tangent from the structure
tensor of the picture; where nothing has a direction (open sky, a flat wall) strokes take one
fixed diagonal, as a painter's hand does. Both steps are line integral convolutions done with a
few `cv2.remap` calls, so they cost milliseconds.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["Flow", "drag", "flow_field", "stroke_texture"]

F32 = npt.NDArray[Any]  # float32 pixels (OpenCV's stubs type its results loosely)
Flow = tuple[F32, F32]  # unit tangent (x, y) per pixel

# The hand's own direction where the picture has none: a diagonal stroke, the same for every seed
# (the painting of the photo does not depend on the seed; only texture, clouds and rain do).
_HAND = (np.float32(np.cos(0.6)), np.float32(np.sin(0.6)))


def flow_field(gray: F32, scale: float) -> Flow:
    """Unit edge tangents of a grey image (0..1), smoothed over about 3 pixels at 768."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    sigma = max(1.5, 3.0 * scale)
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), sigma)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), sigma)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), sigma)
    # Coherence (0..1) says how sure the direction is: 1 along an edge, 0 on flat or busy areas.
    root = np.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy)
    theta = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # the gradient's direction; the tangent is across it
    tx, ty = -np.sin(theta), np.cos(theta)
    coherence = np.clip(root / (jxx + jyy + np.float32(2e-4)), 0, 1)
    # A faint gradient (bokeh, a wall) has a direction too, but brushing along it marbles the
    # wash: there the hand's direction takes over.
    coherence *= np.clip((jxx + jyy) / np.float32(0.004), 0, 1)
    hx, hy = _HAND
    flip = np.where(tx * hx + ty * hy < 0, np.float32(-1), np.float32(1))  # tangents have no sign
    fx, fy = tx * flip * coherence + hx * (1 - coherence), ty * flip * coherence + hy * (1 - coherence)
    norm = np.sqrt(fx * fx + fy * fy) + np.float32(1e-9)
    return (fx / norm).astype(np.float32), (fy / norm).astype(np.float32)


def _along(image: F32, flow: Flow, steps: int, step: float) -> F32:
    """Mean of `image` sampled along the flow, `steps` samples each side of every pixel."""
    h, w = image.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fx, fy = flow
    total = image.astype(np.float32).copy()
    weights = 1.0
    for k in range(1, steps + 1):
        weight = 1 - k / (steps + 1)  # a tapering brush: far samples count less
        for sign in (-1.0, 1.0):
            d = np.float32(sign * k * step)
            total += weight * cv2.remap(
                image, xs + d * fx, ys + d * fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            weights += weight
    return np.asarray(total / np.float32(weights), dtype=np.float32)


def drag(rgb: F32, flow: Flow, amount: F32, scale: float) -> F32:
    """Colour smeared along the flow by a brush about 9 pixels long at 768, `amount` 0..1 per pixel."""
    dragged = _along(rgb, flow, steps=3, step=max(0.7, 1.5 * scale))
    a = amount[..., None]
    return np.asarray(rgb * (1 - a) + dragged * a, dtype=np.float32)


def stroke_texture(shape: tuple[int, int], flow: Flow, scale: float, rng: np.random.Generator) -> F32:
    """Brush marks around 0 (about -1..1): noise drawn out along the flow into streaks."""
    noise: F32 = rng.standard_normal(shape, dtype=np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), max(0.6, 0.9 * scale))
    streaks = _along(noise, flow, steps=5, step=max(0.8, 1.6 * scale))
    return np.asarray(streaks / (float(streaks.std()) + 1e-6), dtype=np.float32)
