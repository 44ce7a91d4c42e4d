"""Cheap structural checks of an image's bytes, before any decoder sees them.

Pure Python over the container's headers, never a codec: this runs in the process that received
the bytes, so every loop is bounded by a small constant, not by what the file claims. It reads the
type from the magic bytes, the size in pixels from the header, how many scans a JPEG has and how
many frames an animation declares, and refuses what only a bomb looks like:

- more pixels than allowed (`too_many_pixels`);
- a JPEG with more than GHIBLI_MAX_JPEG_SCANS scans (default MAX_JPEG_SCANS): each scan of a
  progressive JPEG costs a pass over every block, so thousands of near-empty scans cost minutes
  of CPU in a few hundred KB;
- more than MAX_FRAMES frames, or more than MAX_SEGMENTS header segments;
- a large image whose file is tiny compared with its pixels (MAX_PIXELS_PER_BYTE): real photos
  compress ~3-50 pixels per byte, flat graphics a few hundred; a 1.6 KB WebP that claims 40 MP
  is nothing but a decompression bomb.

What passes is still decoded only in the sandbox (sandbox/pool.py); these checks only make most
hostile files cost microseconds instead of a worker's time.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.errors import ImageRefused, too_complex, unreadable

__all__ = [
    "MAX_FRAMES",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS_PER_BYTE",
    "ImageInfo",
    "check_pixels",
    "probe",
    "read_header",
    "sniff_type",
]

MAX_JPEG_SCANS = 100  # libjpeg's progressive preset writes 10 (6 for grey); optimizers ~10-20
MAX_FRAMES = 1_000
MAX_SEGMENTS = 1_000  # markers/chunks/boxes walked in one header
MAX_PIXELS_PER_BYTE = 1_000
BOMB_CHECK_ABOVE_PIXELS = 2048 * 2048  # smaller images are cheap to decode whatever their ratio

_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs")
_HEIF_BRANDS = (b"mif1", b"msf1", b"mif2")
_NAMES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/heic": "HEIC",
    "image/heif": "HEIF",
}
# A marker after entropy-coded data: 0xFF then neither a stuffed 0x00, RSTn nor a fill 0xFF. (The
# literal first byte lets the regex engine skip ahead at memchr speed: ~2 GB/s.)
_NEXT_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says (not yet proven by a decode)."""

    media_type: str
    width: int
    height: int
    frames: int = 1
    scans: int = 0  # JPEG only: SOS markers
    progressive: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def name(self) -> str:
        return _NAMES[self.media_type]


