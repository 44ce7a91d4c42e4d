"""The normalized copy of an uploaded photo that the pipeline stores (runs inside a decode worker).

Only the format's own decoder may open it (the type comes from the bytes). The stored copy is
upright 8-bit sRGB with no metadata at all (EXIF, GPS, XMP, ICC): CMYK, palette, 16-bit and alpha
(composited on white) become RGB, animated images keep their first frame, and an embedded colour
profile is applied before it is dropped. A JPEG that already is all that is kept byte for byte.

Large images are shrunk before anything else touches them where the mode allows, so a 40 MP
photo costs one full-size buffer, not three.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from sandbox.errors import ImageRefused, unreadable
from sandbox.probe import MAX_JPEG_SCANS, ImageInfo, check_pixels, probe

__all__ = ["MIN_SIDE", "STORED_MAX_SIDE", "NormalizedPhoto", "normalize_photo", "open_image"]

pillow_heif.register_heif_opener()

# Media type -> the one Pillow decoder allowed to open it.
DECODERS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}
# The Space conditions on 512 px and paints at most 1024 px; keeping 2048 leaves headroom.
STORED_MAX_SIDE = 2048
MIN_SIDE = 16
_SRGB = ImageCms.createProfile("sRGB")
_RESIZABLE = frozenset({"RGB", "RGBA", "L", "LA", "CMYK"})


@dataclass(frozen=True, slots=True)
class NormalizedPhoto:
    """`data` is None when the upload itself is what is stored (a clean JFIF JPEG)."""

    data: bytes | None
    width: int
    height: int
    media_type: str = "image/jpeg"

    def stored(self, upload: bytes) -> bytes:
        return upload if self.data is None else self.data

    def digest(self, upload: bytes) -> str:
        return hashlib.sha256(self.stored(upload)).hexdigest()


def open_image(data: bytes, info: ImageInfo) -> Image.Image:
    """The image opened (header only) by the decoder of its sniffed type."""
    with warnings.catch_warnings():
        # Our own pixel limit is checked by the probe; Pillow's warning threshold is not ours.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=[DECODERS[info.media_type]])


def normalize_photo(data: bytes, *, max_pixels: int, max_scans: int = MAX_JPEG_SCANS) -> NormalizedPhoto:
    """Check and normalize an uploaded photo; raises ImageRefused."""
    info = probe(data, max_pixels=max_pixels, max_scans=max_scans)
    try:
        with open_image(data, info) as img:
            check_pixels(*img.size, max_pixels=max_pixels)
            _check_min_side(*img.size)
            img.seek(0)  # animated: the first frame
            sent_size = img.size
            _decode_smaller(img)
            img.load()
            if _stored_as_sent(img, data, sent_size):
                return NormalizedPhoto(None, img.width, img.height)
            rgb = _normalized(img)
    except ImageRefused:
        raise
    except Image.DecompressionBombError:
        raise ImageRefused(
            422, "too_many_pixels", f"The photo has more than {max_pixels:,} pixels."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise unreadable(info.name, type(exc).__name__) from None
    # Pillow's JPEG writer copies some of `info` (the COM comment) into the file by default; with no
    # exif= or icc_profile= either, nothing but pixels is stored.
    rgb.info.clear()
    out = io.BytesIO()
    # No optimize=: it costs ~30% of the upload's CPU for ~5% fewer bytes.
    rgb.save(out, format="JPEG", quality=95)
    return NormalizedPhoto(out.getvalue(), rgb.width, rgb.height)


def _normalized(img: Image.Image) -> Image.Image:
    """Upright, sRGB, at most STORED_MAX_SIDE: shrunk first when the mode resizes well."""
    box = (STORED_MAX_SIDE, STORED_MAX_SIDE)
    if img.mode in _RESIZABLE and max(img.size) > STORED_MAX_SIDE:
        # A square box, so shrinking before the EXIF rotation gives the same size after it; `info`
        # (the colour profile) is kept by an in-place thumbnail.
        img.thumbnail(box, Image.Resampling.LANCZOS)
    upright = ImageOps.exif_transpose(img, in_place=False) if _rotated(img) else img
    rgb = _to_srgb(upright)
    rgb.thumbnail(box, Image.Resampling.LANCZOS)
    return rgb


def _rotated(img: Image.Image) -> bool:
    return img.getexif().get(0x0112, 1) not in (1, None)


def _stored_as_sent(img: Image.Image, data: bytes, sent_size: tuple[int, int]) -> bool:
    """A JPEG that is already what we would store is kept byte for byte.

    That is an RGB JPEG small enough, whose only application segments are JFIF headers (no EXIF,
    so no orientation or GPS; no ICC profile, XMP, Adobe or MPF), with no comment and nothing after
    its end marker. Photos exported by browsers and web apps usually are; re-encoding them would
    only cost CPU and a generation of JPEG loss. It has decoded in full before this is asked.
    """
    return (
        img.format == "JPEG"
        and img.mode == "RGB"
        and img.size == sent_size  # not decoded at a reduced scale: small enough already
        and max(sent_size) <= STORED_MAX_SIDE
        and all(marker == "APP0" and body.startswith(b"JFIF\0") for marker, body in img.applist)  # type: ignore[attr-defined]
        and "comment" not in img.info
        and data.endswith(b"\xff\xd9")
    )


def _decode_smaller(img: Image.Image) -> None:
    """Let a large JPEG decode at 1/2, 1/4 or 1/8 scale (DCT scaling) when it is stored smaller anyway.

    Decoding a 12-24 MP phone photo at full size costs most of an upload's CPU, only for `thumbnail`
    to throw most pixels away. The scale chosen keeps at least the stored size on both sides, so the
    LANCZOS resize still does the final step.
    """
    if img.format != "JPEG":
        return
    width, height = img.size
    longest = max(width, height)
    if longest <= STORED_MAX_SIDE:
        return
    keep = STORED_MAX_SIDE / longest
    img.draft(None, (math.ceil(width * keep), math.ceil(height * keep)))


def _check_min_side(width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageRefused(
            422,
            "image_too_small",
            f"The photo is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed.",
        )


def _to_srgb(img: Image.Image) -> Image.Image:
    """8-bit RGB in sRGB, whatever the mode and colour profile."""
    icc = img.info.get("icc_profile")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        img = img.point(lambda v: v / 256).convert("L")  # 16-bit samples to 8-bit
    elif img.mode == "F":
        img = img.convert("L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if icc and img.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                img.convert("RGB") if img.mode == "RGBA" else img, source, _SRGB, outputMode="RGB"
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken or mismatched profile: fall back to the plain conversion below
    return img.convert("RGB")
