"""What the pool and a decode worker say to each other: length-prefixed msgpack frames on a pipe."""

from __future__ import annotations

import msgspec

__all__ = ["CheckTask", "ConvertTask", "NormalizeTask", "Reply", "Task", "decode_reply", "encode", "frame"]


class NormalizeTask(msgspec.Struct, tag="normalize", frozen=True):
    data: bytes
    max_pixels: int
    max_scans: int


class CheckTask(msgspec.Struct, tag="check", frozen=True):
    data: bytes
    width: int
    height: int
    photo: bytes


class ConvertTask(msgspec.Struct, tag="convert", frozen=True):
    data: bytes
    fmt: str


Task = NormalizeTask | CheckTask | ConvertTask


class Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    """`ok` with the result fields, or the refusal (`status`, `code`, `message`). `retire` asks the
    pool to replace this worker (after a MemoryError its heap is not worth trusting)."""

    ok: bool
    data: bytes | None = None
    width: int = 0
    height: int = 0
    media_type: str = ""
    same_as_input: bool = False
    status: int = 0
    code: str = ""
    message: str = ""
    retire: bool = False


_encoder = msgspec.msgpack.Encoder()
_task_decoder = msgspec.msgpack.Decoder(Task)
_reply_decoder = msgspec.msgpack.Decoder(Reply)
HEADER = 4


def encode(message: Task | Reply) -> bytes:
    return _encoder.encode(message)


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(HEADER, "big")


def decode_task(payload: bytes) -> Task:
    return _task_decoder.decode(payload)


def decode_reply(payload: bytes) -> Reply:
    return _reply_decoder.decode(payload)
