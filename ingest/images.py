"""Upload checks and the normalized copy of a photo that the pipeline stores.

The type is detected from the bytes, never the name or header, and only that format's decoder is
allowed to open it. The size in pixels is read from the header before any full decode, so a
decompression bomb is refused cheaply. The stored copy is upright 8-bit sRGB with no metadata at all
(EXIF, GPS, XMP, ICC): CMYK, palette, 16-bit and alpha (composited on white) become RGB, animated
images keep their first frame, and an embedded colour profile is applied before it is dropped.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = ["ACCEPTED_TYPES", "NormalizedPhoto", "PhotoRejected", "normalize_photo", "sniff_type"]

pillow_heif.register_heif_opener()

# Media type -> the one Pillow decoder allowed to open it.
ACCEPTED_TYPES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}
_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs")
_HEIF_BRANDS = (b"mif1", b"msf1", b"mif2")
# The Space conditions on 512 px and paints at most 1024 px; keeping 2048 leaves headroom.
STORED_MAX_SIDE = 2048
MIN_SIDE = 16
_SRGB = ImageCms.createProfile("sRGB")


class PhotoRejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class NormalizedPhoto:
    data: bytes
    media_type: str
    width: int
    height: int
    digest: str


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


def normalize_photo(data: bytes, *, max_pixels: int) -> NormalizedPhoto:
    """Check and normalize an uploaded photo; raises PhotoRejected with an HTTP status."""
    if not data:
        raise PhotoRejected(422, "empty_image", "The uploaded file is empty.")
    kind = sniff_type(data[:32])
    if kind is None:
        raise PhotoRejected(
            415,
            "unsupported_image_type",
            "Upload a JPEG, PNG, WebP, GIF or HEIC/HEIF photo; this file is none of them "
            "(the type is read from its bytes, not its name).",
        )
    with warnings.catch_warnings():
        # Our own pixel limit is checked below; Pillow's warning threshold is not ours.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[ACCEPTED_TYPES[kind]]) as img:
                _check_size(*img.size, max_pixels=max_pixels)
                img.seek(0)  # animated: the first frame
                sent_size = img.size
                _decode_smaller(img)
                img.load()
                if _stored_as_sent(img, data, sent_size):
                    return _photo(data, img.width, img.height)
                rgb = _to_srgb(ImageOps.exif_transpose(img))
        except PhotoRejected:
            raise
        except Image.DecompressionBombError:
            raise PhotoRejected(
                422, "too_many_pixels", f"The photo has more than {max_pixels:,} pixels."
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise PhotoRejected(
                422,
                "image_unreadable",
                f"The {kind.split('/')[1].upper()} file could not be decoded; it may be truncated "
                f"or damaged ({type(exc).__name__}).",
            ) from None
    rgb.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE), Image.Resampling.LANCZOS)
    # Pillow's JPEG writer copies some of `info` (the COM comment) into the file by default; with no
    # exif= or icc_profile= either, nothing but pixels is stored.
    rgb.info.clear()
    out = io.BytesIO()
    # No optimize=: it costs ~30% of the upload's CPU for ~5% fewer bytes.
    rgb.save(out, format="JPEG", quality=95)
    return _photo(out.getvalue(), rgb.width, rgb.height)


def _photo(stored: bytes, width: int, height: int) -> NormalizedPhoto:
    return NormalizedPhoto(
        data=stored,
        media_type="image/jpeg",
        width=width,
        height=height,
        digest=hashlib.sha256(stored).hexdigest(),
    )


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
    LANCZOS resize below still does the final step.
    """
    if img.format != "JPEG":
        return
    width, height = img.size
    longest = max(width, height)
    if longest <= STORED_MAX_SIDE:
        return
    keep = STORED_MAX_SIDE / longest
    img.draft(None, (math.ceil(width * keep), math.ceil(height * keep)))


def _check_size(width: int, height: int, *, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise PhotoRejected(
            422,
            "too_many_pixels",
            f"The photo has {width}x{height} = {width * height:,} pixels; "
            f"at most {max_pixels:,} are accepted.",
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise PhotoRejected(
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
