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
    ink = ink * strength
    # Soft, slightly thinned: a pen line, not a pixel edge.
    return np.asarray(cv2.GaussianBlur(ink, (0, 0), 0.5 * max(scale, 0.6)), dtype=np.float32)


def paper_texture(
    h: int, w: int, rng: np.random.Generator, *, paper: float = 1.0, blotch: float = 1.0
) -> F32:
    """Multiplicative texture around 1.0: paper grain and brush streaks (`paper`), pigment blotches.

    Drawn at half size and enlarged once: a paper tooth of about two pixels, and half the cost.
    """
    hh, hw = max(1, h // 2), max(1, w // 2)
    grain: F32 = rng.standard_normal((hh, hw), dtype=np.float32)
    # Brush streaks: noise smeared along one seeded direction.
    streak: F32 = rng.standard_normal((max(4, h // 3), max(4, w // 3)), dtype=np.float32)
    k: F32 = np.zeros((9, 9), np.float32)
    k[4, :] = 1 / 9
    rot = cv2.getRotationMatrix2D((4, 4), rng.uniform(-35, 35), 1.0)
    k = cv2.warpAffine(k, rot, (9, 9))
    k = np.asarray(k / max(float(k.sum()), 1e-6), dtype=np.float32)
    streak = cv2.resize(cv2.filter2D(streak, -1, k), (hw, hh), interpolation=cv2.INTER_LINEAR)
    # Pigment blotches: very low-frequency noise, as a wash dries unevenly.
    blot: F32 = rng.standard_normal((max(2, h // 48), max(2, w // 48)), dtype=np.float32)
    blot = cv2.resize(blot, (hw, hh), interpolation=cv2.INTER_CUBIC)
    half = 1 + np.float32(paper) * (0.008 * grain + 0.012 * streak) + np.float32(0.012 * blotch) * blot
    return np.asarray(cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
