"""Thin soft line art (XDoG) and the paper the picture is painted on.

XDoG (Winnemöller et al., 2012) thresholds a difference of Gaussians with a soft tanh ramp, which
draws outlines of shapes rather than every edge of the texture. Computing it on the smoothed image
(not the photo) keeps grass and skin pores out of the drawing while eyes, mouths and roof lines stay.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["line_art", "paper_texture"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)


def line_art(gray: F32, scale: float, *, tau: float = 0.985, eps: float = -0.004, phi: float = 140.0) -> F32:
    """Ink coverage (0 = paper, 1 = full line) of a grey image in 0..1; `scale` ~ size / 768."""
    sigma = 0.9 * max(scale, 0.4)
    g1 = cv2.GaussianBlur(gray, (0, 0), sigma)
    g2 = cv2.GaussianBlur(gray, (0, 0), sigma * 1.6)
    d = g1 - np.float32(tau) * g2
    ink: F32 = np.tanh(np.maximum(np.float32(eps) - d, 0) * np.float32(phi))
    # Lines only where an edge is strong at a coarser scale: drops noise specks.
    gx = cv2.Sobel(g2, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g2, cv2.CV_32F, 0, 1, ksize=3)
    strength = np.clip((cv2.magnitude(gx, gy) - np.float32(0.04)) * np.float32(6), 0, 1)
    ink = _drop_specks(ink * strength, scale)
    # Soft, slightly thinned: a pen line, not a pixel edge.
    return np.asarray(cv2.GaussianBlur(ink, (0, 0), 0.5 * max(scale, 0.6)), dtype=np.float32)


def _drop_specks(ink: F32, scale: float) -> F32:
    """Ink without its dots: short blobs (fur flecks, pores, noise) are not lines, and drawn in
    dark ink they read as black specks. A mark is kept if it is at least ~9 pixels long at 768."""
    marks = (ink > 0.2).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(marks, connectivity=8)
    if count <= 1:
        return ink
    length = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = (length >= max(4.0, 9.0 * scale)).astype(np.uint8)
    keep[0] = 0
    near = cv2.dilate(keep[labels], np.ones((3, 3), np.uint8))  # the soft rim of a kept line stays
    return np.asarray(ink * near, dtype=np.float32)


def paper_texture(
    h: int,
    w: int,
    rng: np.random.Generator,
    *,
    paper: float = 1.0,
    blotch: float = 1.0,
    strokes: F32 | None = None,
) -> F32:
    """Multiplicative texture around 1.0: paper grain (`paper`), pigment blotches (`blotch`) and
    brush marks (`strokes`, already weighted, any size: see space/brush.py).

    Drawn at half size and enlarged once: a paper tooth of about two pixels, and half the cost.
    """
    hh, hw = max(1, h // 2), max(1, w // 2)
    grain: F32 = rng.standard_normal((hh, hw), dtype=np.float32)
    # Pigment blotches: very low-frequency noise, as a wash dries unevenly.
    blot: F32 = rng.standard_normal((max(2, h // 48), max(2, w // 48)), dtype=np.float32)
    blot = cv2.resize(blot, (hw, hh), interpolation=cv2.INTER_CUBIC)
    half = 1 + np.float32(paper * 0.008) * grain + np.float32(0.012 * blotch) * blot
    if strokes is not None:
        half += cv2.resize(strokes, (hw, hh), interpolation=cv2.INTER_LINEAR)
    return np.asarray(cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
