"""Is the Space's answer a new picture of the requested size? Checked before it is stored.

The answer is bytes a remote program sent, so only its headers are read here, never its pixels:
type and size (a wrong size is refused before a single pixel is decoded: a 684 KB file can claim
hundreds of MB of pixels) and the structural probe (scan, frame and segment counts, pixels per
byte). The picture is decoded, in the decode sandbox, only when it could be the input photo
echoed back: when the photo has the requested size too, so the two must be compared pixel by
pixel. Otherwise nothing decodes it here: it is stored as the Space sent it.

The trade-off (docs/security.md): a result with valid headers but a corrupt body is stored and
served, not refused as result_invalid; whoever decodes it later (a browser, `?format=`
conversion, which runs in the sandbox) finds it broken. Decoding every result to rule that out
cost about 1 ms of CPU per job in a sandbox process, for a Space we chose to call.
"""

from __future__ import annotations

from consumers.errors import ErrorKind, SpaceError
from jobs.model import JobParams
from sandbox.errors import ImageRefused
from sandbox.picture import MAX_RESULT_PIXELS, wrong_size
from sandbox.pool import DecodePool
from sandbox.probe import probe, read_header

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
    decoder: DecodePool, data: bytes, params: JobParams, photo: bytes
) -> tuple[bytes, str]:
    """The picture and its media type; raises SpaceError (result_wrong_size, result_is_input, ...).

    `photo` is the job's input photo (our own stored copy)."""
    want = (params.width, params.height)
    try:
        info = read_header(data)
        if (info.width, info.height) != want:
            raise wrong_size(info.width, info.height, want)
        probe(data, max_pixels=MAX_RESULT_PIXELS)
        if data == photo:
            raise _echo()
        if _size_of(photo) != want:
            return data, info.media_type  # a picture of another size cannot be the photo echoed
        checked = await decoder.check_picture(data, width=want[0], height=want[1], photo=photo)
    except ImageRefused as exc:
        raise _space_error(exc) from None
    if checked.same_as_input:
        raise _echo()
    return data, checked.media_type


def _echo() -> SpaceError:
    return SpaceError(ErrorKind.PERMANENT, "result_is_input", "The Space returned the input photo unchanged.")
