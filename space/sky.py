"""Find the sky in a photo and paint a new one: a soft gradient with cumulus clouds.

Detection is deliberately conservative (a wrong sky over a face is worse than a photo sky left
as it is): sky pixels are smooth, bright enough, blue or pale, and connected to the top edge.
Clouds are painted, not copied: each is a seeded cluster of puffs with a flat base, lit from above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from space.clouds import cloud_layer, star_field
from space.looks import Look

__all__ = ["Sky", "find_sky", "paint_sky"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)

_COARSE = 160  # longest side of the grid the sky is found on


@dataclass(frozen=True, slots=True)
class Sky:
    mask: F32  # 0..1 at the working size, where the sky is painted; zeros when there is no sky
    core: F32  # 0..1, surely sky (no line art is drawn there: the photo's clouds are gone)
    lightness: float  # mean CIELAB lightness (0..100) of the photo's own sky, 0 when none

    @property
    def found(self) -> bool:
        return self.lightness > 0


def find_sky(rgb: F32) -> Sky:
    """The sky of a photo (0..1 RGB): coarse detection, then a colour-refined border."""
    h, w = rgb.shape[:2]
    scale = _COARSE / max(h, w)
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)
    blue = (b < -4) & (a < 5 - 0.5 * b) & (lightness > 8)  # cyan to deep ultramarine
    # Overcast is neutral or cool (walls are warm); pure white is paper or a studio, not sky.
    pale = (lightness > 70) & (lightness < 97) & (chroma < 12) & (b < 2)
    # Texture: local deviation of lightness. Sky is smooth; foliage, walls and faces are not.
    mean = cv2.blur(lightness, (5, 5))
    var = cv2.blur(lightness * lightness, (5, 5)) - mean * mean
    smooth = np.sqrt(np.maximum(var, 0)) < 3.5
    candidate: npt.NDArray[Any] = ((blue | pale) & smooth).astype(np.uint8)
    candidate = cv2.morphologyEx(candidate, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=4)
    keep = np.zeros(count, dtype=bool)
    for label in set(np.unique(labels[0, :]).tolist()) - {0}:
        keep[label] = stats[label, cv2.CC_STAT_AREA] >= 0.03 * sw * sh
    if keep.any():
        # Sky cut off from the top edge (by a tower, branches) joins if it looks the same and is high.
        seed_colour = lab[keep[labels]].mean(axis=0)
        for label in range(1, count):
            high = stats[label, cv2.CC_STAT_TOP] < 0.4 * sh
            big = stats[label, cv2.CC_STAT_AREA] >= 0.01 * sw * sh
            if not keep[label] and high and big:
                colour = lab[labels == label].mean(axis=0)
                keep[label] = float(np.linalg.norm(colour - seed_colour)) < 12
    mask = keep[labels].astype(np.uint8)
    if mask.sum() < 0.04 * sw * sh:
        none = np.zeros((h, w), dtype=np.float32)
        return Sky(none, none, 0.0)
    _fill_clouds(mask, lightness, chroma)
    sky_lightness = float(lightness[mask > 0].mean())
    # Sure sky is the eroded mask; in a band around it a pixel is sky if its colour matches the
    # sky's colour nearby. That keeps thin masts, branches and hair out of the painted sky.
    kernel = np.ones((5, 5), np.uint8)
    core = cv2.erode(mask, kernel).astype(np.float32)
    band = cv2.dilate(mask, np.ones((13, 13), np.uint8)).astype(np.float32)
    weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 8) + 1e-4
    local = cv2.GaussianBlur(small * mask[..., None], (0, 0), 8) / weight[..., None]
    big = (w, h)
    core_up = cv2.resize(cv2.GaussianBlur(core, (0, 0), 0.7), big, interpolation=cv2.INTER_LINEAR)
    band_up = cv2.resize(band, big, interpolation=cv2.INTER_LINEAR)
    local_up = cv2.resize(local, big, interpolation=cv2.INTER_LINEAR)
    diff = np.sqrt(((rgb - local_up) ** 2).sum(axis=2))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    edges = cv2.GaussianBlur(edges, (0, 0), 1.0)
    similar = np.clip((0.16 - diff) / 0.08, 0, 1) * np.clip((0.25 - edges) / 0.15, 0, 1)
    sure = np.clip((core_up - 0.5) * 2 + 0.5, 0, 1)
    refined = np.maximum(sure, band_up * similar)
    # One more pixel over the border: mixed edge pixels would otherwise leave a halo of photo sky.
    refined = cv2.dilate(refined, np.ones((3, 3), np.uint8))
    return Sky(refined.astype(np.float32), sure.astype(np.float32), sky_lightness)


def _fill_clouds(mask: npt.NDArray[Any], lightness: F32, chroma: F32) -> None:
    """Add the photo's own clouds (and birds, specks) to the sky mask, in place: all are repainted.

    A hole counts when it is a speck, when it lies inside the sky and looks like cloud (no more
    colourful than the sky, not much darker), or when it is brighter and paler than the sky and
    floats: sky lies below it in most of its columns. The sun, a balloon or a kite inside the sky
    stay, as do towers, roofs and lighthouses, which stand on the ground with no sky below them.
    """
    sh, sw = mask.shape
    sky = mask > 0
    sky_lightness, sky_chroma = float(lightness[sky].mean()), float(chroma[sky].mean())
    n_holes, hole_labels, stats, _ = cv2.connectedComponentsWithStats(1 - mask, connectivity=4)
    for label in range(1, n_holes):
        x, y, bw, bh, area = stats[label]
        if y + bh >= sh or area > 0.25 * sw * sh:
            continue  # reaches the bottom edge: ground, not sky
        inside = x > 0 and y > 0 and x + bw < sw
        region = hole_labels == label
        hole_lightness, hole_chroma = float(lightness[region].mean()), float(chroma[region].mean())
        paler = hole_chroma <= sky_chroma * 0.8 + 5
        cloudy = paler and hole_lightness >= sky_lightness - 15
        if (inside and area < 0.05 * sw * sh and cloudy) or area < 0.002 * sw * sh:
            mask[region] = 1
            continue
        brighter = hole_lightness >= max(55.0, sky_lightness)
        if brighter and paler and mask[y + bh :, x : x + bw].any(axis=0).mean() >= 0.6:
            mask[region] = 1


def _gradient(h: int, w: int, sky_rows: tuple[int, int], look: Look) -> F32:
    top, bottom = sky_rows
    span = max(1, bottom - top)
    t = np.clip((np.arange(h, dtype=np.float32) - top) / span, 0, 1)
    t = t**0.8  # the zenith colour holds a little longer, as in painted skies
    top_c = np.asarray(look.sky_top, dtype=np.float32)
    hor_c = np.asarray(look.sky_horizon, dtype=np.float32)
    col = top_c[None, :] * (1 - t[:, None]) + hor_c[None, :] * t[:, None]
    return np.broadcast_to(col[:, None, :], (h, w, 3)).astype(np.float32)


def paint_sky(rgb: F32, sky: Sky, look: Look, rng: np.random.Generator) -> F32:
    """The picture with its sky replaced by a painted gradient, clouds (and stars at night)."""
    h, w = sky.mask.shape
    if not sky.found:
        return rgb
    rows = np.flatnonzero(sky.mask.max(axis=1) > 0.5)
    sky_rows = (int(rows[0]), int(rows[-1])) if len(rows) else (0, h // 2)
    painted = _gradient(h, w, sky_rows, look)
    if look.stars:
        painted = painted + star_field(h, w, rng)[..., None] * np.float32(0.75)
    clouds = cloud_layer(h, w, sky_rows, look, rng)
    painted = painted * (1 - clouds[..., 3:4]) + clouds[..., :3]
    m = sky.mask[..., None]
    return np.asarray(rgb * (1 - m) + np.clip(painted, 0, 1) * m, dtype=np.float32)
