"""A Space's picture: checked before it is stored, and converted to another format on request.

Both run inside a decode worker: the Space is a remote program and its answer is bytes we did not
produce. The structural probe runs first, so a picture whose header claims the wrong size is
refused before a single pixel is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageStat, UnidentifiedImageError

from sandbox.errors import ImageRefused, unreadable
from sandbox.photo import DECODERS, open_image
from sandbox.probe import probe, read_header

__all__ = [
    "CONVERSIONS",
    "MAX_RESULT_PIXELS",
    "CheckedPicture",
    "check_picture",
    "convert_picture",
    "wrong_size",
]

MAX_RESULT_PIXELS = 1024 * 1024  # the Space paints at most 1024x1024
CONVERSIONS = ("png", "jpeg", "webp")
_THUMB = (64, 64)
_ECHO_MAX_DIFFERENCE = 3.0


@dataclass(frozen=True, slots=True)
class CheckedPicture:
    media_type: str
    width: int
    height: int
    same_as_input: bool


def wrong_size(width: int, height: int, want: tuple[int, int]) -> ImageRefused:
    return ImageRefused(
        422,
        "result_wrong_size",
        f"The Space returned {width}x{height}, not the requested {want[0]}x{want[1]}.",
    )


def check_picture(data: bytes, *, width: int, height: int, photo: bytes) -> CheckedPicture:
    """Decode the Space's picture in full and compare it with the input photo; raises ImageRefused."""
    info = read_header(data)
    if (info.width, info.height) != (width, height):  # before any limit: the clearer error
        raise wrong_size(info.width, info.height, (width, height))
    probe(data, max_pixels=MAX_RESULT_PIXELS)
    try:
        with open_image(data, info) as img:
            img.load()
            if img.size != (width, height):
                raise wrong_size(img.width, img.height, (width, height))
            same = bool(photo) and (data == photo or _same_pixels(img, photo))
            return CheckedPicture(info.media_type, img.width, img.height, same)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise unreadable(info.name, type(exc).__name__) from None


def _same_pixels(result: Image.Image, photo: bytes) -> bool:
    """True if the result is the input photo (re-encoded or not): a Space that echoes its input.

    Compared small and grey, so compression noise averages out: a re-encoded input differs by ~1
    grey level on average there, a stylized picture by tens. The photo is our own stored copy.
    """
    try:
        with Image.open(io.BytesIO(photo), formats=sorted(set(DECODERS.values()))) as original:
            if original.size != result.size:
                return False
            a = original.convert("L").resize(_THUMB, Image.Resampling.BILINEAR)
            b = result.convert("L").resize(_THUMB, Image.Resampling.BILINEAR)
            return bool(ImageStat.Stat(ImageChops.difference(a, b)).mean[0] < _ECHO_MAX_DIFFERENCE)
    except (UnidentifiedImageError, OSError):
        return False


def convert_picture(data: bytes, fmt: str) -> bytes:
    """Re-encode a stored picture as png, jpeg or webp."""
    if fmt not in CONVERSIONS:
        raise ImageRefused(400, "invalid_format", f"Convert to one of {', '.join(CONVERSIONS)}.")
    info = probe(data, max_pixels=4 * MAX_RESULT_PIXELS)
    try:
        with open_image(data, info) as img:
            img.load()
            out = io.BytesIO()
            if fmt == "jpeg":
                img.convert("RGB").save(out, format="JPEG", quality=92, optimize=True)
            elif fmt == "webp":
                img.save(out, format="WEBP", quality=90, method=4)
            else:
                img.save(out, format="PNG", optimize=False)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise unreadable(info.name, type(exc).__name__) from None
