"""Why an image was refused: an HTTP-shaped verdict both sides turn into their own error."""

from __future__ import annotations

__all__ = ["ImageRefused"]


class ImageRefused(Exception):
    """An image we will not use. `status` and `code` are what ingest answers (422 image_too_complex,
    415 unsupported_image_type, ...); consumers map the code onto their own error classes."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ImageRefused], tuple[int, str, str]]:
        return (type(self), (self.status, self.code, self.message))


def too_complex(message: str) -> ImageRefused:
    return ImageRefused(422, "image_too_complex", message)


def unreadable(kind: str, why: str) -> ImageRefused:
    return ImageRefused(
        422,
        "image_unreadable",
        f"The {kind} file could not be decoded; it may be truncated or damaged ({why}).",
    )
