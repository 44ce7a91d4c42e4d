"""The fast path: a JPEG that is already what we would store is accepted from its structure alone.

Browsers and web apps export photos as plain JFIF JPEGs: baseline, YCbCr, no EXIF, no colour
profile, no comment. Such a photo of at most STORED_MAX_SIDE pixels a side is stored byte for byte,
so nothing here needs its pixels, and decoding it (even in a worker) would only cost time. What a
bomb needs is many pixels, many scans or a codec bug to reach; a photo that passes every check
below has at most 2048x2048 pixels, exactly one interleaved baseline scan, tables that are all
defined and well-formed, and entropy-coded data that runs from its one scan header to the end-of-
image marker at the very end of the file: a truncated file fails that last check, and a file with
anything unusual at all goes to the sandbox to be decoded in full (sandbox/photo.py).

The checks walk the headers in pure Python; the entropy-coded data is crossed with one regex
search (memchr speed). Nothing here is ever decoded: a corrupt entropy stream is what a decoder
would forgive too (libjpeg warns and goes on), and the Space decodes the photo anyway.
"""

from __future__ import annotations

import re
import struct

__all__ = ["stored_as_sent"]

_SOF_BASELINE = (0xC0, 0xC1)  # baseline and extended sequential, Huffman
_NEXT_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")  # not stuffing (00), RSTn or fill (ff)
_MAX_SEGMENTS = 64


class _NotPlain(Exception):
    """Anything that is not a plain JFIF JPEG: let the sandbox decide."""


def stored_as_sent(data: bytes, *, max_side: int, min_side: int, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) when `data` is a plain JFIF JPEG that can be stored as it is, else None."""
    try:
        return _check(data, max_side=max_side, min_side=min_side, max_pixels=max_pixels)
    except (_NotPlain, IndexError, ValueError, struct.error):
        return None


def _check(data: bytes, *, max_side: int, min_side: int, max_pixels: int) -> tuple[int, int]:
    if not data.startswith(b"\xff\xd8") or not data.endswith(b"\xff\xd9"):
        raise _NotPlain
    quant: set[int] = set()
    huffman: set[tuple[int, int]] = set()
    frame: tuple[int, int, list[tuple[int, int]]] | None = None
    jfif = False
    pos = 2
    for _ in range(_MAX_SEGMENTS):
        if data[pos] != 0xFF:
            raise _NotPlain
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            raise _NotPlain
        if marker == 0xE0:
            if not body.startswith(b"JFIF\0"):
                raise _NotPlain
            jfif = True
        elif marker == 0xDB:
            quant |= _quant_tables(body)
        elif marker == 0xC4:
            huffman |= _huffman_tables(body)
        elif marker in _SOF_BASELINE:
            if frame is not None:
                raise _NotPlain
            frame = _frame(body)
        elif marker == 0xDD:  # DRI: restart markers in the entropy-coded data
            if length != 4:
                raise _NotPlain
        elif marker == 0xDA:
            if not jfif or frame is None:
                raise _NotPlain
            _scan(body, frame, quant, huffman)
            end = pos + 2 + length
            found = _NEXT_MARKER.search(data, end)
            # One scan only, then the end-of-image marker closing the file.
            if found is None or found.start() != len(data) - 2 or found.start() == end:
                raise _NotPlain
            width, height, _components = frame
            if not (min_side <= width <= max_side and min_side <= height <= max_side):
                raise _NotPlain
            if width * height > max_pixels:
                raise _NotPlain
            return width, height
        else:  # APP1-15 (EXIF, ICC, XMP, Adobe), COM, DNL, progressive or arithmetic frames, ...
            raise _NotPlain
        pos += 2 + length
    raise _NotPlain


def _quant_tables(body: bytes) -> set[int]:
    found: set[int] = set()
    pos = 0
    while pos < len(body):
        precision, table = body[pos] >> 4, body[pos] & 0x0F
        if precision != 0 or table > 3:  # 8-bit tables for 8-bit samples
            raise _NotPlain
        found.add(table)
        pos += 65
    if pos != len(body):
        raise _NotPlain
    return found


def _huffman_tables(body: bytes) -> set[tuple[int, int]]:
    """(class, id) of each table, after checking its code lengths form a valid prefix code."""
    found: set[tuple[int, int]] = set()
    pos = 0
    while pos < len(body):
        kind, table = body[pos] >> 4, body[pos] & 0x0F
        if kind > 1 or table > 1:  # baseline: two DC and two AC tables
            raise _NotPlain
        counts = body[pos + 1 : pos + 17]
        if len(counts) != 16:
            raise _NotPlain
        total, room = 0, 1
        for count in counts:  # codes of each length must fit (Kraft): no over-subscribed table
            room = room * 2 - count
            if room < 0:
                raise _NotPlain
            total += count
        if total == 0 or total > 256:
            raise _NotPlain
        pos += 17 + total
        found.add((kind, table))
    if pos != len(body):
        raise _NotPlain
    return found


def _frame(body: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """(width, height, [(component id, quantization table)]) of a YCbCr frame of 8-bit samples."""
    precision, height, width, count = struct.unpack(">BHHB", body[:6])
    if precision != 8 or count != 3 or len(body) != 6 + 3 * count:
        raise _NotPlain
    components: list[tuple[int, int]] = []
    for index in range(count):
        ident, sampling, table = body[6 + 3 * index : 9 + 3 * index]
        if not (1 <= sampling >> 4 <= 2 and 1 <= sampling & 0x0F <= 2) or table > 3:
            raise _NotPlain
        components.append((ident, table))
    if len({ident for ident, _t in components}) != count:
        raise _NotPlain
    return width, height, components


def _scan(
    body: bytes, frame: tuple[int, int, list[tuple[int, int]]], quant: set[int], huffman: set[tuple[int, int]]
) -> None:
    """One interleaved baseline scan of every component, with every table it uses defined."""
    _width, _height, components = frame
    count = body[0]
    if count != len(components) or len(body) != 1 + 2 * count + 3:
        raise _NotPlain
    tables = dict(components)
    for index in range(count):
        ident, selectors = body[1 + 2 * index], body[2 + 2 * index]
        if ident not in tables or tables[ident] not in quant:
            raise _NotPlain
        if (0, selectors >> 4) not in huffman or (1, selectors & 0x0F) not in huffman:
            raise _NotPlain
    start, end, approximation = body[1 + 2 * count :]
    if (start, end, approximation) != (0, 63, 0):
        raise _NotPlain
