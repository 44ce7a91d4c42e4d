"""Upload checks and the normalized copy of a photo that the pipeline stores.

The type is detected from the bytes, never the name or header. The size in pixels is read from the
header before any full decode, so a decompression bomb is refused cheaply. The stored copy is
upright RGB with no metadata at all (EXIF, GPS, ICC).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["NormalizedPhoto", "PhotoRejected", "normalize_photo", "sniff_type"]

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
# The Space conditions on 512 px and paints at most 1024 px; keeping 2048 leaves headroom.
STORED_MAX_SIDE = 2048


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
    """The image type from magic bytes, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"hevc"):
        return "image/heic"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def normalize_photo(data: bytes, *, max_pixels: int) -> NormalizedPhoto:
    """Check and normalize an uploaded photo; raises PhotoRejected with an HTTP status."""
    if not data:
        raise PhotoRejected(422, "empty_image", "The uploaded file is empty.")
    kind = sniff_type(data[:32])
    if kind not in ACCEPTED_FORMATS.values():
        raise PhotoRejected(
            415, "unsupported_image_type", "Upload a JPEG, PNG or WebP photo (detected from its bytes)."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise PhotoRejected(
                        422,
                        "image_too_large",
                        f"The photo has {width}x{height} pixels; at most {max_pixels:,} are accepted.",
                    )
                if width < 16 or height < 16:
                    raise PhotoRejected(
                        422, "image_too_small", f"The photo is {width}x{height}; at least 16x16 is needed."
                    )
                img.seek(0)  # animated: the first frame
                img.load()
                rgb = _to_rgb(ImageOps.exif_transpose(img))
        except PhotoRejected:
            raise
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            raise PhotoRejected(
                422, "image_unreadable", f"The photo could not be read ({type(exc).__name__})."
            ) from None
    rgb.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=95, optimize=True)  # no exif=, no icc_profile=: stripped
    stored = out.getvalue()
    return NormalizedPhoto(
        data=stored,
        media_type="image/jpeg",
        width=rgb.width,
        height=rgb.height,
        digest=hashlib.sha256(stored).hexdigest(),
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return img.point(lambda v: v / 256).convert("L").convert("RGB")
    return img.convert("RGB")
