"""The offline stylizer: a photo in, a Ghibli-like painting out, deterministic per seed.

A pure function of (image, size, seed, prompt), usable without Gradio; docs/stylizer.md walks
through the steps with a before/after sheet. Only numpy, OpenCV and Pillow: no weights, no network.
Colour work runs at half size (it is smooth by design); lines and texture run at full size (they
carry the detail that keeps faces recognizable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from space.brush import Flow, drag, flow_field, stroke_texture
from space.linework import line_art, paper_texture
from space.looks import Look, look_for_prompt
from space.palette import fit_palette, grade, levels, quantize
from space.sky import Sky, find_sky, paint_sky, thin_things
from space.weather import dapple, lamp_glow, rain

__all__ = ["STEPS", "cover_box", "fast_transform", "prepare", "stylize"]

F32 = npt.NDArray[Any]  # float32 pixels in 0..1 (OpenCV's stubs type its results loosely)

# Named steps, in order; the Gradio app reports them as progress.
STEPS = ("preparing", "smoothing", "palette", "sky", "line art", "texture")

_NIGHT_SKY = 28.0  # CIELAB lightness under which a photo's sky counts as a night sky
_ORIENTATION = 0x0112  # EXIF tag
_BRUSH_SEED = 0x6B1B  # the brush marks' noise is the same for every seed
_FOCUS_Y = 0.4  # where a vertical cover-crop is centred: heads sit above the middle of photos


def cover_box(size: tuple[int, int], width: int, height: int) -> tuple[float, float, float, float]:
    """The largest box of the target's aspect ratio inside `size`, centred (a bit high when tall)."""
    iw, ih = size
    scale = max(width / iw, height / ih)
    cw, ch = width / scale, height / scale
    left = (iw - cw) / 2
    top = (ih - ch) * _FOCUS_Y
    return (left, top, left + cw, top + ch)


def prepare(image: Image.Image, width: int, height: int) -> Image.Image:
    """RGB at exactly width x height: EXIF-upright, cover-cropped (never stretched), alpha on white.

    Crop first, then one OpenCV resize (area averaging when shrinking, bicubic when enlarging):
    a 50-megapixel upload costs little more than a small one.
    """
    if image.getexif().get(_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    left, top, right, bottom = cover_box(image.size, width, height)
    box = (int(left), int(top), max(int(left) + 1, round(right)), max(int(top) + 1, round(bottom)))
    pixels = np.asarray(image.crop(box).convert("RGB"))
    shrink = pixels.shape[1] >= width and pixels.shape[0] >= height
    resized = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return Image.fromarray(resized, "RGB")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)


def _smooth(small: npt.NDArray[Any], scale: float) -> F32:
    """Edge-preserving smoothing (two bilateral passes): flat regions, crisp borders between them."""
    space = max(2.0, 3.5 * scale)
    for colour in (35, 50):
        small = cv2.bilateralFilter(small, 0, colour, space)
    return small.astype(np.float32) / 255


def _bleed(flat: F32, strength: float) -> F32:
    """Watercolour edge darkening: pigment pools where two washes meet."""
    gray = cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY)
    edges = np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3))
    edges = cv2.GaussianBlur(np.clip(edges * 4, 0, 1), (0, 0), 1.5)
    return np.asarray(1 - 0.18 * strength * edges, dtype=np.float32)


def _skin(lab: F32, photo_lab: F32) -> F32:
    """Soft skin mask: a warm hue between about 30 and 75 degrees with mild chroma (in the smoothed
    picture's CIELAB), on a surface the photo shows smooth. Fur and wood grain share skin's hue but
    not its smoothness, and painted in two flat tones they would look washed out."""
    lightness, a, b = cv2.split(lab)
    ratio = b / np.maximum(a, np.float32(0.5))  # tan(hue) for a > 0
    tone = np.clip((ratio - np.float32(0.55)) * 4, 0, 1) * np.clip((np.float32(4.0) - ratio), 0, 1)
    chroma = np.abs(a) + np.abs(b)
    tone *= np.clip((chroma - 10) / 8, 0, 1) * np.clip((75 - chroma) / 15, 0, 1)
    tone *= np.clip((lightness - 25) / 10, 0, 1) * (a > 2)
    photo_l = photo_lab[..., 0]
    mean = cv2.blur(photo_l, (5, 5))
    spread = np.sqrt(np.maximum(cv2.blur(photo_l * photo_l, (5, 5)) - mean * mean, 0))
    tone *= np.clip(1 - (spread - np.float32(3)) / np.float32(5), 0, 1)
    return cv2.GaussianBlur(tone.astype(np.float32), (0, 0), 2)


def _detail(lab: F32) -> F32:
    """0.5 on soft gradients (bokeh, walls, haze) up to 1 where there is texture or an edge.

    Quantizing a soft gradient cuts it into blotches ("camouflage"); keeping the smoothed colour
    there paints it as a wash, while textured areas still become flat regions of palette colour.
    """
    lightness = lab[..., 0]
    mean = cv2.blur(lightness, (9, 9))
    spread = np.sqrt(np.maximum(cv2.blur(lightness * lightness, (9, 9)) - mean * mean, 0))
    return np.clip(spread / 5, 0.5, 1.0).astype(np.float32)


