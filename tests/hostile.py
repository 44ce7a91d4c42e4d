"""Hostile images, built here byte by byte so what each one does is visible in the code.

- progressive_scan_bomb: a real progressive JPEG whose last scan is repeated thousands of times
  (each repeat costs the decoder a pass over every block; a few hundred KB cost minutes of CPU);
- webp_bomb: a hand-made lossless WebP whose pixels cost 0 bits, so its header alone decides its
  size (~40 bytes for 268 MP);
- png_memory_bomb: a 36 MP RGBA PNG of zeros (~140 KB on disk, ~150 MB decoded) that every
  structural check lets through: only the sandbox's memory limit bounds it;
- gif_bomb and heic_bomb: headers that claim billions of pixels;
- header_only_png: a valid header over almost no data (truncated);
- heavy_photo: an honest but costly upload (a large noisy PNG) to keep decoders busy.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.images import heic

__all__ = [
    "gif_bomb",
    "header_only_png",
    "heavy_photo",
    "heic_bomb",
    "png_memory_bomb",
    "progressive_scan_bomb",
    "webp_bomb",
]


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each JPEG segment up to the first SOS, then of each scan after it."""
    found: list[tuple[int, int, int]] = []
    pos = 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            found.append((marker, pos, pos + 2))
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if marker == 0xDA:  # entropy-coded data up to the next real marker
            end = data.index(b"\xff", end)
            while data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end = data.index(b"\xff", end + 2)
        found.append((marker, pos, end))
        pos = end
    return found


def progressive_scan_bomb(side: int = 6000, repeats: int = 8000) -> bytes:
    """A side x side grey progressive JPEG whose last (nearly empty) AC scan is repeated.

    libjpeg treats a repeated scan as a warning and runs it again: ~3 ms per scan at 36 MP.
    """
    out = io.BytesIO()
    Image.new("L", (side, side), 128).save(out, format="JPEG", quality=90, progressive=True)
    data = out.getvalue()
    segments = _segments(data)
    last_sos = max(i for i, (marker, _s, _e) in enumerate(segments) if marker == 0xDA)
    first = last_sos - 1 if segments[last_sos - 1][0] == 0xC4 else last_sos  # its DHT, if any
    scan = data[segments[first][1] : segments[last_sos][2]]
    head = data[: segments[last_sos][2]]
    return head + scan * repeats + b"\xff\xd9"


def _riff(chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _vp8l_one_colour(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """A VP8L bitstream (LSB first): header, no transform, no colour cache, no meta codes, then
    five "simple" prefix codes of one 8-bit symbol each. A one-symbol code has length 0, so every
    pixel decodes from 0 bits: the header's 14-bit width and height alone decide the size."""
    bits: list[int] = []

    def put(value: int, count: int) -> None:
        bits.extend((value >> i) & 1 for i in range(count))

    put(0x2F, 8)
    put(width - 1, 14)
    put(height - 1, 14)
    put(1, 1)  # alpha is used
    put(0, 3)  # version
    put(0, 1)  # no transform
    put(0, 1)  # no colour cache
    put(0, 1)  # no meta prefix codes
    red, green, blue, alpha = rgba
    for symbol in (green, red, blue, alpha, 0):  # the last: distances, never used
        put(1, 1)  # simple code
        put(0, 1)  # one symbol
        put(1, 1)  # of 8 bits
        put(symbol, 8)
    bits.extend([0] * (-len(bits) % 8))
    return bytes(sum(bits[i + j] << j for j in range(8)) for i in range(0, len(bits), 8))


def webp_bomb(side: int = 16383, padding: int = 0) -> bytes:
    """A lossless WebP of one colour, side x side, in ~40 bytes (16383: 268 MP, ~1 GB decoded).
    `padding` adds an unknown chunk (decoders skip it) to make the file look less compressed."""
    chunks = _chunk(b"VP8L", _vp8l_one_colour(side, side, (200, 30, 30, 255)))
    return _riff(chunks + (_chunk(b"JUNK", bytes(padding)) if padding else b""))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def _png(width: int, height: int, idat: bytes, *, bit_depth: int, color_type: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_memory_bomb(side: int = 6000) -> bytes:
    """A complete side x side RGBA PNG of transparent black: zlib squeezes it ~1000:1."""
    row = b"\x00" * (1 + side * 4)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return _png(side, side, body, bit_depth=8, color_type=6)


def header_only_png(side: int = 2000) -> bytes:
    """A PNG whose header claims side x side RGB pixels over almost no image data."""
    return _png(side, side, zlib.compress(b"\x00" * 64), bit_depth=8, color_type=2)


def gif_bomb(side: int = 65_000) -> bytes:
    """A GIF whose logical screen and one frame claim side x side pixels, with a few bytes of LZW."""
    screen = struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, side, side, 0) + b"\x02\x02\x4c\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def heic_bomb(side: int = 50_000) -> bytes:
    """A real HEIC whose every `ispe` (the item's size) is patched to side x side."""
    data = bytearray(heic())
    pos = data.find(b"ispe")
    assert pos > 0, "the HEIC encoder wrote no ispe box"
    while pos > 0:
        data[pos + 8 : pos + 16] = struct.pack(">II", side, side)
        pos = data.find(b"ispe", pos + 4)
    return bytes(data)


def heavy_photo(side: int = 3000, seed: int = 1) -> bytes:
    """An honest but costly upload: a noisy RGB PNG (seconds of decoding on a busy machine)."""
    noise = np.random.default_rng(seed).integers(0, 255, size=(side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise, "RGB").save(out, format="PNG", compress_level=1)
    return out.getvalue()
