"""Serving a finished picture: conditional requests, names, and conversion to another format."""

from __future__ import annotations

import hashlib
from typing import Literal

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType

from jobs.model import JobRecord

__all__ = [
    "FORMATS",
    "ResultFormat",
    "add_image_content",
    "etag_for",
    "etag_matches",
    "filename_for",
    "stored_format",
]

ResultFormat = Literal["png", "jpeg", "webp"]
FORMATS: dict[str, tuple[str, str]] = {  # format -> (media type, file extension)
    "png": ("image/png", "png"),
    "jpeg": ("image/jpeg", "jpg"),
    "webp": ("image/webp", "webp"),
}
_BY_MEDIA_TYPE = {media: name for name, (media, _ext) in FORMATS.items()}


def stored_format(record: JobRecord) -> str:
    return _BY_MEDIA_TYPE.get(record.result_type, "webp")


def etag_for(record: JobRecord, fmt: str) -> str:
    """Strong and stable: a job's result never changes once it succeeded (its blob name is unique)."""
    digest = hashlib.sha256(f"{record.id}\x00{record.result_key}\x00{fmt}".encode()).hexdigest()
    return f'"{digest[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def filename_for(record: JobRecord, fmt: str) -> str:
    return f"ghibli-{record.id[:8]}.{FORMATS[fmt][1]}"


def add_image_content(operation: Operation, *, keep: bool) -> None:
    """Document every picture format on the operation's 200 (Litestar documents one media type)."""
    ok = (operation.responses or {}).get("200")
    if isinstance(ok, OpenAPIResponse):
        binary = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
        images = {media: OpenAPIMediaType(schema=binary) for media, _ext in FORMATS.values()}
        ok.content = {**(ok.content or {}), **images} if keep else images
