"""More procedural photos: thin things against the sky, a city at night, a room, a group.

Like space/samples.py they are photo-like, not art (noise, fine texture, hard small details), a
pure function of size and seed. `structures` also returns where each thin thing was drawn, so the
tests can check that the painting keeps masts, wires, lattice towers and branches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from space.samples import colour, fractal_noise, photo_finish

__all__ = ["SCENES", "Scene", "city_night", "group", "interior", "structures"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)


@dataclass(frozen=True, slots=True)
class Scene:
    image: Image.Image
    parts: dict[str, npt.NDArray[np.bool_]]  # where each thin thing was drawn


def _line(img: F32, mask: F32, p: tuple[float, float], q: tuple[float, float], ink: F32, width: int) -> None:
    """A line drawn into the picture and into the mask of its part."""
    a, b = (round(p[0]), round(p[1])), (round(q[0]), round(q[1]))
    cv2.line(img, a, b, ink.tolist(), width, cv2.LINE_AA)
    cv2.line(mask, a, b, 1.0, width, cv2.LINE_AA)


def _branch(
    img: F32,
    mask: F32,
    rng: np.random.Generator,
    p: tuple[float, float],
    angle: float,
    length: float,
    width: float,
    ink: F32,
) -> None:
    q = (p[0] + np.cos(angle) * length, p[1] - np.sin(angle) * length)
    _line(img, mask, p, q, ink, max(1, round(width)))
    if length < 7:
        return
    for turn in (-1, 1) if rng.random() < 0.7 else (-1, 0, 1):
        spread = rng.uniform(0.3, 0.6) * turn
        _branch(img, mask, rng, q, angle + spread, length * rng.uniform(0.62, 0.78), width * 0.68, ink)


def structures(width: int = 768, height: int = 512, seed: int = 5, *, night: bool = False) -> Scene:
    """A mast, a lattice tower, a wire and a bare tree against a day (or night) sky, over a field."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    zenith, horizon = (
        ((0.05, 0.09, 0.22), (0.16, 0.24, 0.42)) if night else ((0.28, 0.5, 0.85), (0.72, 0.83, 0.95))
    )
    img = np.broadcast_to(colour(*zenith) * (1 - y) + colour(*horizon) * y, (h, w, 3)).copy()
    if not night:
        clouds = np.clip((fractal_noise(h, w, rng, 6, 3) - 0.6) * 3.0, 0, 1)[..., None]
        img = img * (1 - clouds) + np.float32(0.93) * clouds
    dark = colour(0.03, 0.03, 0.04) if night else colour(0.16, 0.14, 0.13)
    ground = int(h * 0.8)
    masks = {name: np.zeros((h, w), np.float32) for name in ("mast", "tower", "wire", "branches")}
    s = min(w, h) / 512
    # A mast: a thin pole with a cross-arm.
    mx = w * 0.12
    _line(img, masks["mast"], (mx, h * 0.12), (mx, ground), dark, max(2, round(3 * s)))
    _line(img, masks["mast"], (mx - 18 * s, h * 0.16), (mx + 18 * s, h * 0.16), dark, max(1, round(2 * s)))
    # A lattice tower: two legs narrowing upwards, cross braces between them.
    tx, base_half, top_half, top = w * 0.36, w * 0.045, w * 0.012, h * 0.08
    legs = [((tx + side * base_half, ground), (tx + side * top_half, top)) for side in (-1, 1)]
    for p, q in legs:
        _line(img, masks["tower"], p, q, dark, max(2, round(2 * s)))
    for i in range(9):
        t0, t1 = i / 9, (i + 1) / 9
        y0, y1 = ground + (top - ground) * t0, ground + (top - ground) * t1
        half0 = base_half + (top_half - base_half) * t0
        half1 = base_half + (top_half - base_half) * t1
        _line(img, masks["tower"], (tx - half0, y0), (tx + half1, y1), dark, max(1, round(s)))
        _line(img, masks["tower"], (tx + half0, y0), (tx - half1, y1), dark, max(1, round(s)))
    # A wire sagging from the mast to the tower.
    xs = np.linspace(mx, tx - top_half * 3, 40)
    u = (xs - xs[0]) / (xs[-1] - xs[0])
    ys = h * 0.17 + (h * 0.16 - h * 0.17) * u + h * 0.08 * 4 * u * (1 - u)
    for i in range(len(xs) - 1):
        _line(img, masks["wire"], (xs[i], ys[i]), (xs[i + 1], ys[i + 1]), dark, max(1, round(s)))
    # A bare tree: branches of every thickness, down to single pixels, with sky between them.
    _branch(img, masks["branches"], rng, (w * 0.74, ground), np.pi / 2, h * 0.2, 9 * s, dark)
    field = fractal_noise(h - ground, w, rng, 6, 10)[..., None]
    field_colour = colour(0.05, 0.07, 0.05) if night else colour(0.28, 0.42, 0.18)
    img[ground:] = field_colour * (0.7 + 0.5 * field)
    if night:
        for lx in (0.55, 0.9):  # two lamps on the field
            cv2.circle(
                img, (int(w * lx), ground + h // 20), max(2, round(4 * s)), (1.0, 0.85, 0.5), -1, cv2.LINE_AA
            )
    parts = {name: mask > 0.5 for name, mask in masks.items()}
    parts["branches"] &= ~parts["tower"]
    return Scene(photo_finish(img, rng), parts)


def city_night(width: int = 768, height: int = 576, seed: int = 6) -> Image.Image:
    """Buildings against a navy night sky, lit windows, street lamps, a wet street."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(colour(0.04, 0.06, 0.16) * (1 - y) + colour(0.22, 0.18, 0.3) * y, (h, w, 3)).copy()
    street = int(h * 0.82)
    x = 0
    while x < w:
        bw = int(rng.uniform(0.08, 0.18) * w)
        top = int(rng.uniform(0.2, 0.6) * h)
        tone = rng.uniform(0.06, 0.12)
        img[top:street, x : x + bw] = colour(tone, tone * 0.95, tone * 1.2)
        for wy in range(top + 8, street - 14, 18):
            for wx in range(x + 6, x + bw - 10, 14):
                if rng.random() < 0.45:
                    glow = rng.uniform(0.75, 1.0)
                    img[wy : wy + 9, wx : wx + 7] = colour(1.0, 0.78, 0.42) * glow
        x += bw + int(rng.uniform(0, 0.02) * w)
    wet = fractal_noise(h - street, w, rng, 6, 12)[..., None]
    img[street:] = colour(0.08, 0.08, 0.12) * (0.7 + 0.6 * wet)
    for lx in np.linspace(0.1, 0.9, 4):
        px = int(lx * w)
        cv2.line(img, (px, street + 10), (px, int(h * 0.6)), (0.05, 0.05, 0.06), 3, cv2.LINE_AA)
        cv2.circle(img, (px, int(h * 0.6)), 6, (1.0, 0.9, 0.6), -1, cv2.LINE_AA)
        img[street:, px - 4 : px + 4] += (
            colour(0.35, 0.28, 0.12) * np.linspace(0.8, 0.1, h - street)[:, None, None]
        )
    return photo_finish(np.clip(img, 0, 1), rng)


def interior(width: int = 768, height: int = 576, seed: int = 7) -> Image.Image:
    """A room: lit wall, a window onto sky and a tree, wooden floor, table, teapot and lamp."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    xs = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    wall_light = 1.05 - 0.35 * np.abs(xs - 0.35)
    img = np.broadcast_to(colour(0.86, 0.76, 0.6) * wall_light, (h, w, 3)).copy()
    img *= 0.95 + 0.08 * fractal_noise(h, w, rng, 5, 6)[..., None]
    floor = int(h * 0.7)
    planks = fractal_noise(h - floor, w, rng, 7, 16)[..., None]
    img[floor:] = colour(0.55, 0.36, 0.2) * (0.75 + 0.4 * planks)
    for px in range(0, w, max(8, w // 10)):
        cv2.line(img, (px, floor), (px - (px - w // 2) // 3, h), (0.3, 0.18, 0.1), 2, cv2.LINE_AA)
    # The window: sky and a green tree crown behind a white frame.
    x0, y0, x1, y1 = int(w * 0.12), int(h * 0.12), int(w * 0.42), int(h * 0.55)
    yy = np.linspace(0, 1, y1 - y0, dtype=np.float32)[:, None, None]
    img[y0:y1, x0:x1] = colour(0.45, 0.68, 0.95) * (1 - yy) + colour(0.8, 0.9, 0.98) * yy
    leaves = fractal_noise(y1 - y0, x1 - x0, rng, 6, 10)
    crown = (leaves > 0.55)[..., None] & (yy > 0.35)
    img[y0:y1, x0:x1] = np.where(
        crown, colour(0.18, 0.42, 0.16) * (0.6 + leaves[..., None]), img[y0:y1, x0:x1]
    )
    cv2.rectangle(img, (x0, y0), (x1, y1), (0.96, 0.95, 0.92), max(4, w // 90))
    cv2.line(img, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), (0.96, 0.95, 0.92), max(3, w // 120))
    # A table with a teapot and a cup, and a lamp.
    cv2.rectangle(img, (int(w * 0.5), int(h * 0.58)), (int(w * 0.9), int(h * 0.62)), (0.42, 0.25, 0.14), -1)
    for lx in (0.53, 0.87):
        cv2.rectangle(
            img, (int(w * lx), int(h * 0.62)), (int(w * lx) + 8, int(h * 0.88)), (0.35, 0.2, 0.1), -1
        )
    cv2.ellipse(
        img,
        (int(w * 0.64), int(h * 0.53)),
        (int(w * 0.05), int(h * 0.05)),
        0,
        0,
        360,
        (0.2, 0.45, 0.5),
        -1,
        cv2.LINE_AA,
    )
    cv2.ellipse(
        img,
        (int(w * 0.77), int(h * 0.56)),
        (int(w * 0.02), int(h * 0.02)),
        0,
        0,
        360,
        (0.85, 0.3, 0.25),
        -1,
        cv2.LINE_AA,
    )
    cv2.line(
        img, (int(w * 0.82), int(h * 0.58)), (int(w * 0.82), int(h * 0.3)), (0.2, 0.15, 0.1), 3, cv2.LINE_AA
    )
    shade = np.array(
        [[w * 0.77, h * 0.3], [w * 0.87, h * 0.3], [w * 0.85, h * 0.22], [w * 0.79, h * 0.22]], np.int32
    )
    cv2.fillPoly(img, [shade], (1.0, 0.92, 0.7), cv2.LINE_AA)
    return photo_finish(np.clip(img, 0, 1), rng)


def _person(
    img: F32, rng: np.random.Generator, cx: float, cy: float, r: float, skin: F32, hair: F32, shirt: F32
) -> None:
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    body = ((xs - cx) / (r * 1.7)) ** 2 + ((ys - cy - r * 2.6) / (r * 1.6)) ** 2 < 1
    img[body] = shirt * (0.85 + 0.2 * rng.random())
    hair_mask = ((xs - cx) / (r * 1.12)) ** 2 + ((ys - cy + r * 0.12) / (r * 1.15)) ** 2 < 1
    img[hair_mask] = hair
    face = ((xs - cx) / (r * 0.86)) ** 2 + ((ys - cy - r * 0.1) / r) ** 2 < 1
    lit = np.clip(1.05 - 0.25 * (xs - cx) / r, 0.7, 1.1)[..., None]
    img[:] = np.where(face[..., None], skin * lit, img)
    for side in (-1, 1):
        ex, ey = int(cx + side * r * 0.34), int(cy)
        cv2.ellipse(
            img,
            (ex, ey),
            (max(2, int(r * 0.15)), max(1, int(r * 0.08))),
            0,
            0,
            360,
            (0.95, 0.93, 0.9),
            -1,
            cv2.LINE_AA,
        )
        cv2.circle(img, (ex, ey), max(1, int(r * 0.07)), (0.15, 0.1, 0.06), -1, cv2.LINE_AA)
    cv2.ellipse(
        img,
        (int(cx), int(cy + r * 0.5)),
        (int(r * 0.25), int(r * 0.08)),
        0,
        0,
        180,
        (0.7, 0.3, 0.3),
        -1,
        cv2.LINE_AA,
    )


def group(width: int = 768, height: int = 576, seed: int = 8) -> Image.Image:
    """Four people side by side in a park: faces, hair and shirts of different colours."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    bokeh = fractal_noise(h, w, rng, 3, 4)[..., None]
    img = colour(0.4, 0.55, 0.32) * (0.7 + 0.6 * bokeh)
    img[: int(h * 0.3)] = img[: int(h * 0.3)] * 0.5 + colour(0.75, 0.85, 0.95) * 0.5
    people = [
        (0.2, (0.9, 0.7, 0.58), (0.15, 0.1, 0.07), (0.8, 0.3, 0.25)),
        (0.4, (0.62, 0.43, 0.32), (0.08, 0.06, 0.05), (0.95, 0.85, 0.3)),
        (0.6, (0.93, 0.76, 0.64), (0.7, 0.5, 0.25), (0.25, 0.4, 0.7)),
        (0.8, (0.78, 0.56, 0.42), (0.3, 0.2, 0.12), (0.9, 0.9, 0.88)),
    ]
    for i, (px, skin, hair, shirt) in enumerate(people):
        _person(
            img,
            rng,
            w * px,
            h * (0.42 + 0.04 * (i % 2)),
            h * 0.1,
            colour(*skin),
            colour(*hair),
            colour(*shirt),
        )
    return photo_finish(np.clip(img, 0, 1), rng)


SCENES: dict[str, Callable[..., Image.Image]] = {
    "city at night": city_night,
    "interior": interior,
    "group": group,
    "masts and branches": lambda **kw: structures(**kw).image,
}