def sniff_type(head: bytes) -> str | None:
    """The image type from magic bytes (the first 32 are enough), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[4:8] == b"ftyp":
        if head[8:12] in _HEIC_BRANDS:
            return "image/heic"
        if head[8:12] in _HEIF_BRANDS:
            return "image/heif"
    return None


def read_header(data: bytes, *, max_scans: int = MAX_JPEG_SCANS) -> ImageInfo:
    """Type and size from the headers, with the structural refusals (scans, segments) but no limits."""
    if not data:
        raise ImageRefused(422, "empty_image", "The uploaded file is empty.")
    kind = sniff_type(data[:32])
    if kind is None:
        raise ImageRefused(
            415,
            "unsupported_image_type",
            "Upload a JPEG, PNG, WebP, GIF or HEIC/HEIF photo; this file is none of them "
            "(the type is read from its bytes, not its name).",
        )
    try:
        info = _jpeg(data, max_scans) if kind == "image/jpeg" else _PARSERS[kind](data)
    except ImageRefused:
        raise
    except (IndexError, ValueError, struct.error):
        raise unreadable(_NAMES[kind], "malformed header") from None
    if info.width <= 0 or info.height <= 0:
        raise unreadable(info.name, "no image size in its header")
    return info


def probe(data: bytes, *, max_pixels: int, max_scans: int = MAX_JPEG_SCANS) -> ImageInfo:
    """Type, size and complexity from the headers; raises ImageRefused for what is refused."""
    info = read_header(data, max_scans=max_scans)
    check_pixels(info.width, info.height, max_pixels=max_pixels)
    if info.frames > MAX_FRAMES:
        raise too_complex(
            f"The {info.name} file has {info.frames:,} frames; at most {MAX_FRAMES:,} are accepted."
        )
    if info.pixels > BOMB_CHECK_ABOVE_PIXELS and info.pixels > len(data) * MAX_PIXELS_PER_BYTE:
        raise too_complex(
            f"The {info.name} file claims {info.width}x{info.height} pixels in only {len(data):,} bytes; "
            "photos are never compressed that much (a decompression bomb?)."
        )
    return info


def check_pixels(width: int, height: int, *, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageRefused(
            422,
            "too_many_pixels",
            f"The photo has {width}x{height} = {width * height:,} pixels; "
            f"at most {max_pixels:,} are accepted.",
        )


def _segments_exceeded(name: str) -> ImageRefused:
    return too_complex(f"The {name} file has more header segments than real photos ever have.")


def _jpeg(data: bytes, max_scans: int = MAX_JPEG_SCANS) -> ImageInfo:
    """Walk the markers; entropy-coded data is skipped with one regex search per scan."""
    pos, end = 2, len(data)
    width = height = scans = segments = 0
    max_segments = MAX_SEGMENTS + 4 * max_scans  # each scan brings its own tables
    progressive = False
    while pos < end:
        if data[pos] != 0xFF:
            raise unreadable("JPEG", "a marker was expected")
        while pos < end and data[pos] == 0xFF:
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        segments += 1
        if segments > max_segments:
            raise _segments_exceeded("JPEG")
        if marker == 0xD9:  # EOI
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            continue
        if marker in (0x00, 0xD8):
            raise unreadable("JPEG", "a misplaced marker")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            raise unreadable("JPEG", "a header segment runs past the end")
        if marker in _JPEG_SOF:
            if width:
                raise unreadable("JPEG", "two frame headers")
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            progressive = marker in _JPEG_PROGRESSIVE
        pos += length
        if marker == 0xDA:  # SOS: the scan's entropy-coded data follows
            scans += 1
            if scans > max_scans:
                raise too_complex(
                    f"The JPEG file has more than {max_scans} scans; real photos have at most a few dozen."
                )
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break  # truncated: the decoder says so
            pos = found.start()
    if not width:
        raise unreadable("JPEG", "no frame header")
    return ImageInfo("image/jpeg", width, height, scans=scans, progressive=progressive)


def _png(data: bytes) -> ImageInfo:
    if data[12:16] != b"IHDR":
        raise unreadable("PNG", "the first chunk is not IHDR")
    width, height = struct.unpack(">II", data[16:24])
    frames, pos = 1, 8
    for _ in range(64):  # acTL, when present, comes before the first IDAT
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind in (b"IDAT", b"IEND", b""):
            break
        if kind == b"acTL":
            frames = int.from_bytes(data[pos + 8 : pos + 12], "big")
        pos += 12 + length
    return ImageInfo("image/png", width, height, frames=frames)


def _gif(data: bytes) -> ImageInfo:
    """The logical screen, grown to the first frame if that reaches past it (as Pillow does)."""
    width, height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    segments = 0
    while data[pos] != 0x3B:  # the trailer
        segments += 1
        if segments > MAX_SEGMENTS:
            raise _segments_exceeded("GIF")
        block = data[pos]
        if block == 0x2C:
            left, top, w, h = struct.unpack("<HHHH", data[pos + 1 : pos + 9])
            return ImageInfo("image/gif", max(width, left + w), max(height, top + h))
        if block != 0x21:
            raise unreadable("GIF", "an unknown block")
        pos += 2  # extension: introducer, label, then sub-blocks up to an empty one
        while data[pos]:
            segments += 1
            if segments > MAX_SEGMENTS:
                raise _segments_exceeded("GIF")
            pos += data[pos] + 1
        pos += 1
    raise unreadable("GIF", "no frame")


def _webp(data: bytes) -> ImageInfo:
    pos, end = 12, min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    width = height = 0
    frames = 1
    animated = False
    for _ in range(MAX_SEGMENTS + MAX_FRAMES):
        if pos + 8 > end:
            break
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if kind == b"VP8X":
            animated = bool(data[body] & 0x02)
            width = 1 + int.from_bytes(data[body + 4 : body + 7], "little")
            height = 1 + int.from_bytes(data[body + 7 : body + 10], "little")
            frames = 0 if animated else 1
        elif kind == b"VP8 " and not width:
            if data[body + 3 : body + 6] != b"\x9d\x01\x2a":
                raise unreadable("WEBP", "a bad VP8 frame header")
            w, h = struct.unpack("<HH", data[body + 6 : body + 10])
            width, height = w & 0x3FFF, h & 0x3FFF
        elif kind == b"VP8L" and not width:
            if data[body] != 0x2F:
                raise unreadable("WEBP", "a bad VP8L signature")
            bits = int.from_bytes(data[body + 1 : body + 5], "little")
            width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        elif kind == b"ANMF":
            frames += 1
            if frames > MAX_FRAMES:
                break
        if not animated and width:
            break
        pos = body + size + (size & 1)
    else:
        raise _segments_exceeded("WEBP")
    return ImageInfo("image/webp", width, height, frames=max(frames, 1))


def _heif(data: bytes) -> ImageInfo:
    """The largest `ispe` (image spatial extent) of any item: the primary image is never larger."""
    kind = "image/heic" if data[8:12] in _HEIC_BRANDS else "image/heif"
    meta = _child(data, 0, len(data), b"meta")
    if meta is None:
        raise unreadable(_NAMES[kind], "no meta box")
    iprp = _child(data, meta[0] + 4, meta[1], b"iprp")  # meta is a full box: 4 bytes version/flags
    ipco = _child(data, iprp[0], iprp[1], b"ipco") if iprp else None
    if ipco is None:
        raise unreadable(_NAMES[kind], "no item properties")
    width = height = 0
    for box, start, stop in _boxes(data, ipco[0], ipco[1]):
        if box == b"ispe" and stop - start >= 12:
            w, h = struct.unpack(">II", data[start + 4 : start + 12])
            if w * h > width * height:
                width, height = w, h
    return ImageInfo(kind, width, height)


def _boxes(data: bytes, pos: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, body end) of the ISO-BMFF boxes in data[pos:end]."""
    found: list[tuple[bytes, int, int]] = []
    while pos + 8 <= end:
        if len(found) >= MAX_SEGMENTS:
            raise _segments_exceeded("HEIF")
        size = int.from_bytes(data[pos : pos + 4], "big")
        box = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise unreadable("HEIF", "a box runs past its parent")
        found.append((box, pos + header, pos + size))
        pos += size
    return found


def _child(data: bytes, pos: int, end: int, wanted: bytes) -> tuple[int, int] | None:
    for box, start, stop in _boxes(data, pos, end):
        if box == wanted:
            return start, stop
    return None


_PARSERS: dict[str, Callable[[bytes], ImageInfo]] = {
    "image/jpeg": _jpeg,
    "image/png": _png,
    "image/gif": _gif,
    "image/webp": _webp,
    "image/heic": _heif,
    "image/heif": _heif,
}
