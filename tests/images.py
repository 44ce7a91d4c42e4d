"""The upload corpus the ingest tests build: good photos in every accepted form, and bad files.

Nothing is a binary fixture: each file is made here, so what it contains is visible in the code.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pillow_heif
from PIL import Image, ImageCms

from tests.photos import encode, landscape

__all__ = [
    "RED",
    "animated",
    "cmyk_jpeg",
    "exif_rotated_jpeg",
    "heic",
    "one_by_one_png",
    "palette_png",
    "png16",
    "png_bomb",
    "png_header_only",
    "rgba_png",
    "text_named_jpg",
    "truncated_jpeg",
]

RED = (220, 30, 30)
GPS_IFD = 0x8825


def truncated_jpeg() -> bytes:
    """A real JPEG cut at 40 %: the header reads fine, the pixels end early."""
    data = encode(landscape(640, 480), "JPEG", quality=90)
    return data[: len(data) * 2 // 5]


def text_named_jpg() -> bytes:
    return b"This is a shopping list, not a photo.\nmilk\neggs\n" * 20


def one_by_one_png() -> bytes:
    return encode(Image.new("RGB", (1, 1), RED), "PNG")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def _png(width: int, height: int, idat: bytes, *, bit_depth: int = 1, color_type: int = 0) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_bomb(side: int = 30_000) -> bytes:
    """A complete side x side 1-bit PNG (900 MP at 30000): ~110 KB on disk, ~900 MB decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    chunks = [packer.compress(row * 1000) for _ in range(side // 1000)]
    chunks.append(packer.compress(row * (side % 1000)))
    chunks.append(packer.flush())
    return _png(side, side, b"".join(chunks))


def png_header_only(side: int = 30_000) -> bytes:
    """A PNG that claims side x side pixels but carries almost no data: only a decode would notice."""
    return _png(side, side, zlib.compress(b"\x00" * 64))


def cmyk_jpeg(color: tuple[int, int, int] = RED) -> bytes:
    return encode(Image.new("RGB", (96, 64), color).convert("CMYK"), "JPEG", quality=95)


def png16() -> bytes:
    """A 16-bit grayscale PNG: a ramp over the full 0..65535 range, black at the left, white at the right."""
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    return encode(Image.fromarray(ramp), "PNG")


def rgba_png() -> bytes:
    """Transparent except an opaque red square in the middle."""
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    img.paste((*RED, 255), (16, 16, 48, 48))
    return encode(img, "PNG")


def palette_png() -> bytes:
    return encode(
        Image.new("RGB", (64, 48), RED).convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG"
    )


def animated(fmt: str) -> bytes:
    """Three frames, red then green then blue ("GIF" or "WEBP")."""
    frames = [Image.new("RGB", (64, 48), c) for c in (RED, (30, 200, 30), (30, 30, 220))]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def exif_rotated_jpeg(width: int = 240, height: int = 320) -> bytes:
    """A portrait photo stored sideways with EXIF Orientation 6 (and a GPS position to leak).

    Upright it is `width` wide, `height` tall, red in its top 3/16; the stored pixels are that
    picture turned a quarter to the left, which Orientation 6 tells viewers to undo.
    """
    upright = landscape(width, height)
    upright.paste(RED, (0, 0, width, height * 3 // 16))
    sideways = upright.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    return encode(sideways, "JPEG", quality=92, exif=exif.tobytes())


def heic() -> bytes:
    """A HEIC photo (HEVC in HEIF), written with pillow-heif's encoder."""
    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    landscape(160, 120).save(out, format="HEIF", quality=90)
    return out.getvalue()


def srgb_icc() -> bytes:
    """An sRGB ICC profile, as cameras and editors embed one."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return bytes(profile.tobytes())