def _glow(rgb: F32, scale: float) -> F32:
    """Soft bloom around the brightest areas: the luminous, sunlit feel of painted light."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    bright = np.clip((luma - np.float32(0.8)) * 4, 0, 1)
    halo = cv2.GaussianBlur(bright, (0, 0), max(2.0, 10 * scale))
    return np.asarray(rgb + (1 - rgb) * (halo * np.float32(0.25))[..., None], dtype=np.float32)


def _paint_regions(smooth: F32, lab: F32, skin: F32, look: Look, scale: float) -> tuple[F32, F32, Flow]:
    """Flat painted regions (palette colours mixed with the smooth shading), brushed along the forms.

    Returns the painted regions, the plain palette picture (for watercolour bleed) and the flow.
    """
    centres = fit_palette(cv2.resize(lab, (48, 48), interpolation=cv2.INTER_AREA), colours=14)
    flat, _labels = quantize(smooth, centres)
    # Painted, not cut out: region borders get a short soft transition, and skin keeps more of
    # its smooth shading (posterized faces look blotchy, Ghibli faces are one tone and a shadow).
    flat = cv2.GaussianBlur(flat, (0, 0), max(0.8, 2.4 * scale))
    flatness = look.flatness * ((1 - 0.5 * skin) * _detail(lab))[..., None]
    mixed = flat * flatness + smooth * (1 - flatness)
    # The brush follows the forms; on skin it barely moves (a face is not a field of grass).
    flow = flow_field(cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY), scale)
    mixed = drag(mixed, flow, np.clip(0.6 * look.strokes * (1 - 0.7 * skin), 0, 1), scale)
    return _cel_skin(mixed, skin), flat, flow


def _cel_skin(rgb: F32, skin: F32) -> F32:
    """Skin in two painted tones, lit and shadow, with a soft step between them (anime shading).

    A photo's face has a continuous roll-off of light and every pore; a painted face has one
    tone, one shadow shape and a short blend. The step sits a little below the skin's median
    lightness, so most of a face is the lit tone.
    """
    weight = float(skin.sum())
    if weight < 0.002 * skin.size:
        return rgb
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lightness = lab[..., 0]
    median = float((lightness * skin).sum() / weight)
    step = np.clip((lightness - np.float32(median - 11)) / np.float32(12), 0, 1)
    step = step * step * (3 - 2 * step)
    cel = np.float32(median - 12) + step * np.float32(14)
    # Keep a third of the photo's own shading: the step alone would look cut out.
    lab[..., 0] = lightness + (cel + (lightness - cel) * np.float32(0.45) - lightness) * skin
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), dtype=np.float32)


def _sky_at_full_size(
    colour: F32, sky: Sky, look: Look, rgb8: npt.NDArray[Any], mixed: F32
) -> tuple[F32, slice, F32]:
    """Gaps between twigs get the painted sky in `colour` (in place); returns how much of each
    pixel is sky, and the rows and ink of thin dark things against it (see `sky.thin_things`)."""
    height, width = colour.shape[:2]
    mixed_gray = cv2.resize(cv2.cvtColor(mixed, cv2.COLOR_RGB2GRAY), (width, height))
    rows, gaps, sky_colour, structure = thin_things(sky, look, rgb8, mixed_gray)
    sky_full: F32 = cv2.resize(sky.cover, (width, height), interpolation=cv2.INTER_LINEAR)
    gaps *= 1 - sky_full[rows]  # only what the half-size sky missed: its clouds stay
    colour[rows] += (sky_colour - colour[rows]) * gaps[..., None]
    sky_full[rows] += gaps
    # A thin thing has sky within a few pixels on some side (a wrinkle or a whisker does not).
    if structure.size:
        structure *= np.clip(cv2.dilate(sky_full[rows], np.ones((5, 5), np.uint8)) * 2, 0, 1)
    return sky_full, rows, structure


def _look(prompt: str, sky: Sky) -> Look:
    """The prompt's look; a photo with a dark sky stays a night picture whatever the prompt says.

    Painting a day or sunset sky over a night photo would put daylight above lit windows and
    street lamps: the scene would no longer hold together. Rain, forest or watercolour still apply.
    """
    look = look_for_prompt(prompt)
    if sky.found and sky.lightness < _NIGHT_SKY and "night" not in look.name.split("+"):
        look = look_for_prompt(prompt + " night")
    return look


def stylize(
    image: Image.Image,
    width: int,
    height: int,
    seed: int,
    prompt: str = "",
    on_step: Callable[[str], None] | None = None,
) -> Image.Image:
    """Paint `image` at width x height in the look the prompt's keywords ask for.

    The same arguments give the same bytes; the seed moves clouds, stars, rain and paper grain,
    never the painting of the photo itself.
    """
    step = on_step or (lambda _name: None)
    rng = _rng(seed)
    step(STEPS[0])
    rgb8 = np.asarray(prepare(image, width, height))
    scale = min(width, height) / 768
    work = (max(1, width // 2), max(1, height // 2))  # colour is smooth: half size is enough
    photo = cv2.resize(rgb8, work, interpolation=cv2.INTER_AREA)
    photo_f = photo.astype(np.float32) / 255

    step(STEPS[1])
    smooth = _smooth(photo, scale / 2)

    step(STEPS[2])
    sky = find_sky(photo_f)
    look = _look(prompt, sky)
    lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB)
    photo_lab = cv2.cvtColor(photo_f, cv2.COLOR_RGB2LAB)
    skin = _skin(lab, photo_lab)
    mixed, flat, flow = _paint_regions(smooth, lab, skin, look, scale / 2)
    tones = levels(photo_lab)
    base = grade(mixed, look, tones)
    if look.wet > 0:
        base = cv2.GaussianBlur(base, (0, 0), look.wet * scale / 2)
    if look.bleed > 0:
        base = base * _bleed(flat, look.bleed)[..., None]

    step(STEPS[3])
    painted = paint_sky(base, sky, look, rng)
    painted = dapple(painted, look.dapple, (1 - sky.mask) * (1 - skin), rng)
    painted = lamp_glow(painted, photo_f, look.lamps, scale / 2)
    painted = _glow(painted, scale / 2)
    colour: F32 = cv2.resize(painted, (width, height), interpolation=cv2.INTER_LINEAR)
    sky_full, rows, structure = _sky_at_full_size(colour, sky, look, rgb8, mixed)
    smooth_gray = cv2.resize(cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY), (width, height))

    step(STEPS[4])
    # Lines from a mix of the smoothed picture (shapes) and the photo (eyes, small details).
    photo_gray = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(0.4 / 255)
    ink: F32 = line_art(smooth_gray * np.float32(0.6) + photo_gray, scale)
    # Few lines inside a face: wrinkles and pores drawn in ink are what makes a photo filter.
    skin_full = cv2.resize(skin, (width, height), interpolation=cv2.INTER_LINEAR)
    ink = ink * (1 - sky_full) * (1 - 0.75 * skin_full) * np.float32(look.line_strength)

    step(STEPS[5])
    # Brush marks belong to the painting of the photo, not to the seed: a fixed generator.
    marks = stroke_texture(smooth.shape[:2], flow, scale / 2, _rng(_BRUSH_SEED))
    marks *= np.float32(0.025 * look.strokes) * (1 - 0.7 * skin) * (1 - 0.5 * sky.mask)
    texture = paper_texture(height, width, rng, paper=look.paper, blotch=look.blotch, strokes=marks)
    # Fine detail of the photo, softly, where the half-size colour cannot hold it (roof tiles,
    # leaves, fur): a background painter's detail. Not in the sky, barely on skin.
    fine = photo_gray - cv2.GaussianBlur(photo_gray, (0, 0), max(1.0, 1.5 * scale))
    fine *= (1 - sky_full) * (1 - 0.8 * skin_full) * np.float32(look.detail / 0.4)  # photo_gray is 0.4x
    texture += fine / np.maximum(colour.mean(axis=2), np.float32(0.1))
    # Lines take some of the colour they cross (a coloured trace), so fur and hair get no black specks.
    line = np.asarray(look.line_colour, dtype=np.float32) * 0.55 + colour * np.float32(0.3)
    out = colour * (texture * (1 - ink))[..., None] + line * ink[..., None]
    # Against the sky they are silhouettes: a deep shade of the sky behind them.
    dark = colour[rows] * np.float32(0.3) + np.asarray(look.shadow, dtype=np.float32) * 0.6
    out[rows] += (dark - out[rows]) * structure[..., None]
    out = rain(out, look.rain, rng)
    np.maximum(out, np.asarray(look.shadow, dtype=np.float32) * 0.8, out=out)  # never black
    return Image.fromarray(cv2.convertScaleAbs(out, alpha=255), "RGB")  # rounds and saturates


def fast_transform(image: Image.Image, width: int, height: int, seed: int) -> Image.Image:
    """A cheap transform for throughput benchmarks: clearly changed, never the input.

    Posterized, warm-tinted and darkened at a seeded corner, so two seeds give two pictures.
    """
    small = prepare(image, max(1, width // 4), max(1, height // 4))
    posterized = ImageOps.posterize(small, 3)
    tinted = Image.blend(posterized, Image.new("RGB", posterized.size, (255, 196, 140)), 0.25)
    rng = _rng(seed)
    x, y = int(rng.integers(0, tinted.width)), int(rng.integers(0, tinted.height))
    tinted.putpixel((x, y), (int(rng.integers(0, 256)), 40, 90))
    return tinted.resize((width, height), Image.Resampling.NEAREST)
