"""Photos for the benchmark, made on the spot (no binary fixtures): photo-like, with sensor noise.

The JPEG size of a picture depends on its content, so the ingest uploads of "1 MB" and "10 MB" are
made by raising the noise until the file is about that large.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from sandbox.photo import normalize_photo
from space.samples import meadow

__all__ = ["job_photo", "jpeg_of_size", "phone_jpeg", "web_jpeg"]

MAX_PIXELS = 40_000_000  # ingest's default GHIBLI_MAX_PIXELS


def _noisy(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + np.random.default_rng(seed).normal(0.0, sigma, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def job_photo(workdir: Path) -> tuple[bytes, Path]:
    """The photo every job of sections 1-3 and 5-7 sends: 640x480, as ingest stores it.

    Returns the bytes ingest receives and the path of the normalized copy it keeps, which is what
    the consumer uploads to the Space, so direct calls upload exactly the same file.
    """
    raw = _jpeg(_noisy(meadow(640, 480, seed=5), 4.0, seed=5))
    normalized = normalize_photo(raw, max_pixels=MAX_PIXELS)
    path = workdir / "job-photo.jpg"
    path.write_bytes(normalized.stored(raw))
    return raw, path


def jpeg_of_size(target_bytes: int, seed: int = 7) -> bytes:
    """A photo-like JPEG within about 10% of target_bytes (1 MB: 1600x1200; 10 MB: 4000x3000)."""
    small = target_bytes <= 3_000_000
    width, height = (1600, 1200) if small else (4000, 3000)
    base = meadow(800, 600, seed=seed).resize((width, height), Image.Resampling.BICUBIC)
    sigma, data = (8.0 if small else 32.0), b""  # about right for 1 MB and 10 MB
    for _ in range(6):
        data = _jpeg(_noisy(base, sigma, seed), quality=95)
        if abs(len(data) - target_bytes) <= target_bytes * 0.1:
            break
        # The file grows roughly with the noise's amplitude to the power 0.4 here.
        sigma = min(100.0, max(0.5, sigma * (target_bytes / len(data)) ** 2.5))
    return data


def web_jpeg(seed: int = 5) -> bytes:
    """A 640x480 JPEG as a browser exports it (JFIF, no EXIF): ingest stores it byte for byte."""
    return _jpeg(_noisy(meadow(640, 480, seed=seed), 4.0, seed=seed), quality=90)


def phone_jpeg(seed: int = 11) -> bytes:
    """A 12 MP (4032x3024) phone photo: EXIF with camera, orientation 6 (upright is portrait)."""
    image = _noisy(meadow(1008, 756, seed=seed).resize((4032, 3024), Image.Resampling.BICUBIC), 6.0, seed)
    exif = Image.Exif()
    exif[0x010F] = "Phone maker"  # Make
    exif[0x0110] = "Phone 12"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()
