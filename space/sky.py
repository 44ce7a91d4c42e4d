"""Find the sky in a photo and paint a new one: a soft gradient with cumulus clouds.

Detection is deliberately conservative: a painted sky over a tower, a mast or a branch is worse
than a photo sky left as it is. A pixel is repainted only where it is sky with high confidence:
smooth, blue or pale, reached from the top edge without crossing an edge, and close in colour to
the sky around it. Everything else (structures, wires, the sun) keeps the painting of the photo.
Clouds and stars are painted only in open sky, away from anything standing in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from space.clouds import cloud_layer, star_field
from space.looks import Look

__all__ = ["Sky", "find_sky", "paint_sky", "thin_things"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)
U8 = npt.NDArray[Any]  # 0/1 masks as uint8

_GRID = 256  # longest side of the grid the sky region is found on
_EDGE = 1.5  # CIELAB lightness change per grid pixel that stops the sky (a mast, a faint horizon)


@dataclass(frozen=True, slots=True)
class Sky:
    mask: F32  # 0..1 at the working size: how much painted sky replaces the picture
    open: F32  # 0..1: open sky, far enough from anything in it for clouds and stars
    local: F32  # the photo's own sky colour near each pixel (RGB 0..1)
    near: F32  # 0..1: pixels partly of sky (seen through a lattice or twigs): painted as sky
    band: F32  # 0..1: close to the sky, whatever the colour (where thin things may stand in it)
    lightness: float  # mean CIELAB lightness (0..100) of the photo's own sky, 0 when none
    rows: tuple[int, int]  # first and last row of the open sky (where clouds may sit)

    @property
    def found(self) -> bool:
        return self.lightness > 0

    @property
    def cover(self) -> F32:
        """0..1: how much of each pixel the painted sky covers (sure sky and partly-sky pixels)."""
        return np.asarray(np.maximum(self.mask, self.near), dtype=np.float32)


def _none(h: int, w: int) -> Sky:
    zero = np.zeros((h, w), dtype=np.float32)
    return Sky(zero, zero, np.zeros((h, w, 3), np.float32), zero, zero, 0.0, (0, 0))


def _candidates(lab: F32) -> U8:
    """Pixels that may be sky: blue or pale and cool, smooth, and on no edge."""
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)
    blue = (b < -4) & (a < 5 - 0.5 * b) & (lightness > 8)  # cyan to deep ultramarine
    # Overcast is neutral or cool (walls are warm); pure white is paper or a studio, not sky.
    pale = (lightness > 68) & (lightness < 97) & (chroma < 12) & (b < 2)
    soft = cv2.GaussianBlur(lightness, (0, 0), 0.7)
    edge = np.hypot(cv2.Sobel(soft, cv2.CV_32F, 1, 0), cv2.Sobel(soft, cv2.CV_32F, 0, 1)) / 8
    mean = cv2.blur(lightness, (3, 3))
    spread = np.sqrt(np.maximum(cv2.blur(lightness * lightness, (3, 3)) - mean * mean, 0))
    smooth = (spread < 2.5) & (edge < _EDGE)
    candidate = ((blue | pale) & smooth).astype(np.uint8)
    # Opening cuts thin bridges (a gap between two branches, a faint shoreline) between regions.
    opened: U8 = cv2.morphologyEx(candidate, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return opened


def _region(candidate: U8, lab: F32) -> U8:
    """The sky region: candidate components that touch the top edge, or high ones of its colour."""
    sh, sw = candidate.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=4)
    keep = np.zeros(count, dtype=bool)
    for label in set(np.unique(labels[0, :]).tolist()) - {0}:
        keep[label] = stats[label, cv2.CC_STAT_AREA] >= 0.02 * sw * sh
    if keep.any():
        # Sky cut off from the top edge (by a tower, branches) joins if it is high and looks like
        # the sky at the same height (a sky is a gradient: compare row for row, not with its mean).
        # Small pieces join too: left out, they would stay photo-sky blocks.
        sky = keep[labels]
        sums = (lab * sky[..., None]).sum(axis=1)
        counts = sky.sum(axis=1)
        for label in range(1, count):
            x, y, bw, bh, area = (int(v) for v in stats[label])
            if keep[label] or y >= 0.4 * sh or area < 0.005 * sw * sh:
                continue
            rows = slice(y, y + bh)
            if counts[rows].sum() == 0:
                continue
            reference = sums[rows].sum(axis=0) / counts[rows].sum()
            colour = lab[rows, x : x + bw][labels[rows, x : x + bw] == label].mean(axis=0)
            # Same hue and chroma, lightness within half: vignetting darkens a sky's corners.
            hue_chroma = float(np.linalg.norm(colour[1:] - reference[1:]))
            keep[label] = hue_chroma < 10 and abs(float(colour[0] - reference[0])) < 0.5 * float(reference[0])
    region: U8 = keep[labels].astype(np.uint8)
    return region


def find_sky(rgb: F32) -> Sky:
    """The sky of a photo (0..1 RGB at the working size): where to paint, and where it is open."""
    h, w = rgb.shape[:2]
    scale = min(1.0, _GRID / max(h, w))
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    candidate = _candidates(lab)
    mask = _region(candidate, lab)
    if mask.sum() < 0.04 * sw * sh:
        return _none(h, w)
    lightness = lab[..., 0]
    _fill_clouds(mask, lightness, np.hypot(lab[..., 1], lab[..., 2]))
    sky_lightness = max(float(lightness[mask > 0].mean()), 1e-3)
    # The sky's own colour near each pixel (normalized convolution): a gradient sky stays matched.
    weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 10) + 1e-4
    local = cv2.GaussianBlur(small * mask[..., None], (0, 0), 10) / weight[..., None]
    # Open sky: far from anything that is not sky; only there clouds and stars are painted.
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    open_ = np.clip(distance / (0.035 * max(sw, sh)) - 0.3, 0, 1).astype(np.float32)
    # Feathered region: one grid pixel in from its border, blurred, so no grid blocks show.
    inner = cv2.GaussianBlur(cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(np.float32), (0, 0), 1.0)
    big = (w, h)
    inner_up = cv2.resize(inner, big, interpolation=cv2.INTER_LINEAR)
    local_up = cv2.resize(local, big, interpolation=cv2.INTER_LINEAR)
    support = cv2.resize(weight, big, interpolation=cv2.INTER_LINEAR)
    # At the working size a pixel is repainted only if its colour matches the sky beside it:
    # masts, wires and twigs thinner than a grid pixel differ from the sky and are kept.
    diff = np.sqrt(((rgb - local_up) ** 2).sum(axis=2)) / _tolerance(local_up)
    similar = np.clip((0.11 - diff) / 0.05, 0, 1)
    # Small gaps between branches near the sky take the painted sky's colour (no clouds), so they
    # match the sky beside them instead of staying photo-blue blocks.
    near = cv2.dilate(inner_up, np.ones((9, 9), np.uint8))
    gaps = similar * np.clip((support - 0.15) * 4, 0, 1) * near
    alpha = np.maximum(np.clip((inner_up - 0.5) * 2 + 0.5, 0, 1) * similar, 0.85 * gaps)
    open_up = cv2.resize(open_, big, interpolation=cv2.INTER_LINEAR) * similar
    # Pixels that mix sky and a thin thing (a lattice tower, a tree crown's rim) at this size,
    # within reach of the sky (a dense crown's middle too, but not the field below the horizon).
    reach = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 20)
    band = np.clip((cv2.resize(reach, big, interpolation=cv2.INTER_LINEAR) - 0.02) * 8, 0, 1)
    # ...but not over a smooth sky-coloured region that an edge cut off from the sky (a lake
    # under a faint horizon): that is not sky, even with the sky's colour.
    band *= 1 - cv2.resize(_cut_off(candidate, mask), big, interpolation=cv2.INTER_LINEAR)
    mixed = np.clip((0.4 - diff) / 0.2, 0, 1) * band
    rows = np.flatnonzero(open_.max(axis=1) > 0.5)
    if len(rows) == 0:
        rows = np.flatnonzero(mask.max(axis=1) > 0)
    # Clouds sit in the upper 90 % of the sky: not down on a hazy horizon or a lake.
    area_rows = np.cumsum(mask.sum(axis=1))
    low = int(np.searchsorted(area_rows, 0.9 * area_rows[-1]))
    top, bottom = int(rows[0]), max(int(rows[0]) + 1, min(int(rows[-1]), low))
    sky_rows = (round(top / scale), round(bottom / scale))
    return Sky(
        alpha.astype(np.float32),
        open_up.astype(np.float32),
        local_up.astype(np.float32),
        mixed.astype(np.float32),
        band.astype(np.float32),
        sky_lightness,
        sky_rows,
    )


def _fill_clouds(mask: npt.NDArray[Any], lightness: F32, chroma: F32) -> None:
    """Add the photo's own clouds (and birds, specks) to the sky mask, in place: all are repainted.

    A hole counts when it is a speck, when it lies inside the sky and looks like cloud (no more
    colourful than the sky, not much darker), or when it is brighter and paler than the sky and
    floats: sky lies below it in most of its columns. The sun, a balloon or a kite inside the sky
    stay, as do towers, roofs and lighthouses, which stand on the ground with no sky below them.
    A hole with a dark or strong edge inside it is a thing, not a cloud, and stays too.
    """
    sh, sw = mask.shape
    sky = mask > 0
    sky_lightness, sky_chroma = float(lightness[sky].mean()), float(chroma[sky].mean())
    n_holes, hole_labels, stats, _ = cv2.connectedComponentsWithStats(1 - mask, connectivity=4)
    for label in range(1, n_holes):
        x, y, bw, bh, area = (int(v) for v in stats[label])
        if y + bh >= sh or area > 0.25 * sw * sh:
            continue  # reaches the bottom edge: ground, not sky
        box = (slice(y, y + bh), slice(x, x + bw))
        region = hole_labels[box] == label
        hole_lightness = float(lightness[box][region].mean())
        hole_chroma = float(chroma[box][region].mean())
        values = lightness[box][region]
        k = len(values) // 20
        darkest = float(np.partition(values, k)[k])  # 5th percentile: a wire across a cloud is not a roof
        paler = hole_chroma <= sky_chroma * 0.8 + 5
        solid = darkest < sky_lightness - 20  # something dark in it: a roof, a bird on a wire
        cloudy = paler and hole_lightness >= sky_lightness - 12 and not solid
        inside = x > 0 and y > 0 and x + bw < sw
        if (inside and area < 0.05 * sw * sh and cloudy) or (area < 0.0005 * sw * sh and not solid):
            mask[box][region] = 1
            continue
        brighter = hole_lightness >= max(55.0, sky_lightness) and not solid
        if brighter and paler and mask[y + bh :, x : x + bw].any(axis=0).mean() >= 0.6:
            mask[box][region] = 1
    _fill_floating(mask, lightness, chroma, sky_lightness, sky_chroma)


def _fill_floating(mask: U8, lightness: F32, chroma: F32, sky_lightness: float, sky_chroma: float) -> None:
    """Cloud pixels the hole test cannot see, in place: a cloud that touches a mast or a tower
    is one hole with the ground. Pixel by pixel: as bright as the sky, paler, sky below it in
    its column, and touching the sky. A wire across the cloud is dark and stays out."""
    sky_below = np.flipud(np.maximum.accumulate(np.flipud(mask), axis=0))
    sky_below = np.vstack([sky_below[1:], np.zeros_like(sky_below[:1])])
    cloud = (
        (lightness >= sky_lightness - 8) & (chroma <= sky_chroma * 0.8 + 5) & (sky_below > 0) & (mask == 0)
    )
    count, labels = cv2.connectedComponents(cloud.astype(np.uint8), connectivity=4)
    if count <= 1:
        return
    touching = np.unique(labels[(cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0) & cloud])
    join = np.zeros(count, dtype=bool)
    join[touching] = True
    join[0] = False
    mask[join[labels]] = 1


def _cut_off(candidate: U8, mask: U8) -> F32:
    """Large smooth sky-coloured regions outside the sky (a lake, a blue wall), softened."""
    outside = (candidate & (1 - mask)).astype(np.uint8)
    _count, labels, stats, _ = cv2.connectedComponentsWithStats(outside, connectivity=4)
    large = stats[:, cv2.CC_STAT_AREA] >= 0.004 * mask.size
    large[0] = False
    region = cv2.dilate(large[labels].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    return np.asarray(cv2.GaussianBlur(region, (0, 0), 1.5), dtype=np.float32)


def _tolerance(local: F32) -> F32:
    """How far (RGB distance) a colour may be from the sky beside it and still match: a night
    sky is dark, and so is the field under it, so colours must be closer there than by day."""
    gray = cv2.cvtColor(local, cv2.COLOR_RGB2GRAY)
    return np.asarray(np.clip(gray / np.float32(0.6), 0.5, 1.0), dtype=np.float32)


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
    """The picture with its sky replaced by a painted gradient, clouds (and stars at night).

    Pixels that are partly sky (seen through a lattice, between twigs) take the painted sky too:
    at half size they are a blur of both, which would stand out as a pale block. The thin things
    themselves are drawn back at full size from the photo (`stylizer._against_sky`).
    """
    h, w = sky.mask.shape
    if not sky.found:
        return rgb
    gradient = _gradient(h, w, sky.rows, look)
    is_open = sky.open[..., None]
    painted = gradient
    if look.stars:
        painted = painted + (star_field(h, w, rng) * sky.open)[..., None] * np.float32(0.75)
    clouds = cloud_layer(h, w, sky.rows, look, rng)
    cover = clouds[..., 3:4] * is_open
    painted = painted * (1 - cover) + clouds[..., :3] * is_open
    m = sky.cover[..., None]
    return np.asarray(np.clip(rgb * (1 - m) + painted * m, 0, 1), dtype=np.float32)


def thin_things(sky: Sky, look: Look, photo8: U8, painted_gray: F32) -> tuple[slice, F32, F32, F32]:
    """At full size, near the sky: the rows concerned, and there the sky alpha, the painted sky
    colour and the ink of thin dark things.

    The colour layer is painted at half size, where a one-pixel wire or twig is a blur of sky
    and wood. Here each full-size pixel of `photo8` (RGB uint8) is either sky-like (it takes the
    painted gradient: no pale photo-sky blocks between branches) or darker than the sky beside
    it and much darker than the half-size painting there before grading (`painted_gray`, full
    size), which is what a thin thing lost at half size looks like (it is drawn as a dark line,
    as a painter would). A roof or a tree crown is as dark there as in the photo and is left alone.
    Only the rows within reach of the sky are computed.
    """
    h, w = photo8.shape[:2]
    work_rows = np.flatnonzero(sky.band.max(axis=1) > 0) if sky.found else np.zeros(0, np.intp)
    if len(work_rows) == 0:
        zero = np.zeros((0, w), np.float32)
        return slice(0, 0), zero, np.zeros((0, w, 3), np.float32), zero
    ratio = h / sky.band.shape[0]
    rows = slice(max(0, int(work_rows[0] * ratio) - 2), min(h, int((work_rows[-1] + 1) * ratio) + 2))
    big = (w, h)
    band = cv2.resize(sky.band, big, interpolation=cv2.INTER_LINEAR)[rows]
    local = cv2.resize(sky.local, big, interpolation=cv2.INTER_LINEAR)[rows]
    gradient = _gradient(sky.mask.shape[0], 1, sky.rows, look)
    painted = cv2.resize(gradient, big, interpolation=cv2.INTER_LINEAR)[rows]
    photo = photo8[rows].astype(np.float32) / np.float32(255)
    soft = cv2.GaussianBlur(photo, (0, 0), 0.7)  # sensor noise is not a thing in the sky
    diff = np.sqrt(((soft - local) ** 2).sum(axis=2)) / _tolerance(local)
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    sky_gray = cv2.cvtColor(local, cv2.COLOR_RGB2GRAY)
    # Relative darkness: a mast is as plain against a night sky as against a bright one.
    darker = np.clip((1 - gray / np.maximum(sky_gray, np.float32(0.05)) - np.float32(0.12)) * 4, 0, 1)
    # Looser than at half size (the sky beside a dense crown mixes blue sky and cloud): here the
    # question is only "a gap or a twig", and twigs are darker.
    alpha = band * np.clip((0.22 - diff) / 0.08, 0, 1) * (1 - darker)
    base = np.maximum(painted_gray[rows], np.float32(0.05))
    lost = np.clip((1 - gray / base - np.float32(0.1)) * 4, 0, 1)
    return rows, alpha, painted, np.asarray(band * darker * lost, dtype=np.float32)
