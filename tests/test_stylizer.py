"""The offline stylizer as a pure function: no Gradio, no server.

Speed is measured in bench/stylizer.py, never asserted here.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from space.looks import KEYWORDS, look_for_prompt
from space.samples import meadow, portrait, seaside
from space.sky import find_sky
from space.stylizer import STEPS, cover_box, fast_transform, prepare, stylize
from tests.photos import landscape


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return meadow(800, 600, seed=4)


@pytest.mark.parametrize(("width", "height"), [(768, 768), (512, 384), (256, 1024), (1024, 320), (64, 48)])
def test_output_has_the_requested_size(photo: Image.Image, width: int, height: int) -> None:
    out = stylize(photo, width, height, seed=1)
    assert out.size == (width, height)
    assert out.mode == "RGB"


def test_same_seed_gives_the_same_bytes_and_other_seeds_differ(photo: Image.Image) -> None:
    first = stylize(photo, 512, 384, seed=7, prompt="Ghibli Studio style")
    again = stylize(photo, 512, 384, seed=7, prompt="Ghibli Studio style")
    other = stylize(photo, 512, 384, seed=8, prompt="Ghibli Studio style")
    assert png(first) == png(again)
    assert np.abs(pixels(first) - pixels(other)).mean() > 0.5  # clouds and paper moved


def test_the_painting_differs_clearly_from_a_plain_resize(photo: Image.Image) -> None:
    out = stylize(photo, 512, 384, seed=3)
    plain = pixels(prepare(photo, 512, 384))
    assert np.abs(pixels(out) - plain).mean() > 8


def test_flat_regions_hold_fewer_colours_than_the_photo() -> None:
    picture = portrait(512, 640, seed=1)
    out = stylize(picture, 512, 640, seed=1)
    before = len(np.unique(np.asarray(prepare(picture, 512, 640)).reshape(-1, 3) // 8, axis=0))
    after = len(np.unique(np.asarray(out).reshape(-1, 3) // 8, axis=0))
    assert after < before * 0.6, (before, after)


def test_no_pure_black_even_for_a_black_photo() -> None:
    out = stylize(Image.new("RGB", (300, 300), (0, 0, 0)), 256, 256, seed=0)
    assert np.asarray(out).min() >= 10  # shadows are lifted and tinted, never #000


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGB", (640, 480), (128, 128, 128)),  # grey
        Image.new("L", (300, 200), 90),  # greyscale mode
        Image.new("RGB", (1, 1), (200, 40, 40)),  # tiny
        Image.new("P", (20, 10), 3),  # palette
        Image.new("I;16", (64, 64), 30000),  # 16-bit
        Image.new("CMYK", (50, 80), (0, 120, 200, 10)),
    ],
    ids=["grey", "L", "1x1", "P", "I16", "CMYK"],
)
def test_odd_inputs_give_a_picture_of_the_requested_size(image: Image.Image) -> None:
    out = stylize(image, 320, 256, seed=5)
    assert out.size == (320, 256)
    assert 0 < np.asarray(out).mean() < 255


def test_huge_photos_are_cover_cropped_down() -> None:
    huge = meadow(600, 400, seed=2).resize((6000, 4000), Image.Resampling.NEAREST)
    out = stylize(huge, 768, 768, seed=1)
    assert out.size == (768, 768)
    assert prepare(huge, 256, 256).size == (256, 256)


def test_transparent_areas_are_painted_as_white_paper_not_black() -> None:
    rgba = Image.new("RGBA", (400, 400), (0, 0, 0, 0))  # transparent black everywhere...
    rgba.paste((30, 120, 40, 255), (100, 100, 300, 300))  # ...but a green square
    prepared = np.asarray(prepare(rgba, 256, 256))
    assert prepared[5, 5].tolist() == [255, 255, 255]
    out = np.asarray(stylize(rgba, 256, 256, seed=1), dtype=np.float32)
    assert out[:30, :30].mean() > 180  # the empty corner stays light
    assert out[118:138, 118:138, 1].mean() > out[118:138, 118:138, 0].mean()  # the square stays green


def test_cover_crop_keeps_the_aspect_ratio_and_never_stretches() -> None:
    left, top, right, bottom = cover_box((2000, 1000), 512, 512)
    assert right - left == pytest.approx(bottom - top)
    assert (left, right) == pytest.approx((500, 1500))
    assert (top, bottom) == pytest.approx((0, 1000))
    # Tall photos are cut a little above the middle, where heads are.
    _, top, _, bottom = cover_box((1000, 3000), 512, 512)
    assert top < (3000 - 1000) / 2
    # A circle stays a circle: its width and height in the output are equal.
    disc = Image.new("RGB", (1200, 600), "white")
    disc.paste((0, 0, 0), (500, 200, 700, 400))
    out = np.asarray(prepare(disc, 300, 300).convert("L")) < 128
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 2


def test_exif_orientation_is_applied() -> None:
    wide = Image.new("RGB", (400, 200), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: the upright photo is 200 x 400
    buf = io.BytesIO()
    wide.save(buf, format="JPEG", exif=exif)
    photo = Image.open(io.BytesIO(buf.getvalue()))
    box = cover_box((200, 400), 100, 200)
    assert box == pytest.approx((0, 0, 200, 400))
    assert prepare(photo, 100, 200).size == (100, 200)


def test_sky_is_found_in_landscapes_and_not_in_portraits() -> None:
    for scene in (meadow(480, 320, seed=1), seaside(400, 400, seed=3)):
        sky = find_sky(np.asarray(scene, dtype=np.float32) / 255)
        assert sky.found
        assert sky.cover[:10].mean() > 0.8  # the top rows are sky
        assert sky.cover[-10:].mean() < 0.05  # the bottom rows are not
    face = find_sky(np.asarray(portrait(400, 500, seed=2), dtype=np.float32) / 255)
    assert not face.found


def test_the_sky_is_repainted_and_the_seed_moves_the_clouds() -> None:
    scene = seaside(512, 512, seed=3)
    a, b = (pixels(stylize(scene, 512, 512, seed=s)) for s in (1, 2))
    sky_rows = slice(0, 200)
    ground_rows = slice(420, 512)
    sky_change = np.abs(a[sky_rows] - b[sky_rows]).mean()
    ground_change = np.abs(a[ground_rows] - b[ground_rows]).mean()
    assert sky_change > 3 * ground_change  # seeds repaint clouds; the beach only gets new grain


def test_the_sun_in_the_sky_is_kept_while_the_sky_around_it_is_repainted() -> None:
    scene = landscape(640, 480)  # a pale yellow sun in a blue sky, centred at (486, 77)
    out = pixels(stylize(scene, 640, 480, seed=1))
    sun = out[66:88, 475:497].reshape(-1, 3).mean(axis=0)
    sky = out[66:88, 300:322].reshape(-1, 3).mean(axis=0)
    assert sun[0] > sun[2] + 30  # still warm: red well above blue
    assert sky[2] > sky[0] + 30  # the painted sky beside it is blue


def test_prompt_keywords_steer_the_look(photo: Image.Image) -> None:
    assert look_for_prompt("Ghibli Studio style, Charming hand-drawn anime-style illustration").name == "day"
    assert look_for_prompt("a SUNSET over the sea, watercolour").name == "sunset+watercolor"
    assert look_for_prompt("night and sunset").name == "night"  # night wins
    assert look_for_prompt("a fallen leaf").name == "day"  # whole words only
    assert set(KEYWORDS.values()) == {
        *("sunset", "night", "autumn", "winter", "rain", "watercolor", "summer", "forest", "seaside")
    }
    day = pixels(stylize(photo, 384, 288, seed=2, prompt="Ghibli"))
    sunset = pixels(stylize(photo, 384, 288, seed=2, prompt="Ghibli, sunset"))
    night = pixels(stylize(photo, 384, 288, seed=2, prompt="Ghibli at night"))
    water = pixels(stylize(photo, 384, 288, seed=2, prompt="Ghibli watercolor"))
    warmth = lambda img: float((img[..., 0] - img[..., 2]).mean())  # noqa: E731
    assert warmth(sunset) > warmth(day) + 10
    assert night.mean() < day.mean() - 25
    assert np.abs(water - day).mean() > 4


def test_progress_steps_are_reported_in_order(photo: Image.Image) -> None:
    seen: list[str] = []
    stylize(photo, 256, 256, seed=1, on_step=seen.append)
    assert tuple(seen) == STEPS


def test_fast_engine_is_sized_never_the_input_and_seeded(photo: Image.Image) -> None:
    out = fast_transform(photo, 512, 384, seed=1)
    assert out.size == (512, 384)
    plain = pixels(prepare(photo, 512, 384))
    assert np.abs(pixels(out) - plain).mean() > 8
    assert png(fast_transform(photo, 512, 384, seed=1)) == png(out)
    assert png(fast_transform(photo, 512, 384, seed=2)) != png(out)
