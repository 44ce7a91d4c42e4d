"""Is the Space's answer a new picture of the requested size? Checked before it is stored.

The answer is bytes a remote program sent, so its header is read here (a wrong size is refused
before a single pixel is decoded: a 684 KB file can claim hundreds of MB of pixels) and the
decode itself, with the comparison against the input photo, runs in the decode sandbox.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from consumers.errors import ErrorKind, SpaceError
from jobs.model import JobParams
from sandbox.errors import ImageRefused
from sandbox.picture import wrong_size
from sandbox.pool import DecodePool
from sandbox.probe import read_header

__all__ = ["check_result"]


def _space_error(exc: ImageRefused) -> SpaceError:
    if exc.code == "result_wrong_size":
        return SpaceError(ErrorKind.PERMANENT, exc.code, exc.message)
    if exc.code in ("image_too_complex", "too_many_pixels"):
        return SpaceError(
            ErrorKind.PERMANENT,
            "result_too_complex",
            f"The Space returned a picture we will not decode: {exc.message}",
        )
    if exc.code in ("decoder_busy", "too_many_decodes"):
        return SpaceError(ErrorKind.TRANSIENT, "result_check_busy", exc.message)
    return SpaceError(
        ErrorKind.TRANSIENT, "result_invalid", "The Space returned something that is not an image."
    )


def _size_of(photo: bytes) -> tuple[int, int] | None:
    """The stored photo's size from its header (our own normalized copy; None if unreadable)."""
    try:
        info = read_header(photo)
    except ImageRefused:
        return None
    return info.width, info.height


async def check_result(
    decoder: DecodePool, data: bytes, params: JobParams, image_path: Path
) -> tuple[bytes, str]:
    """The picture and its media type; raises SpaceError (result_wrong_size, result_is_input, ...)."""
    want = (params.width, params.height)
    try:
        info = read_header(data)
        if (info.width, info.height) != want:
            raise wrong_size(info.width, info.height, want)
        photo = await anyio.Path(image_path).read_bytes()
        if _size_of(photo) != want:
            photo = b""  # a picture of another size cannot be the photo echoed: no need to send it
        checked = await decoder.check_picture(data, width=want[0], height=want[1], photo=photo)
    except ImageRefused as exc:
        raise _space_error(exc) from None
    if checked.same_as_input:
        raise SpaceError(
            ErrorKind.PERMANENT, "result_is_input", "The Space returned the input photo unchanged."
        )
    return data, checked.media_type
